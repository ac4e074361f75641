package redisbackend_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends/redisbackend"
	"github.com/conveyorhq/conveyor/flow/flowtest"
)

// Limits changed while jobs run, on two worker processes' worth of
// backends over one prefix: overrides kept in Redis's KV, limits held by
// the native Limiter; see flowtest.LimitsChangeAtRunTime.
func TestLimitsChangeAtRunTime(t *testing.T) {
	prefix := "test-flow-live-" + fmt.Sprint(time.Now().UnixNano())
	flowtest.LimitsChangeAtRunTime(t,
		open(t, newClient(t), redisbackend.Config{Prefix: prefix}),
		open(t, newClient(t), redisbackend.Config{Prefix: prefix}))
}
