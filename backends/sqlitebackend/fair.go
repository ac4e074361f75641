package sqlitebackend

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"iter"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/internal/record"
	"github.com/conveyorhq/conveyor/job"
)

var _ backends.FairReserver = (*Backend)(nil)

// fairSchema is what fair queuing adds to schema.sql: each job's group,
// an index that walks one group's due jobs in Reserve's order, and the
// ring: a row per group of a queue, with the serving number of its last
// finished turn (0: never served) and how many jobs it has taken of the
// turn it is in (weights: ReserveParams.Weights). A group's row stays while it has a job waiting
// or running, so it keeps its place in the ring; the janitor drops idle
// ones (pruneRingSQL).
const fairSchema = `
CREATE INDEX IF NOT EXISTS conveyor_jobs_fair ON conveyor_jobs (queue, grp, priority DESC, run_at, seq)
    WHERE state IN ('pending', 'scheduled', 'retrying');
CREATE TABLE IF NOT EXISTS conveyor_fair_groups (
    queue  TEXT NOT NULL,
    grp    TEXT NOT NULL,
    served INTEGER NOT NULL DEFAULT 0,
    turn   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (queue, grp)
);`

// applyFairSchema adds the grp column to a file made before it (SQLite's
// CREATE TABLE IF NOT EXISTS leaves an existing table as it is), then
// fairSchema, then the ring's turn column to a ring made before it.
func applyFairSchema(ctx context.Context, tx *sql.Tx) (err error) {
	has, err := hasColumn(ctx, tx, "conveyor_jobs", "grp")
	if err != nil {
		return err
	}
	if !has {
		if _, err := tx.ExecContext(ctx, `ALTER TABLE conveyor_jobs ADD COLUMN grp TEXT NOT NULL DEFAULT ''`); err != nil {
			return fmt.Errorf("add column grp: %w", err)
		}
		defer func() { // the jobs already there are each queue's group ""
			if err == nil {
				_, err = tx.ExecContext(ctx, `INSERT INTO conveyor_fair_groups (queue, grp)
					SELECT DISTINCT queue, '' FROM conveyor_jobs WHERE true ON CONFLICT DO NOTHING`)
			}
		}()
	}
	if _, err = tx.ExecContext(ctx, fairSchema); err != nil {
		return err
	}
	// A ring made before weights has no turn column.
	if has, err = hasColumn(ctx, tx, "conveyor_fair_groups", "turn"); err != nil || has {
		return err
	}
	if _, err = tx.ExecContext(ctx, `ALTER TABLE conveyor_fair_groups ADD COLUMN turn INTEGER NOT NULL DEFAULT 0`); err != nil {
		return fmt.Errorf("add column turn: %w", err)
	}
	return nil
}

// hasColumn reports whether table has column: a file made by an older
// version may lack one that CREATE TABLE IF NOT EXISTS does not add.
func hasColumn(ctx context.Context, tx *sql.Tx, table, column string) (has bool, err error) {
	err = tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pragma_table_info(?) WHERE name = ?)`, table, column).Scan(&has)
	return has, err
}

// groupKey is a row of the ring.
type groupKey struct{ queue, grp string }

// groupsOf are the ring rows of jobs, without a slice on the enqueue path.
func groupsOf(jobs []*backends.JobInsert) iter.Seq[groupKey] {
	return func(yield func(groupKey) bool) {
		for _, ins := range jobs {
			if !yield(groupKey{ins.Queue, ins.Group}) {
				return
			}
		}
	}
}

// registerGroups gives each (queue, group) its row in the ring, if it has
// none: the groups of a batch enqueued, or of jobs replayed (their groups
// may have been pruned while they were dead).
func registerGroups(ctx context.Context, stmt statements, keys iter.Seq[groupKey]) error {
	insert, err := stmt(sqlRegisterGroup)
	if err != nil {
		return err
	}
	seen := map[groupKey]bool{}
	for k := range keys {
		if seen[k] {
			continue
		}
		seen[k] = true
		if _, err := insert.ExecContext(ctx, k.queue, k.grp); err != nil {
			return err
		}
	}
	return nil
}

// pruneRingSQL deletes up to 1,000 idle groups' rows of the ring, so that
// a queue whose tenants come and go does not read every tenant it ever
// had on each fair reserve: not the group of plain jobs (the empty one),
// no job waiting or running, and a serving number older than the ring
// has groups, so that every group with a due job was served since. A
// group that comes back joins as never served (backends.FairReserver).
// The write lock keeps enqueues out meanwhile, so none can find a row this
// deletes.
const pruneRingSQL = `DELETE FROM conveyor_fair_groups WHERE rowid IN (
	SELECT g.rowid FROM conveyor_fair_groups g
	JOIN (SELECT queue, max(served) - count(*) AS cut FROM conveyor_fair_groups GROUP BY queue) c ON c.queue = g.queue
	WHERE g.grp != '' AND g.served < c.cut
		AND NOT EXISTS (SELECT 1 FROM conveyor_jobs j INDEXED BY conveyor_jobs_fair
			WHERE j.queue = g.queue AND j.grp = g.grp AND j.state IN ` + waitingStates + `)
		AND (g.queue, g.grp) NOT IN (SELECT queue, grp FROM conveyor_jobs WHERE state = 'running')
	LIMIT 1000)`

// pruneRing runs pruneRingSQL, up to ten times a tick.
func (b *Backend) pruneRing(ctx context.Context) error {
	for range 10 {
		var n int64
		err := b.write(ctx, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, pruneRingSQL)
			if err == nil {
				n, err = res.RowsAffected()
			}
			return err
		})
		if err != nil || n < 1000 {
			return err
		}
	}
	return nil
}

// ReserveFair implements backends.FairReserver. It visits the queue's
// groups in ring order, each with one index range read of its due jobs,
// until p.Limit groups have given jobs (or none is left), and deals them
// out a job a group a round. The write lock makes the ring one order for
// every process.
func (b *Backend) ReserveFair(ctx context.Context, p backends.ReserveParams) ([]*job.Record, error) {
	res, err := b.reserve(ctx, p, fairRows(ctx, p, ""), nil)
	return res.Jobs, err
}

// fairRows returns the candidates of a fair reserve: the columns reserve
// reads of the jobs fairCandidates picks, in its order, and more columns
// if any (a slot reserve's).
func fairRows(ctx context.Context, p backends.ReserveParams, more string) candidates {
	return func(tx *sql.Tx, now time.Time, limit int) (*sql.Rows, error) {
		p.Limit = limit
		ids, err := fairCandidates(ctx, tx, p, now)
		if err != nil {
			return nil, err
		}
		list, _ := json.Marshal(ids)
		return tx.QueryContext(ctx, `SELECT j.id, j.deliveries, j.max_deliveries`+more+`
			FROM json_each(?) k JOIN conveyor_jobs j ON j.id = k.value ORDER BY k.key`, string(list))
	}
}

// fairCandidates picks the IDs ReserveFair leases, in order, and moves
// their groups on in the ring.
func fairCandidates(ctx context.Context, tx *sql.Tx, p backends.ReserveParams, now time.Time) ([]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT grp, served, turn FROM conveyor_fair_groups WHERE queue = ? ORDER BY served, grp`, p.Queue)
	if err != nil {
		return nil, err
	}
	type group struct {
		name                 string
		served, turn, weight int64
		ids                  []string // its due jobs, in Reserve's order
		taken                int64
	}
	var ring []*group
	var last int64 // the last serving number handed out
	for rows.Next() {
		g := &group{}
		if err := rows.Scan(&g.name, &g.served, &g.turn); err != nil {
			rows.Close()
			return nil, err
		}
		g.weight = int64(p.Weight(g.name))
		ring, last = append(ring, g), g.served
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	due, err := tx.PrepareContext(ctx, `SELECT id FROM conveyor_jobs INDEXED BY conveyor_jobs_fair
		WHERE queue = ? AND grp = ? AND state IN `+waitingStates+` AND run_at <= ?
		ORDER BY priority DESC, run_at, seq LIMIT ?`)
	if err != nil {
		return nil, err
	}
	defer due.Close()
	var groups []*group
	for _, g := range ring {
		if len(groups) == p.Limit {
			break // the first round alone fills the limit
		}
		if g.ids, err = scanColumn[string](due.QueryContext(ctx, p.Queue, g.name, record.Micros(now), p.Limit)); err != nil {
			return nil, err
		}
		if len(g.ids) > 0 {
			groups = append(groups, g)
		}
	}
	// Round by round, each group in ring order gives the jobs of its turn
	// that fall in the round; a finished turn sends it to the back.
	var out []string
	for round := int64(0); len(out) < p.Limit; round++ {
		took := false
		for _, g := range groups {
			for len(out) < p.Limit && g.taken < int64(len(g.ids)) && (g.turn+g.taken)/g.weight == round {
				out = append(out, g.ids[g.taken])
				g.taken++
				last++
				if (g.turn+g.taken)%g.weight == 0 {
					g.served = last
				}
				took = true
			}
		}
		if !took {
			break
		}
	}
	for _, g := range groups {
		if g.taken == 0 {
			continue
		}
		turn := (g.turn + g.taken) % g.weight
		if _, err := tx.ExecContext(ctx, `UPDATE conveyor_fair_groups SET served = ?, turn = ? WHERE queue = ? AND grp = ?`, g.served, turn, p.Queue, g.name); err != nil {
			return nil, err
		}
	}
	return out, nil
}
