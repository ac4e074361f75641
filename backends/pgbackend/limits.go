package pgbackend

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/conveyorhq/conveyor/backends"
)

// The Limiter natively, on the KV table in the KV fallback's stored form
// (backends.TakeFrom and its siblings): a call locks its keys' rows
// (SELECT ... FOR UPDATE, in key order, so two batches never deadlock)
// instead of a compare-and-set that contending workers retry, and a batch
// of keys costs the same two round trips whatever its size (see locked).
// A created row is expired at once (as DeleteKV leaves one), so KV
// readers see no key.
var (
	_ backends.Limiter        = (*Backend)(nil)
	_ backends.LimiterBatcher = (*Backend)(nil)
)

// locked runs change on the rows of keys (distinct) under their locks and
// writes what it returns, in one transaction of two round trips: begin,
// create missing rows and lock them; write the changed rows and commit.
// The rows stay locked from the first to the second, so every other
// limiter call on these keys waits that long: a transaction of its own
// for BEGIN, or waiting for the WAL flush at COMMIT, made the wait longer
// than the work (docs/benchmarks.md, Flow control). Limits are soft state
// (a bucket rebuilds, a slot ends with its lease), so the commit does not
// wait for the flush: what a server crash loses of the last moments'
// limiter writes is a few tokens taken again, a slot taken twice until
// the first holder's lease ends.
func (b *Backend) locked(ctx context.Context, keys []string, now time.Time, change func(i int, value []byte) backends.LimitWrite) error {
	if err := b.gate.Check(ctx); err != nil {
		return err
	}
	sorted := slices.Clone(keys)
	slices.Sort(sorted)
	conn, err := b.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("pgbackend: limits: %w", err)
	}
	// A connection still in the transaction (an error on the way) is
	// closed by Release rather than pooled, which rolls it back.
	defer conn.Release()
	batch := &pgx.Batch{}
	batch.Queue(`BEGIN`)
	batch.Queue(asyncCommit)
	batch.Queue(`INSERT INTO `+b.kvTable()+` (key, value, version, expires_at)
		SELECT k, '', 0, '-infinity' FROM unnest($1::text[]) AS k ORDER BY k
		ON CONFLICT (key) DO NOTHING`, sorted)
	read := batch.Queue(`SELECT key, value, expires_at IS NULL OR expires_at > $2 FROM `+b.kvTable()+`
		WHERE key = ANY($1) ORDER BY key FOR UPDATE`, sorted, now)
	values := map[string][]byte{}
	read.Query(func(rows pgx.Rows) error {
		var k string
		var v []byte
		var live bool
		_, err := pgx.ForEachRow(rows, []any{&k, &v, &live}, func() error {
			if live {
				values[k] = slices.Clone(v)
			}
			return nil
		})
		return err
	})
	if err := conn.SendBatch(ctx, batch).Close(); err != nil {
		return fmt.Errorf("pgbackend: limits: lock rows: %w", err)
	}
	var wk []string
	var wv [][]byte
	var wx []*time.Time
	for i, k := range keys {
		w := change(i, values[k])
		if !w.Changed {
			continue
		}
		v, x := w.Value, &w.ExpiresAt
		if v == nil { // deleted: kept expired, as DeleteKV does
			v, x = []byte{}, nil
		}
		wk, wv, wx = append(wk, k), append(wv, v), append(wx, x)
	}
	batch = &pgx.Batch{}
	if len(wk) > 0 {
		// A null expiry here is '-infinity', a deleted key: limits always
		// expire, so none means "never".
		batch.Queue(`UPDATE `+b.kvTable()+` AS kv
			SET value = u.v, version = kv.version + 1, expires_at = COALESCE(u.x, '-infinity')
			FROM unnest($1::text[], $2::bytea[], $3::timestamptz[]) AS u(k, v, x) WHERE kv.key = u.k`, wk, wv, wx)
	}
	batch.Queue(`COMMIT`)
	if err := conn.SendBatch(ctx, batch).Close(); err != nil {
		return fmt.Errorf("pgbackend: limits: write: %w", err)
	}
	return nil
}

// lockedMany applies apply to each of ps's keys (distinct) under their
// row locks, in one transaction, and returns the results in ps's order.
func lockedMany[P, R any](ctx context.Context, b *Backend, ps []P, key func(P) (string, time.Time, error),
	apply func(value []byte, p P, now time.Time) (backends.LimitWrite, R)) ([]R, error) {
	if len(ps) == 0 {
		return nil, nil
	}
	keys := make([]string, len(ps))
	var now time.Time
	for i, p := range ps {
		k, at, err := key(p)
		if err != nil {
			return nil, err
		}
		keys[i], now = k, backends.KVNow(at)
	}
	out := make([]R, len(ps))
	err := b.locked(ctx, keys, now, func(i int, value []byte) backends.LimitWrite {
		w, r := apply(value, ps[i], now)
		out[i] = r
		return w
	})
	return out, err
}

func bucketOf(p backends.TakeTokensParams) (string, time.Time, error) {
	return backends.BucketKey(p.Key), p.Now, p.Validate()
}

func slotsOf(p backends.AcquireSlotsParams) (string, time.Time, error) {
	return backends.SlotsKey(p.Key), p.Now, p.Validate()
}

func releaseOf(p backends.ReleaseSlotsParams) (string, time.Time, error) {
	return backends.SlotsKey(p.Key), p.Now, nil
}

func release(value []byte, p backends.ReleaseSlotsParams, now time.Time) (backends.LimitWrite, struct{}) {
	return backends.ReleaseFrom(value, p, now), struct{}{}
}

// TakeTokens implements backends.Limiter.
func (b *Backend) TakeTokens(ctx context.Context, p backends.TakeTokensParams) (backends.TakeTokensResult, error) {
	res, err := b.TakeTokensMany(ctx, []backends.TakeTokensParams{p})
	if err != nil {
		return backends.TakeTokensResult{}, err
	}
	return res[0], nil
}

// TakeTokensMany implements backends.LimiterBatcher.
func (b *Backend) TakeTokensMany(ctx context.Context, ps []backends.TakeTokensParams) ([]backends.TakeTokensResult, error) {
	return lockedMany(ctx, b, ps, bucketOf, backends.TakeFrom)
}

// AcquireSlots implements backends.Limiter.
func (b *Backend) AcquireSlots(ctx context.Context, p backends.AcquireSlotsParams) ([]string, error) {
	got, err := b.AcquireSlotsMany(ctx, []backends.AcquireSlotsParams{p})
	if err != nil {
		return nil, err
	}
	return got[0], nil
}

// AcquireSlotsMany implements backends.LimiterBatcher.
func (b *Backend) AcquireSlotsMany(ctx context.Context, ps []backends.AcquireSlotsParams) ([][]string, error) {
	return lockedMany(ctx, b, ps, slotsOf, backends.AcquireFrom)
}

// ReleaseSlots implements backends.Limiter.
func (b *Backend) ReleaseSlots(ctx context.Context, p backends.ReleaseSlotsParams) error {
	return b.ReleaseSlotsMany(ctx, []backends.ReleaseSlotsParams{p})
}

// ReleaseSlotsMany implements backends.LimiterBatcher.
func (b *Backend) ReleaseSlotsMany(ctx context.Context, ps []backends.ReleaseSlotsParams) error {
	_, err := lockedMany(ctx, b, ps, releaseOf, release)
	return err
}

// SlotsInUse implements backends.Limiter.
func (b *Backend) SlotsInUse(ctx context.Context, p backends.SlotsParams) (map[string]time.Time, error) {
	return backends.KVLimiter{KV: b}.SlotsInUse(ctx, p)
}
