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
// of keys costs the same round trips whatever its size: one for tokens
// (takeTokensSQL), two for slots (locked). A created row is expired at
// once (as DeleteKV leaves one), so KV readers see no key.
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

// TakeTokensMany implements backends.LimiterBatcher in one round trip
// (takeTokensSQL): unlike slots, a bucket's change is arithmetic that SQL
// does under the row lock, so the lock is held for one statement instead
// of across a round trip to the client, and the rate limit costs a reserve
// one round trip, not two.
func (b *Backend) TakeTokensMany(ctx context.Context, ps []backends.TakeTokensParams) ([]backends.TakeTokensResult, error) {
	if len(ps) == 0 {
		return nil, nil
	}
	if err := b.gate.Check(ctx); err != nil {
		return nil, err
	}
	n := len(ps)
	keys, lims, pers, bursts := make([]string, n), make([]float64, n), make([]float64, n), make([]float64, n)
	counts, nows := make([]int32, n), make([]time.Time, n)
	at := map[string]int{}
	for i, p := range ps {
		if err := p.Validate(); err != nil {
			return nil, err
		}
		burst, count := p.Sizes()
		keys[i], lims[i], pers[i], bursts[i] = backends.BucketKey(p.Key), float64(p.Limit), float64(p.Per), float64(burst)
		counts[i], nows[i] = int32(count), backends.KVNow(p.Now)
		at[keys[i]] = i
	}
	batch := &pgx.Batch{}
	batch.Queue(asyncCommit)
	batch.Queue(`INSERT INTO `+b.kvTable()+` (key, value, version, expires_at)
		SELECT k, '', 0, '-infinity' FROM unnest($1::text[]) AS k ORDER BY k
		ON CONFLICT (key) DO NOTHING`, keys)
	out := make([]backends.TakeTokensResult, n)
	batch.Queue(b.q.takeTokens, keys, lims, pers, bursts, counts, nows).Query(func(rows pgx.Rows) error {
		var k string
		var taken int
		var left float64
		var when time.Time
		_, err := pgx.ForEachRow(rows, []any{&k, &taken, &left, &when}, func() error {
			i := at[k]
			out[i].Taken = taken
			if taken < int(counts[i]) {
				out[i].NextAt = ceilMicro(backends.NextToken(left, when, ps[i].Limit, ps[i].Per))
			}
			return nil
		})
		return err
	})
	if err := b.pool.SendBatch(ctx, batch).Close(); err != nil {
		return nil, fmt.Errorf("pgbackend: limits: take tokens: %w", err)
	}
	return out, nil
}

// ceilMicro rounds t up to the microsecond, the precision of timestamptz:
// a caller that comes back at NextAt, stored rounded down, would otherwise
// find its token a fraction short.
func ceilMicro(t time.Time) time.Time {
	if r := t.Truncate(time.Microsecond); !r.Equal(t) {
		return r.Add(time.Microsecond)
	}
	return t
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

// takeTokensSQL is backends.TakeFrom for a batch of buckets ($1 keys,
// existing rows: the statement before it creates the missing ones, expired),
// under their row locks: $2 limits, $3 intervals in ns, $4 bursts, $5
// counts, $6 each caller's now. A bucket expired, or stored in a form this
// cannot read, is full (soft state that this write rebuilds); one stored
// later than the caller's now is taken from at its own time, so that a
// caller that waited for the lock never moves it back. It returns each
// key with the tokens taken, those left and the bucket's time, from which
// the caller works out the next token. Float arithmetic on ns, as Refill's.
const takeTokensSQL = `
WITH cur AS (
	SELECT key, expires_at, CASE WHEN encode(value, 'escape') ~ '^\{"tokens":[-+.0-9eE]+,"at":"[-+.:0-9TZ]+"\}$'
		THEN convert_from(value, 'UTF8')::jsonb END AS j
	FROM S.kv WHERE key = ANY($1) ORDER BY key FOR UPDATE
), st AS (
	SELECT p.*, CASE WHEN c.expires_at IS NULL OR c.expires_at > p.now THEN (c.j->>'tokens')::float8 END AS t0,
		CASE WHEN c.expires_at IS NULL OR c.expires_at > p.now THEN (c.j->>'at')::timestamptz END AS t0at
	FROM unnest($1::text[], $2::float8[], $3::float8[], $4::float8[], $5::int[], $6::timestamptz[])
		AS p(key, lim, per, burst, cnt, now)
	LEFT JOIN cur AS c USING (key)
), calc AS (
	SELECT key, lim, per, burst, cnt, at,
		CASE WHEN t0 IS NULL OR t0at IS NULL THEN burst
			ELSE least(t0 + greatest(extract(epoch FROM at - t0at)::float8, 0) * 1e9 * lim / per, burst) END AS t
	FROM (SELECT st.*, greatest(now, coalesce(t0at, now)) AS at FROM st) AS s
), took AS (
	SELECT calc.*, least(cnt, floor(t))::int AS taken FROM calc
), up AS (
	UPDATE S.kv AS kv SET
		value = convert_to(format('{"tokens":%s,"at":%s}', t - taken, to_json(at)), 'UTF8'),
		version = kv.version + 1,
		expires_at = at + ceil((burst - (t - taken)) * per / lim) / 1e9 * interval '1 second' + interval '1 second'
	FROM took WHERE kv.key = took.key AND took.taken > 0
)
SELECT key, taken, t - taken, at FROM took`
