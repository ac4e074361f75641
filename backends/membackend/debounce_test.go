package membackend_test

import (
	"testing"

	"github.com/conveyorhq/conveyor/backends/membackend"
	"github.com/conveyorhq/conveyor/flow/flowtest"
)

// TestDebounceBurst and TestExpiryBehindPause: the numbers on wall
// time with a worker (see flowtest).
func TestDebounceBurst(t *testing.T) {
	t.Parallel()
	flowtest.DebounceBurst(t, membackend.New(membackend.Config{}))
}

func TestExpiryBehindPause(t *testing.T) {
	t.Parallel()
	flowtest.ExpiryBehindPause(t, membackend.New(membackend.Config{}), 0)
}
