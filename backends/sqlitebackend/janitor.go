package sqlitebackend

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

// janitorBatch bounds the corrupt rows one janitor pass sets aside in one
// write transaction, so the write lock is never held for long.
const janitorBatch = 1000

// findCorrupt selects rows no query of the backend would ever finish: a
// state outside job.States is never due and never finished, and an
// INTEGER column holding text or a real compares above every time, so
// such a run_at is never due and such a lease never expires.
var findCorrupt = func() string {
	conds := []string{`state NOT IN ('pending', 'scheduled', 'running', 'retrying', 'done', 'dead', 'cancelled')`}
	for _, c := range intColumns {
		conds = append(conds, `typeof(`+c+`) != 'integer'`)
	}
	return `SELECT id FROM conveyor_jobs WHERE ` + strings.Join(conds, ` OR `) + ` LIMIT ?`
}()

// Tidy runs the janitor's work once: it dead-letters rows that do not
// decode (see findCorrupt), with the reason naming each bad column, and
// prunes finished jobs past their retention (Prune). It runs every
// PruneEvery on its own; call it to tidy now.
func (b *Backend) Tidy(ctx context.Context) error {
	if err := b.setAsideCorrupt(ctx); err != nil {
		return fmt.Errorf("sqlitebackend: janitor: %w", err)
	}
	if _, err := b.Prune(ctx); err != nil {
		return fmt.Errorf("sqlitebackend: janitor: prune: %w", err)
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
			now := time.Now()
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

func (b *Backend) corruptIDs(ctx context.Context) ([]string, error) {
	rows, err := b.ro.QueryContext(ctx, findCorrupt, janitorBatch)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
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
	ae, err := json.Marshal(job.AttemptError{Attempt: r.Attempts() + 1, At: now, Error: reason})
	if err != nil {
		return "", false, err
	}
	_, err = tx.ExecContext(ctx, `UPDATE conveyor_jobs SET `+strings.Join(append(set, errs), `, `)+` WHERE id = ?`,
		micros(now), string(ae), id)
	return r.Queue, err == nil, err
}
