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
// of keys costs the same four round trips whatever its size: begin; create
// missing rows and lock them (one batch); write the changed rows; commit.
// (Two, with BEGIN and COMMIT sent in the batches, measured no faster:
// docs/benchmarks.md, Flow control.) A created row is
// expired at once (as DeleteKV leaves one), so KV readers see no key.
var (
	_ backends.Limiter        = (*Backend)(nil)
	_ backends.LimiterBatcher = (*Backend)(nil)
)

// locked runs change on the rows of keys (distinct) under their locks and
// writes what it returns, in one transaction.
func (b *Backend) locked(ctx context.Context, keys []string, now time.Time, change func(i int, value []byte) backends.LimitWrite) error {
	if err := b.gate.Check(ctx); err != nil {
		return err
	}
	sorted := slices.Clone(keys)
	slices.Sort(sorted)
	tx, err := b.pool.BeginTx(ctx, pgx.TxOptions{})
	if err != nil {
		return fmt.Errorf("pgbackend: limits: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	batch := &pgx.Batch{}
	batch.Queue(`INSERT INTO `+b.kvTable()+` (key, value, version, expires_at)
		SELECT k, '', 0, '-infinity' FROM unnest($1::text[]) AS k ORDER BY k
		ON CONFLICT (key) DO NOTHING`, sorted)
	batch.Queue(`SELECT key, value, expires_at IS NULL OR expires_at > $2 FROM `+b.kvTable()+`
		WHERE key = ANY($1) ORDER BY key FOR UPDATE`, sorted, now)
	br := tx.SendBatch(ctx, batch)
	if _, err := br.Exec(); err != nil {
		_ = br.Close()
		return fmt.Errorf("pgbackend: limits: create rows: %w", err)
	}
	values := map[string][]byte{}
	rows, err := br.Query()
	if err == nil {
		for rows.Next() {
			var k string
			var v []byte
			var live bool
			if err = rows.Scan(&k, &v, &live); err != nil {
				break
			}
			if live {
				values[k] = v
			}
		}
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
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
	if len(wk) > 0 {
		// A null expiry here is '-infinity', a deleted key: limits always
		// expire, so none means "never".
		_, err = tx.Exec(ctx, `UPDATE `+b.kvTable()+` AS kv
			SET value = u.v, version = kv.version + 1, expires_at = COALESCE(u.x, '-infinity')
			FROM unnest($1::text[], $2::bytea[], $3::timestamptz[]) AS u(k, v, x) WHERE kv.key = u.k`, wk, wv, wx)
		if err != nil {
			return fmt.Errorf("pgbackend: limits: write: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("pgbackend: limits: commit: %w", err)
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
