package pgbackend

import (
	"context"
	"fmt"

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

// The ring keeps a row for every group with a job waiting or running;
// the janitor deletes the rows of groups with neither that were not served
// in the ring's last round (pruneRingSQL), so a queue whose tenants come
// and go does not probe every tenant it ever had on each fair reserve. A
// group that comes back joins as never served (backends.FairReserver).
//
// An enqueue that finds its group's row there inserts none. Were the
// janitor to delete that row before the enqueue's job committed, the job
// would wait in no group of the ring. So every statement that puts a
// job's group in the ring first takes the ring lock shared (ringShared,
// held to the end of its transaction), and the janitor takes it
// exclusive, without waiting, before the statement that looks for idle
// groups: that statement then sees every job of every enqueue that had
// found a row, and an enqueue that waited for the janitor finds the row
// gone and inserts it again. Plain jobs' group (the empty one) is never
// pruned, and an enqueue of plain jobs takes no lock.
const (
	ringLockKey = `hashtextextended('conveyor-ring:S.', 0)`
	// ringShared is the CTE lk, which a statement's ring insert depends on
	// (a scalar subquery over it) so that it runs first; a caller may add a
	// WHERE.
	ringShared = `lk AS (SELECT pg_advisory_xact_lock_shared(` + ringLockKey + `)`
	// ringReplayed is the tail of a replay: the ring rows of the groups of
	// the jobs it replayed (CTE replayed), and their number.
	ringReplayed = `ring AS (INSERT INTO S.fair_groups (queue, grp)
			SELECT DISTINCT queue, grp FROM replayed WHERE (SELECT count(*) FROM lk) >= 0 ORDER BY 1, 2
			ON CONFLICT DO NOTHING)
		SELECT count(*) FROM replayed`
	ringTryLockSQL = `SELECT pg_try_advisory_xact_lock(` + ringLockKey + `)`
	// pruneRingSQL deletes up to 1,000 idle groups' rows: not the empty
	// group, no job waiting (jobs_fair) or running, and a serving number
	// older than the ring has groups, so that each group with a due job was
	// served since.
	pruneRingSQL = `DELETE FROM S.fair_groups f USING (
			SELECT g.queue, g.grp FROM S.fair_groups g
			JOIN (SELECT queue, max(served) - count(*) AS cut FROM S.fair_groups GROUP BY queue) c ON c.queue = g.queue
			WHERE g.grp <> '' AND g.served < c.cut
				AND NOT EXISTS (SELECT 1 FROM S.jobs j WHERE j.queue = g.queue AND j.grp = g.grp AND j.state IN {waiting})
				AND NOT EXISTS (SELECT 1 FROM S.jobs j WHERE j.queue = g.queue AND j.grp = g.grp AND j.state = 'running')
			LIMIT 1000) d
		WHERE f.queue = d.queue AND f.grp = d.grp`
)

// pruneRing deletes idle groups' ring rows (see ringShared), in its own
// transaction so that enqueues wait on the ring lock only while it
// deletes. It skips the round if an enqueue holds the lock.
func (b *Backend) pruneRing(ctx context.Context) error {
	for range 10 { // bounded work per tick
		n := int64(0)
		err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
			var locked bool
			if err := tx.QueryRow(ctx, b.q.ringTryLock).Scan(&locked); err != nil || !locked {
				return err
			}
			tag, err := tx.Exec(ctx, b.q.pruneRing)
			n = tag.RowsAffected()
			return err
		})
		if err != nil {
			return fmt.Errorf("pgbackend: janitor: prune the fair ring: %w", err)
		}
		if n < 1000 {
			return nil
		}
	}
	return nil
}

// fairReserveSQL is the reserve statement of ReserveFair, with the
// parameters of queries.reserve and then the groups weighted above 1 ($8)
// and their weights ($9). ring: the queue's groups (migration 6) with
// their weights, unless the queue is paused. picks: each group's first $3
// due jobs in Reserve's order, an index range of jobs_fair each, numbered
// within the group (rn). due: up to $3 of them, by the round each falls
// in (a group's turn of weight jobs goes on from where it stopped: turn,
// migration 8), then groups least recently served first, numbered in that
// order (pos). moved: a group that finished a turn takes the serving
// number of the job that finished it, after every number handed out
// before; every group served keeps how far into its turn it is. The
// update then leases due as Reserve's does.
const fairReserveSQL = `WITH ` + fairDue + `
	UPDATE S.jobs j SET ` + leaseDue + `
	FROM due WHERE j.ctid = due.ctid
	RETURNING {jcols}, due.pos, false`

// fairDue are the CTEs of fairReserveSQL up to due and the ring's move,
// which fairSlotsReserveSQL shares.
const fairDue = `ring AS (
		SELECT f.grp, f.served, f.turn, coalesce(w.weight, 1) AS weight FROM S.fair_groups f
			LEFT JOIN unnest($8::text[], $9::int[]) AS w(grp, weight) ON w.grp = f.grp
		WHERE f.queue = $1 AND NOT EXISTS (SELECT 1 FROM S.queues WHERE name = $1 AND paused)),
	picks AS (
		SELECT r.grp, r.served, r.turn, r.weight, c.ctid, c.poison,
			row_number() OVER (PARTITION BY r.grp ORDER BY c.priority DESC, c.run_at, c.seq) AS rn
		FROM ring r CROSS JOIN LATERAL (
			SELECT j.ctid, j.priority, j.run_at, j.seq, (j.max_deliveries > 0 AND j.deliveries >= j.max_deliveries) AS poison
			FROM S.jobs j WHERE j.queue = $1 AND j.grp = r.grp AND j.state IN {waiting} AND j.run_at <= $2
			ORDER BY j.priority DESC, j.run_at, j.seq
			LIMIT $3
			FOR UPDATE OF j SKIP LOCKED) c),
	due AS (
		SELECT ctid, poison, grp, turn, weight, rn,
			row_number() OVER (ORDER BY (turn + rn - 1) / weight, served, grp, rn) AS pos
		FROM picks ORDER BY pos LIMIT $3),
	moved AS (
		UPDATE S.fair_groups f SET served = coalesce(base.n + m.pos, f.served), turn = (f.turn + m.taken) % m.weight
		FROM (SELECT coalesce(max(served), 0) AS n FROM S.fair_groups WHERE queue = $1) base,
			(SELECT grp, count(*) AS taken, min(weight) AS weight,
				max(pos) FILTER (WHERE (turn + rn) % weight = 0) AS pos FROM due GROUP BY grp) m
		WHERE f.queue = $1 AND f.grp = m.grp)`

// weightArgs are p's weights above 1 as fairReserveSQL's $8 and $9.
func weightArgs(p backends.ReserveParams) (groups []string, weights []int32) {
	for g := range p.Weights {
		if w := p.Weight(g); w > 1 {
			groups, weights = append(groups, g), append(weights, int32(min(w, 1<<30)))
		}
	}
	return groups, weights
}

// ReserveFair implements backends.FairReserver: one round trip, as
// Reserve, with the queue's fair lock taken first. Its cost grows with
// the number of groups in the queue's ring (an index probe each), not with
// their backlogs; the janitor keeps idle ones out (pruneRing).
func (b *Backend) ReserveFair(ctx context.Context, p backends.ReserveParams) ([]*job.Record, error) {
	res, err := b.reserveDue(ctx, p, variant{fair: true})
	return res.Jobs, err
}

// withPos scans a fair reserve's row, or one of a reserve with slot
// rules: the record's columns, then pos and held.
type withPos struct {
	rows pgx.Rows
	pos  *int64
	held *bool
}

func (w withPos) Scan(dest ...any) error { return w.rows.Scan(append(dest, w.pos, w.held)...) }
