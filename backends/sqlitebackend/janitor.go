package sqlitebackend

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/internal/record"
	"github.com/conveyorhq/conveyor/job"
)

// janitorBatch bounds the corrupt rows one janitor pass sets aside in one
// write transaction, so the write lock is never held for long.
const janitorBatch = 1000

// The janitor's searches for rows no query of the backend would ever
// finish: a state outside job.States() is never due and never finished; an
// INTEGER column holding text or a blob compares above every integer, so
// such a run_at is never due, such a lease never expires and such a
// finished_at is never past its retention. (A real compares as a number
// and is found by Reserve when its job comes up.) Each search is a range
// or a scan of a partial index, so a pass costs a few seeks per queue plus
// the waiting and running jobs, not a read of every row; columns that make
// no job wait forever (created_at, say) are set aside by Reserve instead.
var (
	// findQueueCorrupt searches one queue (?1): the ranges of the
	// (queue, state) index between the known states, then its waiting jobs'
	// run_at and its running jobs' lease expiry.
	findQueueCorrupt = func() string {
		known := make([]string, len(job.States()))
		for i, st := range job.States() {
			known[i] = string(st)
		}
		slices.Sort(known)
		var legs []string
		leg := func(index, cond string) {
			legs = append(legs, `SELECT id FROM conveyor_jobs `+index+` WHERE queue = ?1 AND `+cond)
		}
		for i, st := range known {
			if i == 0 {
				leg("", `state < '`+st+`'`)
			} else {
				leg("", `state > '`+known[i-1]+`' AND state < '`+st+`'`)
			}
		}
		leg("", `state > '`+known[len(known)-1]+`'`)
		// The partial indexes hold the time columns, so only a match costs
		// a read of its row; the planner, without statistics, would walk
		// the queue's rows in the (queue, state) index instead.
		leg(`INDEXED BY conveyor_jobs_due`, `state IN `+waitingStates+` AND typeof(run_at) != 'integer'`)
		leg(`INDEXED BY conveyor_jobs_leased`, `state = 'running' AND typeof(lease_expires_at) != 'integer'`)
		return strings.Join(legs, ` UNION ALL `) + ` LIMIT ?2`
	}()
	findFinishedCorrupt = `SELECT id FROM conveyor_jobs WHERE state IN ('done', 'cancelled', 'dead') AND finished_at >= '' LIMIT ?`
	nextQueue           = `SELECT queue FROM conveyor_jobs WHERE queue > ? ORDER BY queue LIMIT 1`
)

// Tidy runs the janitor's work once: it dead-letters rows that would never
// be finished (see findQueueCorrupt), with the reason naming each column
// that does not decode,
// prunes finished jobs past their retention (Prune) and drops idle groups
// from the fair ring (pruneRingSQL). It runs every
// JanitorEvery on its own; call it to tidy now.
func (b *Backend) Tidy(ctx context.Context) error {
	if err := b.gate.Check(ctx); err != nil {
		return err
	}
	if err := b.setAsideCorrupt(ctx); err != nil {
		return fmt.Errorf("sqlitebackend: janitor: %w", err)
	}
	if _, err := b.Prune(ctx); err != nil {
		return fmt.Errorf("sqlitebackend: janitor: prune: %w", err)
	}
	if err := b.pruneRing(ctx); err != nil {
		return fmt.Errorf("sqlitebackend: janitor: prune the fair ring: %w", err)
	}
	return nil
}

// setAsideCorrupt finds corrupt rows from a read connection (the search
// reads every row, which must not hold the write lock) and dead-letters
// them in a write transaction that reads each again first.
func (b *Backend) setAsideCorrupt(ctx context.Context) error {
	for range 10 { // bounded work per tick
		ids, err := b.corruptIDs(ctx)
		if err != nil || len(ids) == 0 {
			return err
		}
		var finished []backends.Event
		err = b.write(ctx, func(tx *sql.Tx) error {
			finished = finished[:0]
			now := b.cfg.Clock.Now()
			for _, id := range ids {
				q, dead, err := setAside(ctx, tx, id, now, "")
				if err != nil {
					return err
				}
				if dead {
					finished = append(finished, backends.Event{Kind: backends.JobFinished, Queue: q, JobID: id})
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, ev := range finished {
			b.hub.Publish(ev)
		}
		if len(ids) < janitorBatch {
			return nil
		}
	}
	return nil
}

// corruptIDs runs the searches, up to janitorBatch IDs in all.
func (b *Backend) corruptIDs(ctx context.Context) ([]string, error) {
	var ids []string
	collect := func(query string, args ...any) error {
		found, err := scanColumn[string](b.ro.QueryContext(ctx, query, append(args, janitorBatch-len(ids))...))
		ids = append(ids, found...)
		return err
	}
	if err := collect(findFinishedCorrupt); err != nil {
		return nil, err
	}
	// The queues, one index seek each.
	for q := ""; len(ids) < janitorBatch; {
		err := b.ro.QueryRowContext(ctx, nextQueue, q).Scan(&q)
		if errors.Is(err, sql.ErrNoRows) {
			break
		}
		if err != nil {
			return nil, err
		}
		if err := collect(findQueueCorrupt, q); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// setAside dead-letters job id in tx, recording reason as its next attempt
// error, as the other backends do (attempt Attempts()+1). A row that does
// not decode is dead-lettered whatever reason says, with the corrupt
// columns as the reason, and those columns are cleared (to NULL, 0, or an
// errors array holding just this reason) so the record reads cleanly from
// then on. With reason empty, a row that decodes is left alone. It reports
// the job's queue and whether it was dead-lettered.
func setAside(ctx context.Context, tx *sql.Tx, id string, now time.Time, reason string) (string, bool, error) {
	r, err := scanRecord(tx.QueryRowContext(ctx, `SELECT `+columns+` FROM conveyor_jobs WHERE id = ?`, id))
	var corrupt *corruptError
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", false, nil
	case errors.As(err, &corrupt):
		reason = corrupt.reason()
	case err != nil:
		return "", false, err
	case reason == "":
		return "", false, nil
	}
	set := []string{`state = 'dead'`, `finished_at = ?`, `lease_token = NULL`}
	errs := appendError
	if corrupt != nil {
		for _, f := range corrupt.bad {
			switch f.column {
			case "state", "finished_at": // set above
			case "headers":
				set = append(set, `headers = NULL`)
			case "errors":
				errs = `errors = json_array(json(?))`
			default: // an INTEGER column, from intColumns
				set = append(set, f.column+` = 0`)
			}
		}
	}
	ae := record.AttemptError(job.AttemptError{Attempt: r.Attempts() + 1, At: now, Error: reason})
	_, err = tx.ExecContext(ctx, `UPDATE conveyor_jobs SET `+strings.Join(append(set, errs), `, `)+` WHERE id = ?`,
		record.Micros(now), ae, id)
	return r.Queue, err == nil, err
}
