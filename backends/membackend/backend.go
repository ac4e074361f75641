package membackend

import (
	"container/heap"
	"context"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/internal/gate"
	"github.com/conveyorhq/conveyor/backends/internal/knobs"
	"github.com/conveyorhq/conveyor/backends/internal/notify"
	"github.com/conveyorhq/conveyor/backends/internal/record"
	"github.com/conveyorhq/conveyor/job"
)

// Backend is the in-memory backend. The zero value is not usable; call New.
type Backend struct {
	mu     sync.Mutex
	jobs   map[string]*entry
	queues map[string]*queueState
	unique map[string]*entry // unique key -> the job that last took it
	deb    debounceState     // debounce key -> its job (debounce.go)
	kv     map[string]backends.KV
	seq    uint64
	gate   *gate.Gate
	hub    notify.Hub
	cfg    Config

	expiring  timeHeap  // finished jobs by the end of their retention
	nextPrune time.Time // when an Enqueue next prunes
}

// Config configures a memory backend. Zero values mean the stated default;
// the zero Config is ready to use.
type Config struct {
	// KeepDone is how long done and cancelled jobs (and their results) are
	// kept. Default 24h; negative keeps them forever.
	KeepDone time.Duration
	// KeepDead is how long dead letters are kept for inspection and replay.
	// Default 7 days; negative keeps them forever.
	KeepDead time.Duration
	// JanitorEvery is how often, at most, finished jobs past their
	// retention are pruned. The pruning runs inside the next Enqueue once
	// it is due, so that a backend no one closes runs no goroutine, and
	// memory grows only when jobs are added. Default 1s; negative turns it
	// off (Tidy still prunes).
	JanitorEvery time.Duration
	// Logger receives the janitor's reports, at debug level: how many
	// finished jobs it pruned. Default slog.Default().
	Logger *slog.Logger
	// Clock tells the time: when a job is due, when a lease expires, the
	// times records carry, when a finished job's retention ends. Default
	// backends.SystemClock{}.
	Clock backends.Clock
}

type entry struct {
	rec job.Record
	seq uint64 // enqueue order
	ver uint64 // bumped at every change of state; see item
	grp string // JobInsert.Group, for ReserveFair (fair.go)
	// notes are the job's long-job notes (notes.go), nil until written.
	notes *job.Notes
}

type queueState struct {
	ready   readyHeap
	later   timeHeap // waiting, not yet due, by run-at
	running timeHeap // by lease expiry
	paused  bool
	counts  map[job.State]int
	fair    fairState // the ready jobs by group, for ReserveFair
}

var (
	_ backends.Backend            = (*Backend)(nil)
	_ backends.Inspector          = (*Backend)(nil)
	_ backends.Admin              = (*Backend)(nil)
	_ backends.Pauser             = (*Backend)(nil)
	_ backends.Notifier           = (*Backend)(nil)
	_ backends.ExhaustiveReserver = (*Backend)(nil)
)

// New returns an empty in-memory backend. It keeps finished jobs for
// their retention (Config.KeepDone, KeepDead), and nothing survives the
// process: it is for tests, examples and the demo, not for work that must
// outlive a restart.
func New(cfg Config) *Backend {
	knobs.Knobs{KeepDone: &cfg.KeepDone, KeepDead: &cfg.KeepDead, JanitorEvery: &cfg.JanitorEvery,
		Logger: &cfg.Logger, Clock: &cfg.Clock}.Fill(time.Second)
	return &Backend{
		cfg:    cfg,
		jobs:   map[string]*entry{},
		queues: map[string]*queueState{},
		unique: map[string]*entry{},
		kv:     map[string]backends.KV{},
		gate:   gate.New("membackend"),
	}
}

func (b *Backend) queue(name string) *queueState {
	q := b.queues[name]
	if q == nil {
		q = &queueState{counts: map[job.State]int{}}
		b.queues[name] = q
	}
	return q
}

// setState moves e to state s, keeps the counters and files the entry in the
// heap its new state belongs to. The caller holds b.mu.
func (b *Backend) setState(e *entry, s job.State, now time.Time) {
	q := b.queue(e.rec.Queue)
	if e.rec.State != "" {
		q.counts[e.rec.State]--
	}
	e.rec.State = s
	q.counts[s]++
	e.ver++
	it := item{e: e, ver: e.ver}
	switch {
	case s.Waiting() && !e.rec.RunAt.After(now):
		q.fileReady(it)
	case s.Waiting():
		heap.Push(&q.later, timedItem{item: it, at: e.rec.RunAt.UnixNano()})
	case s == job.Running:
		heap.Push(&q.running, timedItem{item: it, at: e.rec.Lease.ExpiresAt.UnixNano()})
	}
	if s.Finished() {
		e.rec.FinishedAt = now
		e.rec.Lease = job.Lease{}
		b.expire(it, now)
		b.hub.Publish(backends.Event{Kind: backends.JobFinished, Queue: e.rec.Queue, JobID: e.rec.ID})
	}
}

// Enqueue implements backends.Backend.
func (b *Backend) Enqueue(ctx context.Context, p backends.EnqueueParams) ([]backends.EnqueueResult, error) {
	if res, err := b.gate.Enqueue(ctx, p); res != nil || err != nil {
		return res, err
	}
	now := b.cfg.Clock.Now()
	pruned := 0
	defer func() { b.logPruned(pruned) }() // after the unlock below
	b.mu.Lock()
	defer b.mu.Unlock()
	pruned = b.pruneDue(now)
	res := make([]backends.EnqueueResult, len(p.Jobs))
	held := map[string]string{} // unique keys taken within this batch
	ids := map[string]bool{}    // IDs taken within this batch
	adding := map[string]int{}
	for i, ins := range p.Jobs {
		if _, ok := b.jobs[ins.ID]; ok || ids[ins.ID] {
			res[i] = backends.EnqueueResult{ID: ins.ID, Duplicate: true}
			continue
		}
		ids[ins.ID] = true
		if id, ok := b.heldKey(ins.UniqueKey, now, held); ok {
			res[i] = backends.EnqueueResult{ID: id, Duplicate: true}
			continue
		}
		if ins.UniqueKey != "" {
			held[ins.UniqueKey] = ins.ID
		}
		adding[ins.Queue]++
	}
	for qn, check := range p.DepthNeeded() {
		if check.MaxDepth == 0 {
			continue
		}
		depth := b.depth(qn)
		if depth+adding[qn] > check.MaxDepth {
			return nil, backends.QueueFullError(qn, depth, adding[qn], check.MaxDepth)
		}
	}
	for i, ins := range p.Jobs {
		if res[i].Duplicate {
			continue
		}
		b.seq++
		e := &entry{seq: b.seq, rec: job.Record{
			ID: ins.ID, Queue: ins.Queue, Task: ins.Task,
			Payload: slices.Clone(ins.Payload), Headers: maps.Clone(ins.Headers),
			Priority: ins.Priority, RunAt: ins.RunAt, CreatedAt: now,
			MaxDeliveries: ins.MaxDeliveries, Timeout: ins.Timeout, RetryPolicy: ins.RetryPolicy,
			UniqueKey: ins.UniqueKey, UniqueUntil: ins.UniqueUntil,
		}, grp: ins.Group}
		if e.rec.RunAt.IsZero() {
			e.rec.RunAt = now
		}
		b.jobs[ins.ID] = e
		if ins.UniqueKey != "" {
			b.unique[ins.UniqueKey] = e
		}
		state := job.Pending
		if e.rec.RunAt.After(now) {
			state = job.Scheduled
		}
		b.setState(e, state, now)
		res[i] = backends.EnqueueResult{ID: ins.ID, State: state}
		b.hub.Publish(backends.Event{Kind: backends.JobsAvailable, Queue: ins.Queue})
	}
	for i := range res {
		if res[i].Duplicate {
			res[i].State = b.jobs[res[i].ID].rec.State
		}
	}
	return res, nil
}

// heldKey reports which job holds a unique key, if any.
func (b *Backend) heldKey(key string, now time.Time, batch map[string]string) (string, bool) {
	if key == "" {
		return "", false
	}
	if id, ok := batch[key]; ok {
		return id, true
	}
	e := b.unique[key]
	if e == nil || b.jobs[e.rec.ID] != e {
		return "", false
	}
	if e.rec.UniqueUntil.IsZero() {
		return e.rec.ID, !e.rec.State.Finished()
	}
	return e.rec.ID, now.Before(e.rec.UniqueUntil)
}

func (b *Backend) depth(queue string) int {
	q := b.queues[queue]
	if q == nil {
		return 0
	}
	n := 0
	for s, c := range q.counts {
		if !s.Finished() {
			n += c
		}
	}
	return n
}

// Reserve implements backends.Backend.
func (b *Backend) Reserve(ctx context.Context, p backends.ReserveParams) ([]*job.Record, error) {
	return b.reserve(ctx, p, nextReady)
}

// ReservesExhaustively implements backends.ExhaustiveReserver: a reserve
// pops ready entries until it has its limit or none is left.
func (b *Backend) ReservesExhaustively() bool { return true }

// nextReady pops the queue's best live ready entry, or nil: Reserve's
// order.
func nextReady(q *queueState) *entry {
	for q.ready.Len() > 0 {
		if it := heap.Pop(&q.ready).(item); it.live() {
			return it.e
		}
	}
	return nil
}

// reserve leases up to p.Limit ready jobs of p.Queue in the order next
// hands them out (nil: none left).
func (b *Backend) reserve(ctx context.Context, p backends.ReserveParams, next func(*queueState) *entry) ([]*job.Record, error) {
	if err := b.gate.Valid(ctx, p); err != nil {
		return nil, err
	}
	now := b.cfg.Clock.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.queue(p.Queue)
	if q.paused {
		return nil, nil
	}
	b.promote(q, now)
	var out []*job.Record
	for len(out) < p.Limit {
		e := next(q)
		if e == nil {
			break
		}
		if r := b.lease(e, p, now); r != nil {
			out = append(out, r)
		}
	}
	return out, nil
}

// promote files expired leases and newly due jobs as ready. The caller
// holds b.mu.
func (b *Backend) promote(q *queueState, now time.Time) {
	q.running.popDue(now.UnixNano(), func(e *entry) { b.setState(e, job.Pending, now) })
	q.later.popDue(now.UnixNano(), func(e *entry) {
		e.ver++
		q.fileReady(item{e: e, ver: e.ver})
	})
}

// lease delivers a ready job: a copy of it Running under a fresh lease,
// or nil when it had used its deliveries and went to Dead instead. The
// caller holds b.mu.
func (b *Backend) lease(e *entry, p backends.ReserveParams, now time.Time) *job.Record {
	if e.rec.MaxDeliveries > 0 && e.rec.Deliveries >= e.rec.MaxDeliveries {
		e.rec.Errors = append(e.rec.Errors, job.AttemptError{
			Attempt: e.rec.Attempts() + 1, At: now, Error: backends.PoisonReason(e.rec.Deliveries),
		})
		b.setState(e, job.Dead, now)
		return nil
	}
	e.rec.Deliveries++
	e.rec.StartedAt = now
	e.rec.CancelRequested = false
	e.rec.Lease = job.Lease{JobID: e.rec.ID, Token: strconv.FormatUint(e.seq, 36) + "." + strconv.Itoa(e.rec.Deliveries), ExpiresAt: now.Add(p.Lease)}
	b.setState(e, job.Running, now)
	return clone(&e.rec)
}

// leased returns the entry l holds, or ErrLeaseLost. The caller holds b.mu.
func (b *Backend) leased(l job.Lease) (*entry, error) {
	e := b.jobs[l.JobID]
	if e == nil || e.rec.State != job.Running || e.rec.Lease.Token != l.Token {
		return nil, record.LeaseLost(l)
	}
	return e, nil
}

// Extend implements backends.Backend.
func (b *Backend) Extend(ctx context.Context, p backends.ExtendParams) ([]backends.ExtendResult, error) {
	if err := b.gate.Check(ctx); err != nil {
		return nil, err
	}
	now := b.cfg.Clock.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]backends.ExtendResult, len(p.Leases))
	for i, l := range p.Leases {
		out[i].JobID = l.JobID
		e, err := b.leased(l)
		if err != nil || !e.rec.Lease.ExpiresAt.After(now) {
			// An expired lease is lost even if no one took the job yet:
			// another worker may reserve it at any moment.
			out[i].Lost = true
			continue
		}
		e.rec.Lease.ExpiresAt = now.Add(p.Lease)
		b.setState(e, job.Running, now) // re-file under the new expiry
		out[i].ExpiresAt = e.rec.Lease.ExpiresAt
		out[i].CancelRequested = e.rec.CancelRequested
	}
	return out, nil
}

// withLease runs fn on the job l holds, under the lock.
func (b *Backend) withLease(l job.Lease, fn func(e *entry, now time.Time)) error {
	now := b.cfg.Clock.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	e, err := b.leased(l)
	if err != nil {
		return err
	}
	fn(e, now)
	return nil
}

// Complete implements backends.Backend.
func (b *Backend) Complete(ctx context.Context, p backends.CompleteParams) error {
	if err := b.gate.Check(ctx); err != nil {
		return err
	}
	return b.withLease(p.Lease, func(e *entry, now time.Time) {
		e.rec.Result = slices.Clone(p.Result)
		b.setState(e, job.Done, now)
	})
}

// Retry implements backends.Backend.
func (b *Backend) Retry(ctx context.Context, p backends.RetryParams) error {
	if err := b.gate.Check(ctx); err != nil {
		return err
	}
	return b.withLease(p.Lease, func(e *entry, now time.Time) {
		e.rec.Lease = job.Lease{}
		e.rec.RunAt = p.At
		state := job.Retrying
		if p.Error == nil {
			e.rec.Deliveries--
			state = job.Scheduled
		} else {
			e.rec.Errors = append(e.rec.Errors, *p.Error)
		}
		if !p.At.After(now) {
			state = job.Pending
			b.hub.Publish(backends.Event{Kind: backends.JobsAvailable, Queue: e.rec.Queue})
		}
		b.setState(e, state, now)
	})
}

// DeadLetter implements backends.Backend.
func (b *Backend) DeadLetter(ctx context.Context, p backends.DeadLetterParams) error {
	if err := b.gate.Check(ctx); err != nil {
		return err
	}
	return b.withLease(p.Lease, func(e *entry, now time.Time) {
		e.rec.Errors = append(e.rec.Errors, p.Error)
		b.setState(e, job.Dead, now)
	})
}

// Cancel implements backends.Backend.
func (b *Backend) Cancel(ctx context.Context, p backends.CancelParams) (job.State, error) {
	if err := b.gate.Check(ctx); err != nil {
		return "", err
	}
	now := b.cfg.Clock.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.jobs[p.JobID]
	if e == nil {
		return "", record.NotFound(p.JobID)
	}
	switch {
	case e.rec.State.Finished():
		return e.rec.State, record.Finished(p.JobID, e.rec.State)
	case e.rec.State == job.Running && p.Lease == nil:
		e.rec.CancelRequested = true
		return job.Running, nil
	case e.rec.State == job.Running:
		if _, err := b.leased(*p.Lease); err != nil {
			return e.rec.State, err
		}
	}
	b.setState(e, job.Cancelled, now)
	return job.Cancelled, nil
}

// Close implements backends.Backend. Later calls fail with job.ErrClosed.
func (b *Backend) Close() error {
	b.gate.Close()
	return nil
}

// Listen implements backends.Notifier.
func (b *Backend) Listen(ctx context.Context, p backends.ListenParams) (<-chan backends.Event, error) {
	if err := b.gate.Check(ctx); err != nil {
		return nil, err
	}
	return b.hub.Listen(ctx, p)
}

func clone(r *job.Record) *job.Record {
	c := *r
	c.Payload = slices.Clone(r.Payload)
	c.Result = slices.Clone(r.Result)
	c.Headers = maps.Clone(r.Headers)
	c.Errors = slices.Clone(r.Errors)
	return &c
}
