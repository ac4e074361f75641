package dashboard

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/conveyorhq/conveyor/flow"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/worker"
)

// LimitView is one flow limit in GET /api/limits: the figures in force,
// its use and the jobs it holds back, summed over the live workers as of
// their last heartbeats (worker.Limits), with the override set on it, if
// any, read from the backend at once (a worker applies it within
// flow.OverrideRefresh and announces it at its next heartbeat).
type LimitView struct {
	Name          string        `json:"name"`
	Kind          string        `json:"kind"` // "rate" or "concurrency"
	Limit         int           `json:"limit"`
	PerSeconds    float64       `json:"per_seconds,omitempty"` // a rate limit's interval
	Burst         int           `json:"burst,omitempty"`
	PerKey        bool          `json:"per_key"`
	InUse         int           `json:"in_use"`
	HeldBack      int           `json:"held_back"`
	HeldBackTotal int64         `json:"held_back_total"`
	Workers       int           `json:"workers"`
	Override      *OverrideView `json:"override,omitempty"`
}

// OverrideView is a limit's override (flow.Override); the body of POST
// /api/limits/{kind}/{name}/override without its set_at.
type OverrideView struct {
	Limit      int        `json:"limit"`
	PerSeconds float64    `json:"per_seconds,omitempty"`
	Burst      int        `json:"burst,omitempty"`
	SetAt      *time.Time `json:"set_at,omitempty"`
}

func (a *api) limits(w http.ResponseWriter, r *http.Request) {
	states, err := worker.Limits(r.Context(), a.cfg.Backend)
	if err != nil {
		a.fail(w, err)
		return
	}
	ovs, err := flow.Overrides(r.Context(), a.cfg.Backend)
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, LimitViews(states, ovs))
}

// LimitViews are the limits the workers declare (worker.Limits) with the
// overrides set on them, then the overrides of limits no live worker
// declares: the view GET /api/limits and `conveyor inspect limits` show.
func LimitViews(states []flow.LimitState, ovs []flow.Override) []LimitView {
	byID := map[string]flow.Override{}
	for _, o := range ovs {
		byID[o.Kind+"/"+o.Name] = o
	}
	out := make([]LimitView, 0, len(states)+len(ovs))
	for _, s := range states {
		v := LimitView{Name: s.Name, Kind: s.Kind, Limit: s.Limit, PerSeconds: s.Per.Seconds(), Burst: s.Burst, PerKey: s.PerKey,
			InUse: s.InUse, HeldBack: s.HeldBack, HeldBackTotal: s.HeldBackTotal, Workers: s.Workers}
		if o, ok := byID[s.Kind+"/"+s.Name]; ok {
			v.Override = overrideView(o)
			delete(byID, s.Kind+"/"+s.Name)
		}
		out = append(out, v)
	}
	// Overrides of limits no live worker declares: set ahead of a deploy,
	// or for workers that are down.
	for _, o := range ovs {
		if _, ok := byID[o.Kind+"/"+o.Name]; ok {
			out = append(out, LimitView{Name: o.Name, Kind: o.Kind, PerKey: o.Kind == flow.KindConcurrency, Override: overrideView(o)})
		}
	}
	return out
}

func overrideView(o flow.Override) *OverrideView {
	return &OverrideView{Limit: o.Limit, PerSeconds: o.Per.Seconds(), Burst: o.Burst, SetAt: when(o.SetAt)}
}

// setOverride is POST /api/limits/{kind}/{name}/override.
func (a *api) setOverride(w http.ResponseWriter, r *http.Request) {
	var body OverrideView
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("the body must be {\"limit\": n, \"per_seconds\": s, \"burst\": n}: %w", err))
		return
	}
	o := flow.Override{Kind: r.PathValue("kind"), Name: r.PathValue("name"), Limit: body.Limit, Burst: body.Burst,
		Per: time.Duration(body.PerSeconds * float64(time.Second))}
	if err := flow.SetOverride(r.Context(), a.cfg.Backend, o); err != nil {
		a.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// resetOverride is POST /api/limits/{kind}/{name}/reset.
func (a *api) resetOverride(w http.ResponseWriter, r *http.Request) {
	kind := r.PathValue("kind")
	if kind != flow.KindRate && kind != flow.KindConcurrency {
		a.fail(w, fmt.Errorf("%w: kind %q is neither rate nor concurrency", job.ErrInvalid, kind))
		return
	}
	if err := flow.RemoveOverride(r.Context(), a.cfg.Backend, kind, r.PathValue("name")); err != nil {
		a.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
