package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/conveyorhq/conveyor/flow"
	"github.com/conveyorhq/conveyor/job"
)

// parseLimits reads KIND:NAME=LIMIT[/PER[:BURST]],... (flow.ParseOverride).
func parseLimits(v string) ([]flow.Override, error) {
	var out []flow.Override
	for item := range strings.SplitSeq(v, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		o, err := flow.ParseOverride(item)
		if err != nil {
			return nil, errors.New(strings.TrimPrefix(err.Error(), job.ErrInvalid.Error()+": "))
		}
		if slices.ContainsFunc(out, func(p flow.Override) bool { return p.Kind == o.Kind && p.Name == o.Name }) {
			return nil, fmt.Errorf("limit %s:%s is listed twice", o.Kind, o.Name)
		}
		out = append(out, o)
	}
	return out, nil
}

func formatLimits(ovs []flow.Override) string {
	items := make([]string, len(ovs))
	for i, o := range ovs {
		items[i] = o.String()
	}
	return strings.Join(items, ",")
}

// applyLimits makes the backend's overrides what the limits key says,
// for every worker on it: each listed override is set, and those the
// previous configuration (prev) listed and this one does not are removed.
// Overrides the config never listed (set with `conveyor inspect limits`
// or the dashboard) are left alone. Called at start (prev nil) and on
// SIGHUP.
func (p *proc) applyLimits(prev, next []flow.Override) error {
	if len(prev) == 0 && len(next) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs []error
	for _, o := range next {
		if i := slices.IndexFunc(prev, func(q flow.Override) bool { return q.Kind == o.Kind && q.Name == o.Name }); i >= 0 && prev[i].String() == o.String() {
			continue // unchanged: an operator's later change stands until the config changes it
		}
		if err := flow.SetOverride(ctx, p.b, o); err != nil {
			errs = append(errs, err)
			continue
		}
		p.log.Info("limit override set on every worker", "limit", o.String())
	}
	for _, o := range prev {
		if !slices.ContainsFunc(next, func(q flow.Override) bool { return q.Kind == o.Kind && q.Name == o.Name }) {
			if err := flow.RemoveOverride(ctx, p.b, o.Kind, o.Name); err != nil {
				errs = append(errs, err)
				continue
			}
			p.log.Info("limit override removed: the declared figures hold", "limit", o.Kind+":"+o.Name)
		}
	}
	return errors.Join(errs...)
}

// limitStates sums the limits of the process's workers, for /metrics.
func (p *proc) limitStates() []flow.LimitState {
	p.mu.Lock()
	gens := append(slices.Clone(p.retired), p.cur)
	p.mu.Unlock()
	var states [][]flow.LimitState
	for _, g := range gens {
		if g != nil {
			states = append(states, g.w.LimitStates())
		}
	}
	return flow.Sum(states...)
}
