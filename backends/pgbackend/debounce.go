package pgbackend

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/internal/record"
	"github.com/conveyorhq/conveyor/job"
)

var _ backends.Debouncer = (*Backend)(nil)

// Debounce implements backends.Debouncer in one transaction: an advisory
// lock on the queue and key serializes the key's enqueuers, the key's job
// (filed in the kv table under record.DebounceKey) is locked FOR UPDATE so
// a Reserve that took it first is seen, and the replacement or the insert
// and its filing commit together.
func (b *Backend) Debounce(ctx context.Context, p backends.DebounceParams) (backends.EnqueueResult, error) {
	if err := b.gate.Valid(ctx, p); err != nil {
		return backends.EnqueueResult{}, err
	}
	key := record.DebounceKey(p.Job.Queue, p.Key)
	var res backends.EnqueueResult
	err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, b.q.schema+":"+key); err != nil {
			return err
		}
		now := b.cfg.Clock.Now()
		var id, state string
		var created time.Time
		err := tx.QueryRow(ctx, `SELECT j.id, j.state, j.created_at FROM `+b.kvTable()+` k
			JOIN `+b.q.schema+`.jobs j ON j.id = convert_from(k.value, 'UTF8') WHERE k.key = $1 FOR UPDATE OF j`, key).
			Scan(&id, &state, &created)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if err == nil && (state == string(job.Pending) || state == string(job.Scheduled)) {
			runAt := p.RunAt(now, created)
			st := job.Scheduled
			if !runAt.After(now) {
				st = job.Pending
			}
			res = backends.EnqueueResult{ID: id, State: st, Duplicate: true}
			var headers *string
			if h := record.Headers(p.Job.Headers); h != nil {
				s := string(h)
				headers = &s
			}
			if _, err := tx.Exec(ctx, `UPDATE `+b.q.schema+`.jobs SET payload = $2, headers = $3::jsonb, run_at = $4, state = $5 WHERE id = $1`,
				id, record.NonNil(p.Job.Payload), headers, runAt, string(st)); err != nil {
				return err
			}
			if st == job.Pending && !b.cfg.NoListen {
				_, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, channelName(b.cfg.Schema), "a:"+p.Job.Queue)
				return err
			}
			return nil
		}
		ins := *p.Job
		ins.RunAt = p.RunAt(now, now)
		out, err := b.enqueue(ctx, pgxQuerier{tx}, backends.EnqueueParams{Jobs: []*backends.JobInsert{&ins}})
		if err != nil {
			return err
		}
		res = out[0]
		if res.Duplicate {
			return nil
		}
		_, err = tx.Exec(ctx, `INSERT INTO `+b.kvTable()+` AS kv (key, value, version) VALUES ($1, $2, 1)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = kv.version + 1, expires_at = NULL`, key, []byte(res.ID))
		return err
	})
	if err != nil {
		return backends.EnqueueResult{}, fmt.Errorf("pgbackend: debounce: %w", err)
	}
	return res, nil
}
