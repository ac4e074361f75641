package sqlitebackend

import (
	"context"
	"database/sql"
	"errors"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/internal/record"
	"github.com/conveyorhq/conveyor/job"
)

var _ backends.Debouncer = (*Backend)(nil)

// Debounce implements backends.Debouncer. The key's job is filed in
// conveyor_kv (record.DebounceKey); the look-up, the replacement or the
// insert, and the filing are one write transaction, which SQLite runs one
// at a time across every process on the file, as it does Reserve's.
func (b *Backend) Debounce(ctx context.Context, p backends.DebounceParams) (backends.EnqueueResult, error) {
	if err := b.gate.Valid(ctx, p); err != nil {
		return backends.EnqueueResult{}, err
	}
	var res backends.EnqueueResult
	key := record.DebounceKey(p.Job.Queue, p.Key)
	err := b.write(ctx, func(tx *sql.Tx) error {
		now := b.cfg.Clock.Now()
		var id, state string
		var created int64
		err := tx.QueryRowContext(ctx, `SELECT j.id, j.state, j.created_at FROM conveyor_kv k
			JOIN conveyor_jobs j ON j.id = CAST(k.value AS TEXT) WHERE k.key = ?`, key).Scan(&id, &state, &created)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if err == nil && (state == string(job.Pending) || state == string(job.Scheduled)) {
			runAt := p.RunAt(now, record.FromMicros(created))
			st := job.Scheduled
			if !runAt.After(now) {
				st = job.Pending
			}
			res = backends.EnqueueResult{ID: id, State: st, Duplicate: true}
			_, err := tx.ExecContext(ctx, `UPDATE conveyor_jobs SET payload = ?, headers = ?, run_at = ?, state = ? WHERE id = ?`,
				record.NonNil(p.Job.Payload), nullString(string(record.Headers(p.Job.Headers))), record.Micros(runAt), string(st), id)
			return err
		}
		ins := *p.Job
		ins.RunAt = p.RunAt(now, now)
		out, err := enqueue(ctx, tx, b.statements(ctx, tx), backends.EnqueueParams{Jobs: []*backends.JobInsert{&ins}}, now)
		if err != nil {
			return err
		}
		res = out[0]
		if res.Duplicate {
			return nil
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO conveyor_kv (key, value, version, expires_at) VALUES (?, ?, 1, 0)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = conveyor_kv.version + 1, expires_at = 0`,
			key, []byte(res.ID))
		return err
	})
	if err != nil {
		return backends.EnqueueResult{}, err
	}
	if res.State == job.Pending {
		b.hub.Publish(backends.Event{Kind: backends.JobsAvailable, Queue: p.Job.Queue})
	}
	return res, nil
}
