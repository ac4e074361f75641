package redisbackend_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/redisbackend"
	"github.com/conveyorhq/conveyor/flow/flowtest"
)

// Two worker processes' worth (two clients, two backends, one prefix)
// share limits held in Redis by the native Limiter; see
// flowtest.LimitsHoldAcrossWorkers.
func TestLimitsHoldAcrossWorkers(t *testing.T) {
	prefix := "test-flow-" + fmt.Sprint(time.Now().UnixNano())
	flowtest.LimitsHoldAcrossWorkers(t,
		open(t, newClient(t), redisbackend.Config{Prefix: prefix}),
		open(t, newClient(t), redisbackend.Config{Prefix: prefix}))
}

// BenchmarkLimitsOverhead: a burn-down with a rate limit and with a
// concurrency limit, both far above the throughput, against none.
func BenchmarkLimitsOverhead(b *testing.B) {
	client := newClient(b)
	flowtest.BenchOverhead(b, func(b *testing.B) backends.Backend { return open(b, client, redisbackend.Config{}) })
}
