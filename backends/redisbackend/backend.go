package redisbackend

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/internal/record"
	"github.com/conveyorhq/conveyor/job"
)

// Enqueue implements backends.Backend. A batch is one script run, atomic
// with its depth checks. In Redis Cluster a batch that spans several queues
// runs one script per queue, so it is atomic per queue only.
func (b *Backend) Enqueue(ctx context.Context, p backends.EnqueueParams) ([]backends.EnqueueResult, error) {
	if res, err := b.gate.Enqueue(ctx, p); res != nil || err != nil {
		return res, err
	}
	var queues []string
	for _, ins := range p.Jobs {
		if !slices.Contains(queues, ins.Queue) {
			queues = append(queues, ins.Queue)
		}
	}
	if err := b.register(ctx, queues...); err != nil {
		return nil, err
	}
	if !b.cluster || len(queues) == 1 {
		return b.enqueue(ctx, queues, p)
	}
	res := make([]backends.EnqueueResult, len(p.Jobs))
	for _, q := range queues {
		var idx []int
		var part backends.EnqueueParams
		for i, ins := range p.Jobs {
			if ins.Queue == q {
				idx = append(idx, i)
				part.Jobs = append(part.Jobs, ins)
			}
		}
		r, err := b.enqueue(ctx, []string{q}, part)
		if err != nil {
			return nil, err
		}
		for j, i := range idx {
			res[i] = r[j]
		}
	}
	return res, nil
}

func (b *Backend) enqueue(ctx context.Context, queues []string, p backends.EnqueueParams) ([]backends.EnqueueResult, error) {
	now := b.cfg.Clock.Now().UnixMilli()
	var v []any
	var err error
	if lean(queues, p) {
		args := make([]any, 0, 1+leanArgs*len(p.Jobs))
		args = append(args, len(p.Jobs), now)
		for _, ins := range p.Jobs {
			args = packLean(args, ins, now)
		}
		script := b.s.enqueueLean
		if len(p.Jobs) == 1 {
			script = b.s.enqueueOne
		}
		v, err = script.Run(ctx, b.rdb, []string{b.base(queues[0])}, args...).Slice()
	} else {
		keys := make([]string, len(queues))
		args := make([]any, 0, 1+2*len(queues)+13*len(p.Jobs))
		args = append(args, now)
		need := p.DepthNeeded()
		for i, q := range queues {
			keys[i] = b.base(q)
			args = append(args, q, need[q].MaxDepth)
		}
		for _, ins := range p.Jobs {
			args = append(args, ins.ID, slices.Index(queues, ins.Queue)+1, ins.Task, ins.Payload,
				ins.Priority, record.Millis(ins.RunAt), ins.MaxDeliveries, ins.Timeout.Milliseconds(), ins.RetryPolicy,
				record.Headers(ins.Headers), ins.UniqueKey, record.Millis(ins.UniqueUntil), ins.Group)
		}
		v, err = b.s.enqueue.Run(ctx, b.rdb, keys, args...).Slice()
	}
	if err != nil {
		return nil, fmt.Errorf("redisbackend: enqueue: %w", err)
	}
	if len(v) == 5 && v[0] == "full" {
		return nil, backends.QueueFullError(str(v[1]), integer(v[2]), integer(v[3]), integer(v[4]))
	}
	if len(v) != 1+3*len(p.Jobs) {
		return nil, fmt.Errorf("redisbackend: enqueue: unexpected reply of %d values", len(v))
	}
	res := make([]backends.EnqueueResult, len(p.Jobs))
	for i := range res {
		o := 1 + 3*i
		res[i] = backends.EnqueueResult{ID: str(v[o]), State: job.State(str(v[o+1])), Duplicate: integer(v[o+2]) == 1}
	}
	return res, nil
}

// lean tells whether a batch can take the lean enqueue script: one queue,
// no bound to check and no unique key to hold, so nothing but the job's own
// ID is read before writing.
func lean(queues []string, p backends.EnqueueParams) bool {
	if len(queues) != 1 {
		return false
	}
	for _, ins := range p.Jobs {
		if ins.MaxDepth > 0 || ins.UniqueKey != "" || !ins.UniqueUntil.IsZero() {
			return false
		}
	}
	return true
}

// leanArgs is about how many arguments packLean gives a job.
const leanArgs = 10

// packLean appends a job's arguments for the lean scripts (see
// lua/enqueue_lean.lua): what the script would otherwise work out per job
// in Lua — the state, the sorted-set score, the ready member's prefix,
// which optional fields are set — is worked out here, where it costs a
// fraction of Redis's time. The fields every job has go by position (their
// names are the script's constants): each argument costs the client too.
func packLean(args []any, ins *backends.JobInsert, now int64) []any {
	runAt := record.Millis(ins.RunAt)
	if runAt <= 0 {
		runAt = now
	}
	state, score, prefix := job.Pending, any(-ins.Priority), ""
	if runAt > now {
		state, score = job.Scheduled, runAt
	} else {
		prefix = readyPrefix(runAt)
	}
	at := len(args) + 9 // where the count of optional values goes
	args = append(args, ins.ID, string(state), score, prefix, ins.Task, ins.Payload, ins.Priority, runAt, ins.MaxDeliveries, 0)
	// Empty optional fields are left out, as enqueue.lua does.
	if to := ins.Timeout.Milliseconds(); to != 0 {
		args = append(args, "to", to)
	}
	if rp := ins.RetryPolicy; rp != "" && rp != "0" {
		args = append(args, "rp", rp)
	}
	if h := record.Headers(ins.Headers); len(h) > 0 {
		args = append(args, "h", h)
	}
	if ins.Group != "" {
		args = append(args, "g", ins.Group) // last: the scripts find it there
	}
	args[at] = len(args) - at - 1
	return args
}

// readyPrefix is the start of a ready-set member, the run-at in
// milliseconds as 13 digits and a colon (lua/prelude.lua's layout).
func readyPrefix(ms int64) string {
	var b [20]byte
	d := strconv.AppendInt(b[:0], ms, 10)
	if len(d) >= 13 {
		return string(d) + ":"
	}
	return strings.Repeat("0", 13-len(d)) + string(d) + ":"
}

// maxBatch bounds the jobs one script run reserves or completes: the
// scripts pass one argument per job to a variadic command, and Lua's unpack
// takes a few thousand at most.
const maxBatch = 1000

// poisonFormat is backends.PoisonReason with a %d where the delivery count
// goes, for the reserve script to fill in.
var poisonFormat = record.PoisonFormat("%d")

// Reserve implements backends.Backend. The script also recovers the queue's
// expired leases and promotes its due jobs, so a queue with workers never
// waits for the janitor.
func (b *Backend) Reserve(ctx context.Context, p backends.ReserveParams) ([]*job.Record, error) {
	if err := b.gate.Valid(ctx, p); err != nil {
		return nil, err
	}
	res, err := b.reserveAll(ctx, p, variant{})
	return res.Jobs, err
}

// variant is which reserve runs: reserve.lua, with slot rules (slots.go)
// or without, or reserve_fair.lua (fair.go).
type variant struct {
	fair  bool
	slots []any // reserve.lua's arguments for the rules
}

// reserveAll runs the script until p.Limit jobs are leased or held back,
// or a run took fewer than it asked for: the ready set ran out
// (record.Fill). A run asks for maxBatch at most, and the jobs it leased
// that were corrupt (set aside here) leave its share short.
func (b *Backend) reserveAll(ctx context.Context, p backends.ReserveParams, v variant) (backends.ReserveSlotsResult, error) {
	return record.Fill(p.Limit, maxBatch, func(limit int) (backends.ReserveSlotsResult, int, error) {
		ask := p
		ask.Limit = limit
		return b.reserve(ctx, ask, v)
	})
}

// ReservesExhaustively implements backends.ExhaustiveReserver (reserveAll).
func (b *Backend) ReservesExhaustively() bool { return true }

// reserve runs the script once; took counts the jobs it leased, usable or
// not, and held back.
func (b *Backend) reserve(ctx context.Context, p backends.ReserveParams, v variant) (backends.ReserveSlotsResult, int, error) {
	var res backends.ReserveSlotsResult
	now := b.cfg.Clock.Now()
	script, args := b.s.reserve, []any{now.UnixMilli(), p.Limit, p.Lease.Milliseconds(),
		p.Worker, newTokenPrefix(p.Queue), record.KeepMillis(b.cfg.KeepDead), poisonFormat}
	if v.fair {
		var weights []any
		for g := range p.Weights {
			if w := p.Weight(g); w > 1 {
				weights = append(weights, g, w)
			}
		}
		script, args = b.s.reserveFair, append(args, int(fairIndexFor.Seconds()), fairIndexBatch, len(weights)/2)
		args = append(args, weights...)
	}
	args = append(args, v.slots...)
	reply, err := script.Run(ctx, b.rdb, []string{b.base(p.Queue)}, args...).Slice()
	if err != nil {
		return res, 0, fmt.Errorf("redisbackend: reserve from %s: %w", p.Queue, err)
	}
	if len(reply) < 3 {
		return res, 0, fmt.Errorf("redisbackend: reserve: unexpected reply of %d values", len(reply))
	}
	got, _ := reply[0].([]any)
	b.reportBroken(p.Queue, reply[1], reply[2])
	res.Jobs = make([]*job.Record, 0, len(got)/3)
	for i := 0; i+2 < len(got); i += 3 {
		r, err := decode(str(got[i]), p.Queue, got[i+2])
		// The record is as it was before this reserve; apply what the
		// script changed.
		r.State, r.Deliveries, r.StartedAt, r.CancelRequested = job.Running, r.Deliveries+1, time.UnixMilli(now.UnixMilli()), false
		r.Lease = job.Lease{JobID: r.ID, Token: str(got[i+1]), ExpiresAt: time.UnixMilli(now.UnixMilli() + p.Lease.Milliseconds())}
		if err != nil {
			b.setAside(ctx, r, err, now)
			continue
		}
		res.Jobs = append(res.Jobs, r)
	}
	took := len(got) / 3
	if len(reply) > 3 {
		held, _ := reply[3].([]any)
		took += len(held) / 2
		for i := 0; i+1 < len(held); i += 2 {
			// One that does not decode is set aside when it is next leased.
			if r, err := decode(str(held[i]), p.Queue, held[i+1]); err == nil {
				res.HeldBack = append(res.HeldBack, r)
			}
		}
	}
	return res, took, nil
}

// setAside dead-letters a reserved job whose hash does not parse, with the
// reason, instead of handing a worker half a record or wedging the queue.
func (b *Backend) setAside(ctx context.Context, r *job.Record, cause error, now time.Time) {
	b.cfg.Logger.Error("redisbackend: malformed job dead-lettered", "queue", r.Queue, "id", r.ID, "err", cause)
	err := b.DeadLetter(ctx, backends.DeadLetterParams{
		Lease: job.Lease{JobID: r.ID, Token: r.Lease.Token},
		Error: job.AttemptError{Attempt: r.Attempts() + 1, At: now, Error: "corrupt job record: " + cause.Error()},
	})
	if err != nil {
		b.cfg.Logger.Error("redisbackend: could not dead-letter malformed job; it returns after its lease",
			"queue", r.Queue, "id", r.ID, "err", err)
	}
}

// byQueue groups items by the queue their lease token names; tokens that
// name none are reported to lost.
func byQueue[T any](items []T, token func(T) string, lost func(i int)) (order []string, groups map[string][]int) {
	groups = map[string][]int{}
	for i, it := range items {
		q, ok := queueOf(token(it))
		if !ok {
			lost(i)
			continue
		}
		if _, seen := groups[q]; !seen {
			order = append(order, q)
		}
		groups[q] = append(groups[q], i)
	}
	return order, groups
}

// Extend implements backends.Backend, one script run per queue.
func (b *Backend) Extend(ctx context.Context, p backends.ExtendParams) ([]backends.ExtendResult, error) {
	if err := b.gate.Check(ctx); err != nil {
		return nil, err
	}
	out := make([]backends.ExtendResult, len(p.Leases))
	for i, l := range p.Leases {
		out[i] = backends.ExtendResult{JobID: l.JobID, Lost: true}
	}
	order, groups := byQueue(p.Leases, func(l job.Lease) string { return l.Token }, func(int) {})
	now := b.cfg.Clock.Now().UnixMilli()
	for _, q := range order {
		args := []any{now, p.Lease.Milliseconds()}
		for _, i := range groups[q] {
			args = append(args, p.Leases[i].JobID, p.Leases[i].Token)
		}
		v, err := b.s.extend.Run(ctx, b.rdb, []string{b.base(q)}, args...).Int64Slice()
		if err != nil {
			return nil, fmt.Errorf("redisbackend: extend in %s: %w", q, err)
		}
		for j, i := range groups[q] {
			if exp := v[2*j]; exp >= 0 {
				out[i] = backends.ExtendResult{JobID: p.Leases[i].JobID, ExpiresAt: time.UnixMilli(exp), CancelRequested: v[2*j+1] == 1}
			}
		}
	}
	return out, nil
}

// Complete implements backends.Backend.
func (b *Backend) Complete(ctx context.Context, p backends.CompleteParams) error {
	return backends.CompleteOne(ctx, b, p) // CompleteMany checks the gate
}

// CompleteMany implements backends.BatchCompleter: one script run per queue.
func (b *Backend) CompleteMany(ctx context.Context, p backends.CompleteManyParams) ([]error, error) {
	if err := b.gate.Check(ctx); err != nil {
		return nil, err
	}
	errs := make([]error, len(p.Jobs))
	order, groups := byQueue(p.Jobs, func(c backends.CompleteParams) string { return c.Lease.Token },
		func(i int) { errs[i] = record.LeaseLost(p.Jobs[i].Lease) })
	now := b.cfg.Clock.Now().UnixMilli()
	for _, q := range order {
		for chunk := range slices.Chunk(groups[q], maxBatch) {
			args := []any{now, record.KeepMillis(b.cfg.KeepDone)}
			for _, i := range chunk {
				args = append(args, p.Jobs[i].Lease.JobID, p.Jobs[i].Lease.Token, p.Jobs[i].Result)
			}
			v, err := b.s.complete.Run(ctx, b.rdb, []string{b.base(q)}, args...).Int64Slice()
			if err != nil {
				return nil, fmt.Errorf("redisbackend: complete in %s: %w", q, err)
			}
			for j, i := range chunk {
				if v[j] != 1 {
					errs[i] = record.LeaseLost(p.Jobs[i].Lease)
				}
			}
		}
	}
	return errs, nil
}

// Retry implements backends.Backend.
func (b *Backend) Retry(ctx context.Context, p backends.RetryParams) error {
	if err := b.gate.Check(ctx); err != nil {
		return err
	}
	line := ""
	if p.Error != nil {
		line = encodeError(*p.Error)
	}
	return b.retryOrDead(ctx, p.Lease, record.Millis(p.At), line, false)
}

// DeadLetter implements backends.Backend.
func (b *Backend) DeadLetter(ctx context.Context, p backends.DeadLetterParams) error {
	if err := b.gate.Check(ctx); err != nil {
		return err
	}
	return b.retryOrDead(ctx, p.Lease, 0, encodeError(p.Error), true)
}

func (b *Backend) retryOrDead(ctx context.Context, l job.Lease, at int64, errLine string, dead bool) error {
	q, ok := queueOf(l.Token)
	if !ok {
		return record.LeaseLost(l)
	}
	deadFlag := 0
	if dead {
		deadFlag = 1
	}
	n, err := b.s.retry.Run(ctx, b.rdb, []string{b.base(q)}, b.cfg.Clock.Now().UnixMilli(), l.JobID, l.Token, at,
		errLine, record.KeepMillis(b.cfg.KeepDead), deadFlag).Int64()
	if err != nil {
		return fmt.Errorf("redisbackend: finishing attempt of %s: %w", l.JobID, err)
	}
	if n != 1 {
		return record.LeaseLost(l)
	}
	return nil
}

// Cancel implements backends.Backend.
func (b *Backend) Cancel(ctx context.Context, p backends.CancelParams) (job.State, error) {
	if err := b.gate.Check(ctx); err != nil {
		return "", err
	}
	var q, token string
	if p.Lease != nil {
		q, _ = queueOf(p.Lease.Token)
		token = p.Lease.Token
	}
	if q == "" {
		var err error
		if q, err = b.find(ctx, p.JobID); err != nil {
			return "", err
		}
	}
	v, err := b.s.cancel.Run(ctx, b.rdb, []string{b.base(q)}, b.cfg.Clock.Now().UnixMilli(), p.JobID, token,
		record.KeepMillis(b.cfg.KeepDone)).StringSlice()
	if err != nil {
		return "", fmt.Errorf("redisbackend: cancel %s: %w", p.JobID, err)
	}
	state := job.State(v[1])
	switch v[0] {
	case "notfound":
		return "", record.NotFound(p.JobID)
	case "finished":
		return state, record.Finished(p.JobID, state)
	case "lost":
		return state, record.LeaseLost(*p.Lease)
	}
	return state, nil
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func integer(v any) int {
	n, _ := v.(int64)
	return int(n)
}
