package flow

import (
	"cmp"
	"slices"
	"sync"
	"time"
)

// The kinds of limit, in LimitState.Kind and Override.Kind.
const (
	KindRate        = "rate"
	KindConcurrency = "concurrency"
)

// LimitState is one limit in force and its use, for operators: what a
// worker announces of each limit its tasks and queues declare (its own
// use), or the sum over every live worker (worker.Limits), which the
// dashboard, `conveyor inspect limits` and the metrics show.
type LimitState struct {
	Name string `json:"name"`
	Kind string `json:"kind"` // KindRate or KindConcurrency
	// Limit, Per and Burst are the figures in force, an override's when
	// Overridden. Per and Burst are a rate limit's (Burst 0: Limit).
	Limit int           `json:"limit"`
	Per   time.Duration `json:"per,omitempty"`
	Burst int           `json:"burst,omitempty"`
	// PerKey says the figures hold per key (a bucket or slot set each):
	// always for a concurrency limit, for a rate limit with a Key.
	PerKey     bool `json:"per_key,omitempty"`
	Overridden bool `json:"overridden,omitempty"`
	// InUse is, for a concurrency limit, the slots held now (over every
	// key); for a rate limit, the jobs started in about the last Per (over
	// every key; counted in eighths of Per, so between 7/8 of it and all).
	InUse int `json:"in_use"`
	// HeldBack is how many jobs the limit postponed and whose wait has not
	// ended yet: they come back when it does. HeldBackTotal counts every
	// delivery it held back since the worker started.
	HeldBack      int   `json:"held_back"`
	HeldBackTotal int64 `json:"held_back_total"`
	// Workers is how many live workers declare it, in a sum over them.
	Workers int `json:"workers,omitempty"`
}

// usage is what one gate saw of each limit, by kind and name: for the
// process's report (States), never for admission, which asks the backend.
type usage struct {
	mu sync.Mutex
	of map[string]*use
}

type use struct {
	def       LimitState // the figures last applied
	slots     int        // concurrency: slots this gate's deliveries hold
	taken     window     // rate: tokens taken
	held      []time.Time
	heldTotal int64
}

func limitID(kind, name string) string { return kind + "/" + name }

// at returns name's record, creating it. Called with u.mu held.
func (u *usage) at(def LimitState) *use {
	if u.of == nil {
		u.of = map[string]*use{}
	}
	id := limitID(def.Kind, def.Name)
	x := u.of[id]
	if x == nil {
		x = &use{}
		u.of[id] = x
	}
	x.def = def
	return x
}

// heldBack records a delivery the limit postponed until until.
func (u *usage) heldBack(def LimitState, until, now time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	x := u.at(def)
	x.heldTotal++
	if len(x.held) >= 1024 && len(x.held)&(len(x.held)-1) == 0 { // at each power of two: bounded by the live ones
		x.held = waiting(x.held, now)
	}
	x.held = append(x.held, until)
}

// tookSlots records n slots taken (negative: given back).
func (u *usage) tookSlots(def LimitState, n int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	x := u.at(def)
	x.slots = max(x.slots+n, 0)
}

// gaveBack records the slots of tickets given back.
func (u *usage) gaveBack(tickets []Ticket) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, t := range tickets {
		if x := u.of[limitID(KindConcurrency, t.name)]; x != nil && t.g != nil {
			x.slots = max(x.slots-1, 0)
		}
	}
}

// tookTokens records n tokens taken from a bucket of the limit.
func (u *usage) tookTokens(def LimitState, n int, now time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.at(def).taken.add(now, def.Per, n)
}

// waiting keeps the times still to come.
func waiting(until []time.Time, now time.Time) []time.Time {
	return slices.DeleteFunc(until, func(t time.Time) bool { return !t.After(now) })
}

// window counts events over about one interval in eighths of it.
type window struct {
	cell  time.Duration
	start time.Time // of cells[cur]
	cur   int
	cells [8]int
}

func (w *window) roll(now time.Time, per time.Duration) {
	cell := max(per/8, 1)
	if w.cell != cell || now.Sub(w.start) >= 8*cell {
		*w = window{cell: cell, start: now}
		return
	}
	for now.Sub(w.start) >= cell {
		w.cur = (w.cur + 1) % len(w.cells)
		w.cells[w.cur] = 0
		w.start = w.start.Add(cell)
	}
}

func (w *window) add(now time.Time, per time.Duration, n int) {
	w.roll(now, per)
	w.cells[w.cur] += n
}

func (w *window) sum(now time.Time, per time.Duration) int {
	w.roll(now, per)
	n := 0
	for _, c := range w.cells {
		n += c
	}
	return n
}

func rateState(r RateLimit) LimitState {
	return LimitState{Name: r.Name, Kind: KindRate, Limit: r.Limit, Per: r.Per, Burst: r.Burst, PerKey: r.Key != nil}
}

func concState(c ConcurrencyLimit) LimitState {
	return LimitState{Name: c.Name, Kind: KindConcurrency, Limit: c.Limit, PerKey: true}
}

// States returns the limits of lims (each with the name its limits
// default to, as AdmitBatch takes them), overrides applied, with what
// this gate's deliveries did under each: the report of one process.
// Limits it no longer declares are listed while it holds their slots or
// the jobs they held back still wait. Sorted by name, then kind; limits
// that do not validate are left out.
func (g *Gate) States(lims []Limits, names []string) []LimitState {
	now := g.clock.Now()
	ovs := g.ov.cached()
	seen := map[string]bool{}
	var out []LimitState
	add := func(s LimitState) {
		if id := limitID(s.Kind, s.Name); !seen[id] {
			seen[id] = true
			out = append(out, s)
		}
	}
	for i, lim := range lims {
		for _, r := range lim.Rates {
			if rl, err := r.withDefaults(names[i]); err == nil {
				rl, over := ovs.rate(rl)
				s := rateState(rl)
				s.Overridden = over
				add(s)
			}
		}
		if lim.Concurrency != nil {
			if cl, err := lim.Concurrency.withDefaults(names[i]); err == nil {
				cl, over := ovs.concurrency(cl)
				s := concState(cl)
				s.Overridden = over
				add(s)
			}
		}
	}
	g.use.mu.Lock()
	defer g.use.mu.Unlock()
	for id, x := range g.use.of {
		x.held = waiting(x.held, now)
		if !seen[id] && (x.slots > 0 || len(x.held) > 0) {
			add(x.def)
		}
	}
	for i := range out {
		s := &out[i]
		x := g.use.of[limitID(s.Kind, s.Name)]
		if x == nil {
			continue
		}
		s.HeldBack, s.HeldBackTotal = len(x.held), x.heldTotal
		if s.Kind == KindConcurrency {
			s.InUse = x.slots
		} else {
			s.InUse = x.taken.sum(now, s.Per)
		}
	}
	slices.SortFunc(out, func(a, b LimitState) int { return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Kind, b.Kind)) })
	return out
}

// Sum adds up the states of several workers, limit by limit: the use and
// the held-back counts are summed, the figures are the first state's (every
// worker applies the same overrides; a worker still running older code may
// declare others until it is replaced), Workers counts them. Sorted as
// States sorts.
func Sum(states ...[]LimitState) []LimitState {
	at := map[string]int{}
	var out []LimitState
	for _, ss := range states {
		for _, s := range ss {
			id := limitID(s.Kind, s.Name)
			i, ok := at[id]
			if !ok {
				at[id] = len(out)
				s.Workers = 1
				out = append(out, s)
				continue
			}
			t := &out[i]
			t.InUse += s.InUse
			t.HeldBack += s.HeldBack
			t.HeldBackTotal += s.HeldBackTotal
			t.Workers++
		}
	}
	slices.SortFunc(out, func(a, b LimitState) int { return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Kind, b.Kind)) })
	return out
}
