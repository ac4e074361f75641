package redisbackend_test

import (
	"testing"

	"github.com/conveyorhq/conveyor/backends/redisbackend"
	"github.com/conveyorhq/conveyor/flow/flowtest"
)

// TestDebounceBurst and TestExpiryBehindPause: the numbers on wall
// time with a worker (see flowtest), under a prefix of their own.
func TestDebounceBurst(t *testing.T) {
	t.Parallel()
	flowtest.DebounceBurst(t, open(t, newClient(t), redisbackend.Config{}))
}

func TestExpiryBehindPause(t *testing.T) {
	t.Parallel()
	flowtest.ExpiryBehindPause(t, open(t, newClient(t), redisbackend.Config{}), 0)
}
