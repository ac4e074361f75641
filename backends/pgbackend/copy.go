package pgbackend

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

// copyColumns are the columns a COPY of a batch fills, in the order of
// copyRows.Values; the others take their defaults.
var copyColumns = []string{"id", "queue", "task", "payload", "headers", "priority", "state", "run_at", "created_at",
	"max_deliveries", "timeout_ms", "retry_policy"}

// canCopy reports whether Enqueue may write p with COPY: more than one job
// (one job is one INSERT either way, and the INSERT's plan is cached), and
// none that needs what only the INSERT does, a bound or key checked first
// or a fair group's row in the ring.
func canCopy(p backends.EnqueueParams) bool {
	if len(p.Jobs) < 2 || needsLocks(p) {
		return false
	}
	for _, ins := range p.Jobs {
		if ins.Group != "" {
			return false
		}
	}
	return true
}

// errIDTaken is what copyIn reports when the batch holds an ID the table
// already has, or the same ID twice.
var errIDTaken = errors.New("pgbackend: an ID in the batch is taken")

// copyIn writes a batch with COPY, whose heap writes PostgreSQL batches per
// page (the INSERT ... SELECT FROM unnest writes row by row and sorts and
// checks conflicts first): the bench's batch row went from 0.79x River's
// InsertManyFast, itself a COPY, to 1.06x (docs/benchmarks.md). The
// statement triggers (counts, NOTIFY) fire for a COPY as for an INSERT.
//
// COPY has no ON CONFLICT, so a batch holding a stored ID (a client
// re-sending a batch whose reply it lost) fails whole, writing nothing, and
// copyIn reports errIDTaken; Enqueue then writes it with the INSERT, which
// answers each such job as a duplicate.
func (b *Backend) copyIn(ctx context.Context, p backends.EnqueueParams) ([]backends.EnqueueResult, error) {
	now := b.cfg.Clock.Now()
	var a insertArrays
	for i, ins := range p.Jobs {
		a.add(ins, i, now)
	}
	src := &copyRows{a: &a, now: now, i: -1}
	if _, err := b.pool.CopyFrom(ctx, pgx.Identifier{b.cfg.Schema, "jobs"}, copyColumns, src); err != nil {
		if pe := (*pgconn.PgError)(nil); errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == "jobs_pkey" {
			return nil, errIDTaken
		}
		return nil, err
	}
	res := make([]backends.EnqueueResult, len(p.Jobs))
	for i, ins := range p.Jobs {
		res[i] = backends.EnqueueResult{ID: ins.ID, State: stateAt(a.runAts[i], now)}
	}
	return res, nil
}

// stateAt is the state of a new job due at runAt, as the INSERT sets it.
func stateAt(runAt, now time.Time) job.State {
	if runAt.After(now) {
		return job.Scheduled
	}
	return job.Pending
}

// copyRows feeds insertArrays to CopyFrom, one row at a time, in one
// reused slice (CopyFrom encodes a row before it asks for the next).
type copyRows struct {
	a   *insertArrays
	now time.Time
	i   int
	row [12]any
}

func (c *copyRows) Next() bool {
	c.i++
	return c.i < len(c.a.ids)
}

func (c *copyRows) Values() ([]any, error) {
	a, i := c.a, c.i
	c.row = [12]any{a.ids[i], a.queues[i], a.tasks[i], a.payloads[i], a.headers[i], a.prios[i],
		string(stateAt(a.runAts[i], c.now)), a.runAts[i], c.now, a.maxDeliveries[i], a.timeouts[i], a.policies[i]}
	return c.row[:], nil
}

func (c *copyRows) Err() error { return nil }
