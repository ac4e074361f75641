package pgbackend_test

import (
	"testing"

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
// limits live in the KV table under row locks: four round trips per batch
// of buckets or slot sets. b.N is jobs: -benchtime 5000x.
func BenchmarkLimitsOverhead(b *testing.B) {
	pool, _ := newPool(b)
	flowtest.BenchOverhead(b, func(b *testing.B) backends.Backend {
		return open(b, pool, pgbackend.Config{Schema: freshSchema(b, pool)})
	})
}
