package pgbackend

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/internal/record"
	"github.com/conveyorhq/conveyor/job"
)

// Enqueue implements backends.Backend. A batch with no depth bound, no
// unique key and no fair group is one COPY (copy.go); one such job is one
// INSERT of one row (insertOne: without the batch INSERT's arrays and fair
// ring, a single enqueue took 13% less time, BenchmarkEnqueueSingle).
// Otherwise it is one transaction that locks the bounded queues' rows and
// the unique keys (advisory locks), so concurrent enqueuers can neither
// pass a bound nor take a key twice.
func (b *Backend) Enqueue(ctx context.Context, p backends.EnqueueParams) ([]backends.EnqueueResult, error) {
	if res, err := b.gate.Enqueue(ctx, p); res != nil || err != nil {
		return res, err
	}
	if canCopy(p) {
		res, err := b.copyIn(ctx, p)
		if !errors.Is(err, errIDTaken) {
			if err != nil {
				return nil, fmt.Errorf("pgbackend: enqueue: %w", err)
			}
			return res, nil
		}
	}
	if !needsLocks(p) {
		return b.enqueue(ctx, pgxQuerier{b.pool}, p)
	}
	var res []backends.EnqueueResult
	err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		var err error
		res, err = b.enqueue(ctx, pgxQuerier{tx}, p)
		return err
	})
	return res, err
}

func needsLocks(p backends.EnqueueParams) bool {
	for _, ins := range p.Jobs {
		if ins.MaxDepth > 0 || ins.UniqueKey != "" {
			return true
		}
	}
	return false
}

// enqueue runs an enqueue on q, which is inside a transaction whenever
// needsLocks(p).
func (b *Backend) enqueue(ctx context.Context, q querier, p backends.EnqueueParams) ([]backends.EnqueueResult, error) {
	res := make([]backends.EnqueueResult, len(p.Jobs))
	dup := make([]bool, len(p.Jobs))
	if needsLocks(p) {
		if err := b.checkBeforeInsert(ctx, q, p, res, dup); err != nil {
			return nil, err
		}
	}
	now := b.cfg.Clock.Now()
	var a insertArrays
	adding := make(map[string]bool, len(p.Jobs)) // an ID again later in the batch is a duplicate
	for i, ins := range p.Jobs {
		switch {
		case dup[i]:
		case adding[ins.ID]:
			res[i], dup[i] = backends.EnqueueResult{ID: ins.ID, Duplicate: true}, true
		default:
			adding[ins.ID] = true
			a.add(ins, i, now)
		}
	}
	inserted := map[string]job.State{}
	if len(a.ids) > 0 {
		var err error
		if len(a.ids) == 1 && a.groups[0] == "" {
			inserted, err = idStates(ctx, q, b.q.insertOne, a.ids[0], a.queues[0], a.tasks[0], a.payloads[0], a.headers[0],
				a.prios[0], a.runAts[0], a.maxDeliveries[0], a.timeouts[0], a.policies[0], a.keys[0], a.until[0], now)
		} else {
			inserted, err = idStates(ctx, q, b.q.insert, a.ids, a.queues, a.tasks, a.payloads, a.headers, a.prios, a.runAts,
				a.maxDeliveries, a.timeouts, a.policies, a.keys, a.until, a.ord, now, a.groups)
		}
		if err != nil {
			return nil, fmt.Errorf("pgbackend: enqueue: %w", err)
		}
	}
	var unknown []string // duplicates whose state is still to read
	for i, ins := range p.Jobs {
		if !dup[i] {
			if st, ok := inserted[ins.ID]; ok {
				res[i] = backends.EnqueueResult{ID: ins.ID, State: st}
				continue
			}
			res[i] = backends.EnqueueResult{ID: ins.ID, Duplicate: true} // the ID existed: a retried enqueue
		}
		if res[i].State == "" {
			if st, ok := inserted[res[i].ID]; ok { // a key taken earlier in this batch
				res[i].State = st
			} else {
				unknown = append(unknown, res[i].ID)
			}
		}
	}
	if len(unknown) > 0 {
		states, err := idStates(ctx, q, b.q.existing, unknown)
		if err != nil {
			return nil, fmt.Errorf("pgbackend: enqueue: %w", err)
		}
		for i := range res {
			if res[i].State == "" {
				res[i].State = states[res[i].ID]
			}
		}
	}
	return res, nil
}

// idStates runs a statement that returns (id, state) rows.
func idStates(ctx context.Context, q querier, sql string, args ...any) (map[string]job.State, error) {
	out := map[string]job.State{}
	rows, err := q.query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	err = scanAll(rows, func(s scanner) error {
		var id, st string
		err := s.Scan(&id, &st)
		out[id] = job.State(st)
		return err
	})
	return out, err
}

// checkBeforeInsert takes the locks, marks duplicates (by ID and by unique
// key) in res and dup, and checks the depth bounds.
func (b *Backend) checkBeforeInsert(ctx context.Context, q querier, p backends.EnqueueParams, res []backends.EnqueueResult, dup []bool) error {
	need := p.DepthNeeded()
	var bounded, keys, ids []string
	for name, c := range need {
		if c.MaxDepth > 0 {
			bounded = append(bounded, name)
		}
	}
	for _, ins := range p.Jobs {
		ids = append(ids, ins.ID)
		if ins.UniqueKey != "" && !slices.Contains(keys, ins.UniqueKey) {
			keys = append(keys, ins.UniqueKey)
		}
	}
	if len(bounded) > 0 {
		slices.Sort(bounded)
		if err := drain(q.query(ctx, b.q.lockQueues, bounded)); err != nil {
			return fmt.Errorf("pgbackend: locking queues: %w", err)
		}
	}
	holders := map[string]holder{}
	if len(keys) > 0 {
		if err := drain(q.query(ctx, b.q.lockKeys, b.q.schema+":", keys)); err != nil {
			return fmt.Errorf("pgbackend: locking unique keys: %w", err)
		}
		rows, err := q.query(ctx, b.q.holders, keys)
		if err == nil {
			err = scanAll(rows, func(s scanner) error {
				var h holder
				var until *time.Time
				var key, st string
				if err := s.Scan(&key, &h.id, &st, &until); err != nil {
					return err
				}
				h.state = job.State(st)
				if until != nil {
					h.until = *until
				}
				holders[key] = h
				return nil
			})
		}
		if err != nil {
			return fmt.Errorf("pgbackend: unique keys: %w", err)
		}
	}
	existing, err := idStates(ctx, q, b.q.existing, ids)
	if err != nil {
		return fmt.Errorf("pgbackend: enqueue: %w", err)
	}
	now := b.cfg.Clock.Now()
	adding := map[string]int{}
	taken := map[string]string{}
	for i, ins := range p.Jobs {
		if st, ok := existing[ins.ID]; ok {
			res[i], dup[i] = backends.EnqueueResult{ID: ins.ID, State: st, Duplicate: true}, true
			continue
		}
		if ins.UniqueKey != "" {
			if id, ok := taken[ins.UniqueKey]; ok {
				res[i], dup[i] = backends.EnqueueResult{ID: id, Duplicate: true}, true
				continue
			}
			if h, ok := holders[ins.UniqueKey]; ok && h.holds(now) {
				res[i], dup[i] = backends.EnqueueResult{ID: h.id, State: h.state, Duplicate: true}, true
				continue
			}
			taken[ins.UniqueKey] = ins.ID
		}
		adding[ins.Queue]++
	}
	if len(bounded) > 0 {
		depths := map[string]int{}
		rows, err := q.query(ctx, b.q.depth, bounded)
		if err == nil {
			err = scanAll(rows, func(s scanner) error {
				var name string
				var n int64
				err := s.Scan(&name, &n)
				depths[name] = int(n)
				return err
			})
		}
		if err != nil {
			return fmt.Errorf("pgbackend: queue depth: %w", err)
		}
		for _, name := range bounded {
			if adding[name] > 0 && depths[name]+adding[name] > need[name].MaxDepth {
				return backends.QueueFullError(name, depths[name], adding[name], need[name].MaxDepth)
			}
		}
	}
	return nil
}

type holder struct {
	id    string
	state job.State
	until time.Time
}

// holds reports whether the holder's key is still taken: until its window
// ends, or, without a window, until the job finishes.
func (h holder) holds(now time.Time) bool {
	if !h.until.IsZero() {
		return now.Before(h.until)
	}
	return !h.state.Finished()
}

// insertArrays are the columns of an insert batch, passed as arrays to one
// INSERT ... SELECT FROM unnest.
type insertArrays struct {
	ids, queues, tasks, policies []string
	payloads                     [][]byte
	headers                      []*string
	keys                         []*string
	prios, maxDeliveries, ord    []int32
	timeouts                     []int64
	runAts                       []time.Time
	until                        []*time.Time
	groups                       []string
}

func (a *insertArrays) add(ins *backends.JobInsert, i int, now time.Time) {
	a.ids = append(a.ids, ins.ID)
	a.queues = append(a.queues, ins.Queue)
	a.groups = append(a.groups, ins.Group)
	a.tasks = append(a.tasks, ins.Task)
	a.policies = append(a.policies, ins.RetryPolicy)
	a.payloads = append(a.payloads, record.NonNil(ins.Payload))
	var h *string
	if j := record.Headers(ins.Headers); j != nil {
		s := string(j)
		h = &s
	}
	a.headers = append(a.headers, h)
	var key *string
	if ins.UniqueKey != "" {
		key = &ins.UniqueKey
	}
	a.keys = append(a.keys, key)
	a.prios = append(a.prios, int32(ins.Priority))
	a.maxDeliveries = append(a.maxDeliveries, int32(ins.MaxDeliveries))
	a.ord = append(a.ord, int32(i))
	a.timeouts = append(a.timeouts, ins.Timeout.Milliseconds())
	runAt := ins.RunAt
	if runAt.IsZero() {
		runAt = now
	}
	a.runAts = append(a.runAts, runAt)
	var until *time.Time
	if !ins.UniqueUntil.IsZero() {
		u := ins.UniqueUntil
		until = &u
	}
	a.until = append(a.until, until)
}

// asyncCommit makes the rest of the current transaction commit without
// waiting for its WAL flush. Reserve, Extend and Retry use it: if the
// server crashes before the flush, the change is lost and the job runs
// again, which at-least-once delivery allows. Enqueue, Complete and
// DeadLetter never use it: an acknowledged job, and a job's end, must
// survive a crash, since what is done on an end (a workflow enqueueing the
// step's dependents, a waiter handing on the result) cannot be undone
// when the job comes back running.
const asyncCommit = "SELECT set_config('synchronous_commit', 'off', true)"

// poisonFormat is backends.PoisonReason as a format() string for the
// reserve statement, with %s where the delivery count goes.
var poisonFormat = record.PoisonFormat("%s")

// Reserve implements backends.Backend: one round trip holding two
// statements, the recovery of this queue's expired leases and the reserve.
// When every job it picked was poison or corrupt (and set aside), it picks
// again, so an empty result means nothing is due.
func (b *Backend) Reserve(ctx context.Context, p backends.ReserveParams) ([]*job.Record, error) {
	res, err := b.reserveDue(ctx, p, variant{})
	return res.Jobs, err
}

// variant is which reserve statement runs: the plain one, the fair one
// (fair.go), either with slot rules (slots.go).
type variant struct {
	fair  bool
	slots *backends.ReserveSlotsParams // with rules
}

// reserveDue picks until it has p.Limit jobs leased or held back, or a
// pick came back short: nothing else was due (record.Fill). A pick fills
// its LIMIT with the poison and corrupt jobs it dead-letters too.
func (b *Backend) reserveDue(ctx context.Context, p backends.ReserveParams, v variant) (backends.ReserveSlotsResult, error) {
	if err := b.gate.Valid(ctx, p); err != nil {
		return backends.ReserveSlotsResult{}, err
	}
	return record.Fill(p.Limit, 0, func(limit int) (backends.ReserveSlotsResult, int, error) {
		ask := p
		ask.Limit = limit
		return b.reserve(ctx, ask, v)
	})
}

// ReservesExhaustively implements backends.ExhaustiveReserver (reserveDue).
func (b *Backend) ReservesExhaustively() bool { return true }

// reserve picks once; picked counts the rows taken, usable or not.
func (b *Backend) reserve(ctx context.Context, p backends.ReserveParams, v variant) (res backends.ReserveSlotsResult, picked int, err error) {
	now := b.cfg.Clock.Now()
	var batch pgx.Batch
	batch.Queue(asyncCommit)
	stmt := b.q.reserve
	args := []any{p.Queue, now, p.Limit, record.Token(8) + ".", p.Lease.Milliseconds(), poisonFormat, p.Worker}
	locks := 0 // statements queued before the recovery, besides asyncCommit
	if v.fair {
		batch.Queue(b.q.fairLock, p.Queue)
		stmt, locks = b.q.fairReserve, 1
		groups, weights := weightArgs(p)
		args = append(args, groups, weights)
	}
	if v.slots != nil {
		// After the fair lock: a fair reserve takes the queue's lock, then
		// the names', a plain one the names' alone, so no two wait on
		// each other in a cycle.
		names, sargs := slotArgs(*v.slots)
		batch.Queue(slotsPlan)
		batch.Queue(b.q.lockKeys, slotLockPrefix+b.q.schema+":", names)
		stmt, locks = b.q.reserveSlots, locks+2
		if v.fair {
			stmt = b.q.fairSlotsReserve
		}
		args = append(args, sargs...)
	}
	batch.Queue(b.q.recoverQueue, p.Queue, now)
	batch.Queue(stmt, args...)
	br := b.pool.SendBatch(ctx, &batch)
	defer br.Close()
	fail := func(what string, err error) (backends.ReserveSlotsResult, int, error) {
		return backends.ReserveSlotsResult{}, 0, fmt.Errorf("pgbackend: %s %s: %w", what, p.Queue, err)
	}
	if _, err := br.Exec(); err != nil {
		return fail("reserve from", err)
	}
	for range locks {
		if _, err := br.Exec(); err != nil {
			return fail("locking to reserve from", err)
		}
	}
	if _, err := br.Exec(); err != nil {
		return fail("recovering leases in", err)
	}
	rows, err := br.Query()
	if err != nil {
		return fail("reserve from", err)
	}
	type reserved struct {
		r        *job.Record
		seq, pos int64 // pos: the place ReserveFair gave it
		held     bool  // held back by a slot rule
	}
	var got []reserved
	corrupt := map[*job.Record]error{}
	for rows.Next() {
		var pos int64
		var held bool
		var row pgx.Row = rows
		if v.fair || v.slots != nil {
			row = withPos{rows, &pos, &held}
		}
		r, seq, err := scanRecord(row)
		if r == nil {
			rows.Close()
			return fail("reserve from", err)
		}
		if err != nil {
			corrupt[r] = err
		}
		got = append(got, reserved{r, seq, pos, held})
	}
	if err := rows.Err(); err != nil {
		return fail("reserve from", err)
	}
	rows.Close()
	if err := br.Close(); err != nil {
		return fail("reserve from", err)
	}
	// UPDATE ... RETURNING has no order; restore the reserve order.
	slices.SortFunc(got, func(x, y reserved) int {
		return cmp.Or(cmp.Compare(x.pos, y.pos), // 0 unless fair
			cmp.Compare(y.r.Priority, x.r.Priority), x.r.RunAt.Compare(y.r.RunAt), cmp.Compare(x.seq, y.seq))
	})
	for _, g := range got {
		switch {
		case g.held:
			res.HeldBack = append(res.HeldBack, g.r)
		case g.r.State != job.Running: // poison, dead-lettered by the statement
		case corrupt[g.r] != nil:
			b.setAside(ctx, g.r, corrupt[g.r], now)
		default:
			res.Jobs = append(res.Jobs, g.r)
		}
	}
	return res, len(got), nil
}

// setAside dead-letters a reserved job whose row does not decode, with the
// reason, instead of handing a worker half a record or wedging the queue.
func (b *Backend) setAside(ctx context.Context, r *job.Record, cause error, now time.Time) {
	b.cfg.Logger.Error("pgbackend: malformed job dead-lettered", "queue", r.Queue, "id", r.ID, "err", cause)
	err := b.DeadLetter(ctx, backends.DeadLetterParams{Lease: r.Lease,
		Error: job.AttemptError{Attempt: r.Attempts() + 1, At: now, Error: "corrupt job record: " + cause.Error()}})
	if err != nil {
		b.cfg.Logger.Error("pgbackend: could not dead-letter malformed job; it returns after its lease",
			"queue", r.Queue, "id", r.ID, "err", err)
	}
}

// Extend implements backends.Backend.
func (b *Backend) Extend(ctx context.Context, p backends.ExtendParams) ([]backends.ExtendResult, error) {
	if err := b.gate.Check(ctx); err != nil {
		return nil, err
	}
	out := make([]backends.ExtendResult, len(p.Leases))
	ids, tokens := make([]string, len(p.Leases)), make([]string, len(p.Leases))
	for i, l := range p.Leases {
		out[i] = backends.ExtendResult{JobID: l.JobID, Lost: true}
		ids[i], tokens[i] = l.JobID, l.Token
	}
	rows, err := asyncQuerier{b.pool}.query(ctx, b.q.extend, ids, b.cfg.Clock.Now(), p.Lease.Milliseconds(), tokens)
	if err != nil {
		return nil, fmt.Errorf("pgbackend: extend: %w", err)
	}
	extended := map[job.Lease]backends.ExtendResult{} // by job and token
	err = scanAll(rows, func(s scanner) error {
		var r backends.ExtendResult
		var token string
		err := s.Scan(&r.JobID, &token, &r.ExpiresAt, &r.CancelRequested)
		extended[job.Lease{JobID: r.JobID, Token: token}] = r
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("pgbackend: extend: %w", err)
	}
	for i, l := range p.Leases {
		if r, ok := extended[job.Lease{JobID: l.JobID, Token: l.Token}]; ok {
			out[i] = r
		}
	}
	return out, nil
}

// Complete implements backends.Backend.
func (b *Backend) Complete(ctx context.Context, p backends.CompleteParams) error {
	return backends.CompleteOne(ctx, b, p) // CompleteMany checks the gate
}

// CompleteMany implements backends.BatchCompleter: one UPDATE for the batch.
func (b *Backend) CompleteMany(ctx context.Context, p backends.CompleteManyParams) ([]error, error) {
	if err := b.gate.Check(ctx); err != nil {
		return nil, err
	}
	return completeMany(ctx, pgxQuerier{b.pool}, b.q.complete, p, b.cfg.Clock.Now())
}

func completeMany(ctx context.Context, q querier, sql string, p backends.CompleteManyParams, now time.Time) ([]error, error) {
	ids, tokens, results := make([]string, len(p.Jobs)), make([]string, len(p.Jobs)), make([][]byte, len(p.Jobs))
	for i, c := range p.Jobs {
		ids[i], tokens[i], results[i] = c.Lease.JobID, c.Lease.Token, c.Result
	}
	rows, err := q.query(ctx, sql, ids, now, tokens, results)
	if err != nil {
		return nil, fmt.Errorf("pgbackend: complete: %w", err)
	}
	done := map[string]bool{}
	err = scanAll(rows, func(s scanner) error {
		var id string
		err := s.Scan(&id)
		done[id] = true
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("pgbackend: complete: %w", err)
	}
	errs := make([]error, len(p.Jobs))
	for i, c := range p.Jobs {
		if !done[c.Lease.JobID] {
			errs[i] = record.LeaseLost(c.Lease)
		}
	}
	return errs, nil
}

// Retry implements backends.Backend.
func (b *Backend) Retry(ctx context.Context, p backends.RetryParams) error {
	if err := b.gate.Check(ctx); err != nil {
		return err
	}
	var attempt any // NULL: a snooze
	if p.Error != nil {
		attempt = errorJSON(*p.Error)
	}
	return b.leased(ctx, asyncQuerier{b.pool}, p.Lease, b.q.retry, p.At, attempt)
}

// DeadLetter implements backends.Backend.
func (b *Backend) DeadLetter(ctx context.Context, p backends.DeadLetterParams) error {
	if err := b.gate.Check(ctx); err != nil {
		return err
	}
	return b.leased(ctx, pgxQuerier{b.pool}, p.Lease, b.q.dead, errorJSON(p.Error))
}

// leased runs a statement on the job l holds ($1 its ID, $2 now, $3 the
// token, then args; it returns the ID when it changed the job) on q.
func (b *Backend) leased(ctx context.Context, q querier, l job.Lease, sql string, args ...any) error {
	rows, err := q.query(ctx, sql, append([]any{l.JobID, b.cfg.Clock.Now(), l.Token}, args...)...)
	found := false
	if err == nil {
		err = scanAll(rows, func(scanner) error { found = true; return nil })
	}
	if err != nil {
		return fmt.Errorf("pgbackend: job %s: %w", l.JobID, err)
	}
	if !found {
		return record.LeaseLost(l)
	}
	return nil
}

// errorJSON is one attempt error as a one-element JSON array, to append to
// the errors column.
func errorJSON(e job.AttemptError) string { return "[" + record.AttemptError(e) + "]" }

// Cancel implements backends.Backend.
func (b *Backend) Cancel(ctx context.Context, p backends.CancelParams) (job.State, error) {
	if err := b.gate.Check(ctx); err != nil {
		return "", err
	}
	var state job.State
	err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		var st, token string
		if err := tx.QueryRow(ctx, b.q.cancelRow, p.JobID).Scan(&st, &token); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return record.NotFound(p.JobID)
			}
			return err
		}
		state = job.State(st)
		switch {
		case state.Finished():
			return record.Finished(p.JobID, state)
		case state == job.Running && p.Lease == nil:
			_, err := tx.Exec(ctx, b.q.cancelRequest, p.JobID)
			return err
		case state == job.Running && p.Lease.Token != token:
			return record.LeaseLost(*p.Lease)
		}
		state = job.Cancelled
		_, err := tx.Exec(ctx, b.q.cancelJob, p.JobID, b.cfg.Clock.Now())
		return err
	})
	if err != nil && !errors.Is(err, job.ErrNotFound) && !errors.Is(err, job.ErrFinished) && !errors.Is(err, job.ErrLeaseLost) {
		return state, fmt.Errorf("pgbackend: cancel %s: %w", p.JobID, err)
	}
	return state, err
}
