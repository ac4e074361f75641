package pgbackend

import (
	"context"
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
