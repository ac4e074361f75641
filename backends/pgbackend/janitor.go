package pgbackend

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/conveyorhq/conveyor/backends/internal/tick"
)

// janitorLoop runs Tidy every JanitorEvery in whichever process holds the
// schema's janitor advisory lock at that moment.
func (b *Backend) janitorLoop() {
	defer b.bg.Done()
	tick.Janitor(b.gate.Closing(), b.cfg.JanitorEvery, b.cfg.Logger, "pgbackend", b.Tidy)
}

// Tidy folds the logged count deltas into the counts, recovers expired
// leases in every queue, deletes finished jobs past their retention, a
// thousand rows per statement, and then idle groups' rows of the fair ring
// (fair.go), if no other process is doing it right now.
func (b *Backend) Tidy(ctx context.Context) error {
	if err := b.gate.Check(ctx); err != nil {
		return err
	}
	tidied := false
	err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, "SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))",
			"conveyor-janitor:"+b.cfg.Schema).Scan(&tidied); err != nil || !tidied {
			return err
		}
		now := b.cfg.Clock.Now()
		type step struct {
			sql  string
			args []any
		}
		steps := []step{{b.q.foldCounts, nil}, {b.q.recoverAll, []any{now}}}
		if b.cfg.KeepDone >= 0 {
			steps = append(steps, step{b.q.pruneDone, []any{now.Add(-b.cfg.KeepDone), now}})
		}
		if b.cfg.KeepDead >= 0 {
			steps = append(steps, step{b.q.pruneDead, []any{now.Add(-b.cfg.KeepDead), now}})
		}
		for _, s := range steps {
			for range 10 { // bounded work per tick
				tag, err := tx.Exec(ctx, s.sql, s.args...)
				if err != nil {
					return fmt.Errorf("pgbackend: janitor: %w", err)
				}
				if tag.RowsAffected() < 1000 {
					break
				}
			}
		}
		return nil
	})
	if err != nil || !tidied {
		return err
	}
	if err := b.pruneRing(ctx); err != nil {
		return err
	}
	if err := b.vacuumJobs(ctx); err != nil {
		return fmt.Errorf("pgbackend: janitor: vacuum: %w", err)
	}
	if b.tidies.Add(1)%vacuumLogEvery != 0 {
		return nil
	}
	// Every fold leaves the log's rows dead, and autovacuum visits at most
	// once a minute; readers of the counts scan the log, so keep it small.
	if _, err := b.pool.Exec(ctx, "VACUUM "+b.q.schema+".job_count_log"); err != nil {
		return fmt.Errorf("pgbackend: janitor: vacuum: %w", err)
	}
	return nil
}

// vacuumLogEvery is how many folds pass between two vacuums of the log.
const vacuumLogEvery = 10

// vacuumJobsAfter is how many dead row versions of jobs the janitor lets
// pile up before it vacuums the table: autovacuum's threshold for it
// (migration 0007).
const vacuumJobsAfter = 10000

// vacuumJobs vacuums the jobs table once vacuumJobsAfter more dead row
// versions are there than the last vacuum left. Every job leaves two
// (pending, then running, then done), and autovacuum visits a database at
// most once a minute (autovacuum_naptime, a server setting), in which a
// busy queue leaves a million; Reserve then walks their entries at the
// head of jobs_due (1,528 buffers a call at a backlog of 1,000,000, 384
// with this; docs/benchmarks.md, "The janitor vacuums"). SKIP_LOCKED leaves the
// table to a vacuum already running; a role that does not own the table
// finds no row and leaves it to autovacuum. What the last vacuum could
// not remove (rows an open transaction still sees) does not count, so a
// long transaction does not make every tick vacuum.
func (b *Backend) vacuumJobs(ctx context.Context) error {
	if b.cfg.NoVacuum {
		return nil
	}
	dead := func() (int64, error) {
		var n int64
		err := b.pool.QueryRow(ctx, b.q.deadJobs).Scan(&n)
		if errors.Is(err, pgx.ErrNoRows) {
			return -1, nil
		}
		return n, err
	}
	n, err := dead()
	if err != nil || n < b.vacuumLeft.Load()+vacuumJobsAfter {
		return err
	}
	if _, err := b.pool.Exec(ctx, "VACUUM (SKIP_LOCKED) "+b.q.schema+".jobs"); err != nil {
		return err
	}
	if n, err = dead(); err == nil {
		b.vacuumLeft.Store(max(n, 0))
	}
	return err
}
