package pgbackend

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

var _ backends.FairReserver = (*Backend)(nil)

// fairLockSQL serializes the fair reserves of one queue for the rest of
// the reserve's transaction: each reads the ring as the last one left it,
// so every process serves the groups in one order. (Reserve's own
// FOR UPDATE SKIP LOCKED would let two reserves serve the same group's
// turn.)
const fairLockSQL = `SELECT pg_advisory_xact_lock(hashtextextended('conveyor-fair:S.' || $1, 0))`

// fairReserveSQL is the reserve statement of ReserveFair, with the
// parameters of queries.reserve. ring: the queue's groups (migration 6),
// unless the queue is paused. picks: each group's first $3 due jobs in
// Reserve's order, an index range of jobs_fair each, numbered within the
// group. due: a job of each group a round (rn), groups least recently
// served first, up to $3, numbered in that order (pos). moved: each group
// served takes the serving number of its last job, after every number
// handed out before. The update then leases due as Reserve's does.
const fairReserveSQL = `WITH ring AS (
		SELECT grp, served FROM S.fair_groups WHERE queue = $1
			AND NOT EXISTS (SELECT 1 FROM S.queues WHERE name = $1 AND paused)),
	picks AS (
		SELECT r.grp, r.served, c.ctid, c.poison,
			row_number() OVER (PARTITION BY r.grp ORDER BY c.priority DESC, c.run_at, c.seq) AS rn
		FROM ring r CROSS JOIN LATERAL (
			SELECT j.ctid, j.priority, j.run_at, j.seq, (j.max_deliveries > 0 AND j.deliveries >= j.max_deliveries) AS poison
			FROM S.jobs j WHERE j.queue = $1 AND j.grp = r.grp AND j.state IN {waiting} AND j.run_at <= $2
			ORDER BY j.priority DESC, j.run_at, j.seq
			LIMIT $3
			FOR UPDATE OF j SKIP LOCKED) c),
	due AS (
		SELECT ctid, poison, grp, row_number() OVER (ORDER BY rn, served, grp) AS pos
		FROM picks ORDER BY rn, served, grp LIMIT $3),
	moved AS (
		UPDATE S.fair_groups f SET served = base.n + m.pos
		FROM (SELECT coalesce(max(served), 0) AS n FROM S.fair_groups WHERE queue = $1) base,
			(SELECT grp, max(pos) AS pos FROM due GROUP BY grp) m
		WHERE f.queue = $1 AND f.grp = m.grp)
	UPDATE S.jobs j SET ` + leaseDue + `
	FROM due WHERE j.ctid = due.ctid
	RETURNING {jcols}, due.pos`

// ReserveFair implements backends.FairReserver: one round trip, as
// Reserve, with the queue's fair lock taken first. Its cost grows with
// the number of groups the queue has had (an index probe each), not with
// their backlogs.
func (b *Backend) ReserveFair(ctx context.Context, p backends.ReserveParams) ([]*job.Record, error) {
	return b.reserveDue(ctx, p, true)
}

// withPos scans a fair reserve's row: the record's columns, then pos.
type withPos struct {
	rows pgx.Rows
	pos  *int64
}

func (w withPos) Scan(dest ...any) error { return w.rows.Scan(append(dest, w.pos)...) }
