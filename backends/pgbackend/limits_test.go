package pgbackend_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/pgbackend"
	"github.com/conveyorhq/conveyor/flow/flowtest"
)

// Two worker processes' worth (two pools, two backends, one schema) share
// limits held in the KV table by the native Limiter; see
// flowtest.LimitsHoldAcrossWorkers.
func TestLimitsHoldAcrossWorkers(t *testing.T) {
	pool, schema := newPool(t)
	other, _ := newPool(t)
	a := open(t, pool, pgbackend.Config{Schema: schema})
	flowtest.LimitsHoldAcrossWorkers(t, a, open(t, other, pgbackend.Config{Schema: schema}))
}

// BenchmarkLimitsOverhead: a burn-down with a rate limit and with a
// concurrency limit, both far above the throughput, against none. The
// rate limit's buckets live in the KV table, one round trip a batch of
// them; the concurrency limit is held by the reserve (slots.go). b.N is
// jobs: -benchtime 5000x.
func BenchmarkLimitsOverhead(b *testing.B) {
	pool, _ := newPool(b)
	flowtest.BenchOverhead(b, func(b *testing.B) backends.Backend {
		return open(b, pool, pgbackend.Config{Schema: freshSchema(b, pool)})
	})
}

// A bucket's row is read by SQL (takeTokensSQL): one stored by the Go
// transition (backends.TakeFrom, which earlier versions wrote) counts as
// it stands, and one in a form SQL cannot read is a full bucket, not an
// error that would stop every job of the limit.
func TestTakeTokensReadsStoredBuckets(t *testing.T) {
	pool, schema := newPool(t)
	b := open(t, pool, pgbackend.Config{Schema: schema})
	ctx := context.Background()
	now := time.Date(2026, 12, 5, 1, 2, 3, 456789123, time.UTC)
	p := backends.TakeTokensParams{Limit: 2, Per: time.Second, Count: 2, Now: now}
	put := func(key string, value []byte) {
		t.Helper()
		if _, err := b.PutKV(ctx, backends.PutKVParams{Key: backends.BucketKey(key), Value: value, Now: now, ExpiresAt: now.Add(time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	w, _ := backends.TakeFrom(nil, backends.TakeTokensParams{Limit: 2, Per: time.Second, Count: 1, Now: now}, now.Add(-250*time.Millisecond))
	put("go", w.Value) // 1 token left 250ms ago: 1.5 now
	for _, bad := range [][]byte{[]byte("\xff\xfe"), []byte(`{"tokens":"x","at":1}`), []byte(`[]`), {}} {
		put(fmt.Sprintf("bad-%x", bad), bad)
	}
	p.Key = "go"
	r, err := b.TakeTokens(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	// timestamptz holds microseconds: the times are the caller's, rounded.
	if want := now.Add(250 * time.Millisecond); r.Taken != 1 || r.NextAt.Sub(want).Abs() > time.Microsecond {
		t.Fatalf("bucket written by TakeFrom: took %d, next token at %s; want 1 and %s", r.Taken, r.NextAt, want)
	}
	for _, bad := range [][]byte{[]byte("\xff\xfe"), []byte(`{"tokens":"x","at":1}`), []byte(`[]`), {}} {
		p.Key = fmt.Sprintf("bad-%x", bad)
		r, err := b.TakeTokens(ctx, p)
		if err != nil || r.Taken != 2 {
			t.Fatalf("bucket stored as %q: took %d (%v), want a full bucket's 2", bad, r.Taken, err)
		}
	}
}
