package worker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/flow"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/retry"
)

// flowState is the worker's side of flow control: the gate on the
// backend's limits and the concurrency slots its running jobs hold.
type flowState struct {
	gate *flow.Gate // nil: the backend holds no limits
	mu   sync.Mutex
	held map[leaseKey]flow.Ticket // by lease (as Worker.running), deliveries holding a slot
	// verdicts are preAdmit's answers, by job ID and lease token, until
	// each delivery's execute takes its own.
	verdicts map[string]*verdicts
	// releasing are slots to give back; flushing says a caller of
	// releaseSlot is writing, and will write these too.
	releasing []flow.Ticket
	flushing  bool
	// quiet holds, per queue whose own rate limit is out of tokens, the
	// time of its next token: fetching before then would only postpone.
	quiet map[string]time.Time
	// noSlots: the backend, a SlotReserver, said it cannot hold the
	// limits in its reserves (reserveSlots).
	noSlots atomic.Bool
}

// initLimits opens the gate on the backend's limits and refuses to start
// when a task or queue has a limit the backend cannot hold cluster-wide:
// limiting each process on its own would let every added worker raise it.
// Called by start with w.mu held.
func (w *Worker) initLimits() error {
	w.flow.held = map[leaseKey]flow.Ticket{}
	w.flow.verdicts = map[string]*verdicts{}
	w.flow.quiet = map[string]time.Time{}
	gate, gerr := flow.NewGate(w.b, nil)
	w.flow.gate = gate
	check := func(what string, r *flow.RateLimit, c *flow.ConcurrencyLimit) error {
		if r == nil && c == nil {
			return nil
		}
		if gerr != nil {
			return fmt.Errorf("worker: %s has a limit: %w", what, gerr)
		}
		if r != nil {
			if err := r.Validate(); err != nil {
				return fmt.Errorf("worker: %s: %w", what, err)
			}
		}
		if c != nil {
			if err := c.Validate(); err != nil {
				return fmt.Errorf("worker: %s: %w", what, err)
			}
		}
		return nil
	}
	for name, h := range w.handlers {
		o := h.def.Options()
		if err := check("task "+name, o.RateLimit, o.ConcurrencyLimit); err != nil {
			return err
		}
	}
	for _, q := range w.cfg.Queues {
		if err := check("queue "+q.Name, q.RateLimit, nil); err != nil {
			return err
		}
	}
	return nil
}

// limitsOf returns the limits rec's delivery must pass under q, its queue
// as configured now (nil if the worker no longer serves it): the queue's
// rate limit (live, so that Reconfigure changes it at run time), then its
// task's; and the name of the queue's limit, if any.
func (w *Worker) limitsOf(ctx context.Context, q *QueueConfig, rec *job.Record, opts queue.TaskOptions) (lim flow.Limits, queueLimit string) {
	if q != nil {
		if ql := w.queueRate(ctx, *q); ql != nil {
			lim.Rates = append(lim.Rates, *ql)
			queueLimit = ql.Name
		}
	}
	tl := w.taskLimits(ctx, rec.Task, opts)
	lim.Rates = append(lim.Rates, tl.Rates...)
	lim.Concurrency = tl.Concurrency
	return lim, queueLimit
}

// queueRate is queue q's rate limit, its name defaulted: the declared one,
// else the one an override named "queue:<name>" adds (flow.Override).
func (w *Worker) queueRate(ctx context.Context, q QueueConfig) *flow.RateLimit {
	name := "queue:" + q.Name
	if q.RateLimit != nil {
		ql := *q.RateLimit
		if ql.Name == "" {
			ql.Name = name
		}
		return &ql
	}
	if ov, ok := w.override(ctx, flow.KindRate, name); ok {
		return &flow.RateLimit{Name: name, Limit: ov.Limit, Per: ov.Per, Burst: ov.Burst}
	}
	return nil
}

// taskLimits are task's declared limits, with those that overrides named
// after the task add where it declares none of their kind.
func (w *Worker) taskLimits(ctx context.Context, task string, opts queue.TaskOptions) flow.Limits {
	lim := flow.Limits{Concurrency: opts.ConcurrencyLimit}
	if opts.RateLimit != nil {
		lim.Rates = []flow.RateLimit{*opts.RateLimit}
	} else if ov, ok := w.override(ctx, flow.KindRate, task); ok {
		lim.Rates = []flow.RateLimit{{Name: task, Limit: ov.Limit, Per: ov.Per, Burst: ov.Burst}}
	}
	if lim.Concurrency == nil {
		if ov, ok := w.override(ctx, flow.KindConcurrency, task); ok {
			lim.Concurrency = &flow.ConcurrencyLimit{Name: task, Limit: ov.Limit}
		}
	}
	return lim
}

// override is the override of a limit in force, as the gate last read it.
func (w *Worker) override(ctx context.Context, kind, name string) (flow.Override, bool) {
	if w.flow.gate == nil {
		return flow.Override{}, false
	}
	return w.flow.gate.Override(ctx, kind, name)
}

// LimitStates returns the limits this worker's tasks and queues declare,
// overrides applied, with what its own deliveries did under each: the
// slots they hold, the tokens they took, the jobs held back. It announces
// them at each heartbeat (Info.Limits); Limits sums them over the live
// workers. Nil when the backend holds no limits.
func (w *Worker) LimitStates() []flow.LimitState {
	if w.flow.gate == nil {
		return nil
	}
	ctx := context.Background()
	w.override(ctx, "", "") // the overrides read again if due, before w.mu is held
	live := w.live()
	var lims []flow.Limits
	var names []string
	w.mu.Lock()
	for name, h := range w.handlers {
		lims, names = append(lims, w.taskLimits(ctx, name, h.def.Options())), append(names, name)
	}
	w.mu.Unlock()
	for _, q := range live.Queues {
		if ql := w.queueRate(ctx, q); ql != nil {
			lims, names = append(lims, flow.Limits{Rates: []flow.RateLimit{*ql}}), append(names, ql.Name)
		}
	}
	return w.flow.gate.States(lims, names)
}

// Limits lists the limits in force on backend b: those the live workers
// declare (Info.Limits, as of each one's last heartbeat), with their use
// and the jobs they hold back summed over the workers (flow.Sum). The
// backend must be a backends.KVStore, as for Workers.
func Limits(ctx context.Context, b backends.Backend) ([]flow.LimitState, error) {
	ws, err := Workers(ctx, b)
	if err != nil {
		return nil, err
	}
	states := make([][]flow.LimitState, len(ws))
	for i, wi := range ws {
		states[i] = wi.Limits
	}
	if out := flow.Sum(states...); out != nil {
		return out, nil
	}
	return []flow.LimitState{}, nil
}

// slotRules are the rules that hold, inside a reserve with p, the
// concurrency limits per job key of the tasks this worker runs (their
// figures in force); false when there are none, or no gate.
func (w *Worker) slotRules(ctx context.Context, p backends.ReserveParams) (backends.ReserveSlotsParams, bool) {
	if w.flow.gate == nil {
		return backends.ReserveSlotsParams{}, false
	}
	sp := backends.ReserveSlotsParams{ReserveParams: p, KeyHeader: flow.KeyHeader}
	w.override(ctx, "", "") // the overrides read again if due, before w.mu is held
	w.mu.Lock()
	for name, h := range w.handlers {
		if r, ok := w.flow.gate.SlotRule(ctx, name, w.taskLimits(ctx, name, h.def.Options()).Concurrency); ok {
			sp.Rules = append(sp.Rules, r)
		}
	}
	w.mu.Unlock()
	return sp, len(sp.Rules) > 0
}

// reserveSlots reserves through a backends.SlotReserver, which holds the
// concurrency limits per job key of the tasks this worker runs; ok false
// when the backend is none, no task has such a limit, or the backend said
// it cannot hold them here (Redis Cluster), which the worker then
// remembers. A fair queue's reserve is fair as well: one count for the
// limits of fair and plain queues alike. The jobs leased under a rule get
// their tickets now, so that admission leaves their concurrency limit
// alone (reservedSlot) and releaseSlot reports the slot given back when
// they finish.
func (w *Worker) reserveSlots(ctx context.Context, p backends.ReserveParams, fair bool) (recs []*job.Record, heldBack int, ok bool, err error) {
	sr, isSR := w.b.(backends.SlotReserver)
	if !isSR || w.flow.noSlots.Load() {
		return nil, 0, false, nil
	}
	sp, ok := w.slotRules(ctx, p)
	if !ok {
		return nil, 0, false, nil
	}
	sp.Fair = fair
	res, err := sr.ReserveSlots(ctx, sp)
	if errors.Is(err, job.ErrUnsupported) {
		w.flow.noSlots.Store(true)
		w.log.Info("the backend cannot hold concurrency limits in its reserves here; the limiter's slots hold them", "err", err)
		return nil, 0, false, nil
	}
	if err != nil {
		return nil, 0, true, err
	}
	tickets := w.flow.gate.Reserved(sp, res)
	w.flow.mu.Lock()
	for i, r := range res.Jobs {
		if tickets[i] != (flow.Ticket{}) {
			w.flow.held[keyOf(r.Lease)] = tickets[i]
		}
	}
	w.flow.mu.Unlock()
	return res.Jobs, len(res.HeldBack), true, nil
}

// reservedSlot reports whether rec's delivery holds the slot of its
// concurrency limit from its reserve (reserveSlots): its admission skips
// that limit. Before admission only those hold a ticket.
func (w *Worker) reservedSlot(rec *job.Record) bool {
	w.flow.mu.Lock()
	defer w.flow.mu.Unlock()
	_, ok := w.flow.held[keyOf(rec.Lease)]
	return ok
}

// verdicts are the answers for one reserve's deliveries, there once done
// is closed.
type verdicts struct {
	done chan struct{}
	of   map[string]flow.Verdict // by job ID and lease token
}

// preAdmit asks the gate about one reserve's limited deliveries at once,
// a limiter call per bucket and slot set rather than per job; each one's
// execute then waits for its verdict (admit). The question is asked in a
// goroutine of its own so that the fetch loop reserves again meanwhile:
// in the loop, its round trips would add to every reserve's.
func (w *Worker) preAdmit(ctx context.Context, recs []*job.Record) {
	if w.flow.gate == nil || len(recs) == 0 {
		return
	}
	w.override(ctx, "", "") // the overrides read again if due, before w.mu is held
	var limited []*job.Record
	var lims []flow.Limits
	w.mu.Lock()
	for _, r := range recs {
		if h := w.handlers[r.Task]; h != nil {
			lim, _ := w.limitsOf(ctx, w.queueNamed(r.Queue), r, h.def.Options())
			if w.reservedSlot(r) {
				lim.Concurrency = nil
			}
			if !lim.Empty() {
				limited, lims = append(limited, r), append(lims, lim)
			}
		}
	}
	w.mu.Unlock()
	if len(limited) == 0 {
		return
	}
	vs := &verdicts{done: make(chan struct{}), of: make(map[string]flow.Verdict, len(limited))}
	w.flow.mu.Lock()
	for _, r := range limited {
		w.flow.verdicts[r.ID+"/"+r.Lease.Token] = vs
	}
	w.flow.mu.Unlock()
	// The jobs are reserved already: their admission is finished even
	// when Stop ends the fetch loop meanwhile.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.cfg.LeaseDuration/3)
	go func() {
		defer close(vs.done)
		defer cancel()
		i := 0
		got := w.flow.gate.AdmitBatch(actx, limited, func(r *job.Record) (flow.Limits, string) {
			i++
			return lims[i-1], r.Task
		})
		for i, r := range limited {
			vs.of[r.ID+"/"+r.Lease.Token] = got[i]
		}
	}()
}

// admit decides whether rec runs now, from preAdmit's verdict or by asking
// the gate. nil: run it (releaseSlot gives its slot back afterwards).
// Otherwise an error for finish: a snooze for a job a limit holds back or
// whose limit could not be read, ErrExpired (wrapped) for a job past its
// expiry.
func (w *Worker) admit(ctx context.Context, rec *job.Record, opts queue.TaskOptions) error {
	w.mu.Lock()
	q := w.queueNamed(rec.Queue)
	w.mu.Unlock()
	lim, queueLimit := w.limitsOf(ctx, q, rec, opts)
	if w.reservedSlot(rec) {
		lim.Concurrency = nil
	}
	if lim.Empty() {
		return flow.Expired(rec, time.Now())
	}
	if w.flow.gate == nil { // a limit added by Reconfigure on a backend without limits
		return fmt.Errorf("worker: limits of task %s: %w", rec.Task, job.ErrUnsupported)
	}
	id := rec.ID + "/" + rec.Lease.Token
	w.flow.mu.Lock()
	vs, ok := w.flow.verdicts[id]
	delete(w.flow.verdicts, id)
	w.flow.mu.Unlock()
	var v flow.Verdict
	if ok {
		<-vs.done
		v = vs.of[id]
	} else {
		v.Ticket, v.Err = w.flow.gate.Admit(ctx, rec, rec.Task, lim)
	}
	var hb *flow.HeldBackError
	switch err := v.Err; {
	case err == nil:
	case errors.As(err, &hb):
		if hb.Limit == queueLimit {
			w.flow.mu.Lock()
			w.flow.quiet[rec.Queue] = hb.Next
			w.flow.mu.Unlock()
		}
		// A snooze: postponed without an attempt or a delivery.
		return retry.Snooze(max(time.Until(hb.Until), time.Millisecond))
	case errors.Is(err, flow.ErrExpired), errors.Is(err, job.ErrInvalid):
		return err
	default:
		// The limit could not be read (too contended, the backend away):
		// as good as full, and no attempt of the job's is to blame.
		w.log.Warn("a limit could not be read; the job waits", "job", rec.ID, "task", rec.Task, "err", err)
		return retry.Snooze(time.Duration(500+rand.IntN(500)) * time.Millisecond)
	}
	if v.Ticket != (flow.Ticket{}) {
		w.flow.mu.Lock()
		w.flow.held[keyOf(rec.Lease)] = v.Ticket
		w.flow.mu.Unlock()
	}
	return nil
}

// queueQuiet reports whether queue q's own rate limit has no token before
// a time still to come: the fetch loop skips the queue until then.
func (w *Worker) queueQuiet(q string) bool {
	w.flow.mu.Lock()
	defer w.flow.mu.Unlock()
	return time.Now().Before(w.flow.quiet[q])
}

// releaseSlot gives back the slot rec's delivery holds, if any, once its
// handler has returned and its outcome is recorded. Releases that come
// while one is being written wait and go together in the next write, by
// the caller that finds none under way (no goroutine of its own): under
// load a write frees many slots, as the completer's group commit does.
func (w *Worker) releaseSlot(rec *job.Record) {
	w.flow.mu.Lock()
	t, ok := w.flow.held[keyOf(rec.Lease)]
	delete(w.flow.held, keyOf(rec.Lease))
	if !ok {
		w.flow.mu.Unlock()
		return
	}
	w.flow.releasing = append(w.flow.releasing, t)
	if w.flow.flushing {
		w.flow.mu.Unlock()
		return
	}
	w.flow.flushing = true
	for len(w.flow.releasing) > 0 {
		batch := w.flow.releasing
		w.flow.releasing = nil
		w.flow.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), w.cfg.LeaseDuration/3)
		if err := w.flow.gate.Release(ctx, batch); err != nil {
			w.log.Warn("releasing concurrency slots failed; they end with their leases", "slots", len(batch), "err", err)
		}
		cancel()
		w.flow.mu.Lock()
	}
	w.flow.flushing = false
	w.flow.mu.Unlock()
}

// renewSlots moves the slots of jobs whose leases a heartbeat extended to
// their new lease expiry (the latest of them: leases extended together
// end together), so a slot ends when its lease would.
func (w *Worker) renewSlots(leases []job.Lease, res []backends.ExtendResult) {
	var tickets []flow.Ticket
	var exp time.Time
	w.flow.mu.Lock()
	for i, r := range res { // res[i] answers leases[i]
		if t, ok := w.flow.held[keyOf(leases[i])]; ok && !r.Lost {
			tickets = append(tickets, t)
			if r.ExpiresAt.After(exp) {
				exp = r.ExpiresAt
			}
		}
	}
	w.flow.mu.Unlock()
	if len(tickets) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.LeaseDuration/3)
	defer cancel()
	if err := w.flow.gate.Renew(ctx, tickets, exp); err != nil {
		w.log.Warn("renewing concurrency slots failed; they end with the jobs' earlier leases", "err", err)
	}
}
