package sqlitebackend

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/internal/record"
	"github.com/conveyorhq/conveyor/job"
)

var _ backends.SlotReserver = (*Backend)(nil)

// ReserveSlots implements backends.SlotReserver inside the reserve's write
// transaction: SQLite's one writer at a time makes the count and the
// leases that follow it one step for every process, so no lock of its own
// is needed. The running jobs are counted through conveyor_jobs_finished,
// whose first column is the state.
func (b *Backend) ReserveSlots(ctx context.Context, p backends.ReserveSlotsParams) (backends.ReserveSlotsResult, error) {
	if err := p.Validate(); err != nil {
		return backends.ReserveSlotsResult{}, err
	}
	if len(p.Rules) == 0 {
		reserve := b.Reserve
		if p.Fair {
			reserve = b.ReserveFair
		}
		jobs, err := reserve(ctx, p.ReserveParams)
		return backends.ReserveSlotsResult{Jobs: jobs}, err
	}
	path := headerPath(p.KeyHeader)
	if p.Fair {
		return b.reserve(ctx, p.ReserveParams, fairRows(ctx, p.ReserveParams, ", j.task, "+keyOf(path, "j.")), &p)
	}
	return b.reserve(ctx, p.ReserveParams, func(tx *sql.Tx, now time.Time, limit int) (*sql.Rows, error) {
		return tx.QueryContext(ctx, `SELECT id, deliveries, max_deliveries, task, `+keyOf(path, "")+` FROM conveyor_jobs
			WHERE queue = ? AND state IN `+waitingStates+` AND run_at <= ?
			ORDER BY priority DESC, run_at, seq LIMIT ?`, p.Queue, record.Micros(now), limit)
	}, &p)
}

// slotCandidate is a due job as ReserveSlots weighs it.
type slotCandidate struct{ id, task, key string }

// headerPath is the JSON path of header h in the headers column.
func headerPath(h string) string { return "$." + strconv.Quote(h) }

// keyOf is the SQL of a job's key at path, in the headers column of the
// table named by prefix: "" when absent, or when the headers are not JSON
// (such a row fails to decode when leased, and is set aside there, instead
// of failing every reserve's count).
func keyOf(path, prefix string) string {
	h := prefix + "headers"
	return `coalesce(CASE WHEN json_valid(` + h + `) THEN json_extract(` + h + `, '` + strings.ReplaceAll(path, "'", "''") + `') END, '')`
}

// holdBack splits the candidates, in order, into the IDs to lease and the
// jobs their rules hold back, which it postpones by their backoff and
// returns as they are now.
func holdBack(ctx context.Context, tx *sql.Tx, p backends.ReserveSlotsParams, cands []slotCandidate, now time.Time) ([]string, []*job.Record, error) {
	running, err := countRunning(ctx, tx, p, now)
	if err != nil {
		return nil, nil, err
	}
	var lease []string
	var held []*job.Record
	for _, c := range cands {
		r, ok := p.RuleOf(c.task)
		k := [2]string{r.Name, c.key}
		if !ok || running[k] < r.Limit {
			running[k]++
			lease = append(lease, c.id)
			continue
		}
		rec, err := scanRecord(tx.QueryRowContext(ctx, `UPDATE conveyor_jobs SET state = 'scheduled', run_at = ?
			WHERE id = ? RETURNING `+columns, record.Micros(now.Add(r.Backoff)), c.id))
		switch {
		case errors.Is(err, job.ErrMalformedPayload): // postponed all the same; set aside when next leased
		case err != nil:
			return nil, nil, err
		default:
			held = append(held, rec)
		}
	}
	return lease, held, nil
}

// countRunning counts the jobs running under a live lease by p's rule
// names and their keys, over every queue.
func countRunning(ctx context.Context, tx *sql.Tx, p backends.ReserveSlotsParams, now time.Time) (map[[2]string]int, error) {
	args := []any{record.Micros(now)}
	for _, r := range p.Rules {
		args = append(args, r.Task)
	}
	rows, err := tx.QueryContext(ctx, `SELECT task, `+keyOf(headerPath(p.KeyHeader), "")+`, count(*) FROM conveyor_jobs
		WHERE state = 'running' AND lease_expires_at > ? AND task IN (?`+strings.Repeat(", ?", len(p.Rules)-1)+`)
		GROUP BY 1, 2`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	n := map[[2]string]int{}
	for rows.Next() {
		var task, key string
		var c int
		if err := rows.Scan(&task, &key, &c); err != nil {
			return nil, err
		}
		r, _ := p.RuleOf(task)
		n[[2]string{r.Name, key}] += c
	}
	return n, rows.Err()
}
