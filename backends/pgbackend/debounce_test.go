package pgbackend_test

import (
	"testing"

	"github.com/conveyorhq/conveyor/backends/pgbackend"
	"github.com/conveyorhq/conveyor/flow/flowtest"
)

// TestDebounceBurst and TestExpiryBehindPause: the numbers on wall
// time with a worker (see flowtest), each in a schema of its own.
func TestDebounceBurst(t *testing.T) {
	t.Parallel()
	pool, schema := newPool(t)
	flowtest.DebounceBurst(t, open(t, pool, pgbackend.Config{Schema: schema}))
}

func TestExpiryBehindPause(t *testing.T) {
	t.Parallel()
	pool, schema := newPool(t)
	flowtest.ExpiryBehindPause(t, open(t, pool, pgbackend.Config{Schema: schema}), 0)
}
