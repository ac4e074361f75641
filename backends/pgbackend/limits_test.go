package pgbackend_test

import (
	"testing"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/pgbackend"
	"github.com/conveyorhq/conveyor/flow/flowtest"
)

// BenchmarkLimitsOverhead: a burn-down with a rate limit and with a
// concurrency limit, both far above the throughput, against none. The
// limits live in the KV table (the Limiter fallback): compare-and-set on
// one row per bucket and slot set, one statement per reserve's batch.
func BenchmarkLimitsOverhead(b *testing.B) {
	pool, _ := newPool(b)
	flowtest.BenchOverhead(b, func(b *testing.B) backends.Backend {
		return open(b, pool, pgbackend.Config{Schema: freshSchema(b, pool)})
	})
}
