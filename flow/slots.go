package flow

import (
	"context"
	"reflect"

	"github.com/conveyorhq/conveyor/backends"
)

// SlotRule returns the rule that holds c for task's jobs inside the
// reserve (backends.SlotReserver), with the figures in force (defaults
// filled, an override applied); false when c cannot be held there: only a
// limit counted per job key (Key nil or ByJobKey) can, because the
// backend reads that key itself.
func (g *Gate) SlotRule(ctx context.Context, task string, c *ConcurrencyLimit) (backends.SlotRule, bool) {
	if c == nil || c.Key != nil && !isByJobKey(c.Key) {
		return backends.SlotRule{}, false
	}
	cl, err := c.withDefaults(task)
	if err != nil {
		return backends.SlotRule{}, false
	}
	cl, _ = g.ov.get(ctx, g.clock.Now()).concurrency(cl)
	return backends.SlotRule{Task: task, Name: cl.Name, Limit: cl.Limit, Backoff: cl.Backoff}, true
}

// Reserved records what a SlotReserver did under p's rules, for the
// gate's report (States), and returns the tickets of res.Jobs: a job
// leased under a rule holds one with nothing to give back (the backend
// counts the job while it runs), which Release then only reports; the
// others hold the zero Ticket.
func (g *Gate) Reserved(p backends.ReserveSlotsParams, res backends.ReserveSlotsResult) []Ticket {
	now := g.clock.Now()
	def := func(r backends.SlotRule) LimitState {
		return concState(ConcurrencyLimit{Name: r.Name, Limit: r.Limit})
	}
	tickets := make([]Ticket, len(res.Jobs))
	for i, rec := range res.Jobs {
		if r, ok := p.RuleOf(rec.Task); ok {
			tickets[i] = Ticket{g: g, name: r.Name, counted: true}
			g.use.tookSlots(def(r), 1)
		}
	}
	for _, rec := range res.HeldBack {
		if r, ok := p.RuleOf(rec.Task); ok {
			g.use.heldBack(def(r), rec.RunAt, now)
		}
	}
	return tickets
}

// isByJobKey reports whether f is ByJobKey itself. (Funcs do not compare;
// their code pointers do, and every reference to a top-level func shares
// one.)
func isByJobKey(f KeyFunc) bool {
	return reflect.ValueOf(f).Pointer() == reflect.ValueOf(KeyFunc(ByJobKey)).Pointer()
}
