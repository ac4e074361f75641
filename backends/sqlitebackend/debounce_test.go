package sqlitebackend_test

import (
	"path/filepath"
	"testing"

	"github.com/conveyorhq/conveyor/flow/flowtest"
)

// TestDebounceBurst and TestExpiryBehindPause: the numbers on wall
// time with a worker (see flowtest).
func TestDebounceBurst(t *testing.T) {
	t.Parallel()
	b := open(t, filepath.Join(t.TempDir(), "deb.db"))
	t.Cleanup(func() { _ = b.Close() })
	flowtest.DebounceBurst(t, b)
}

func TestExpiryBehindPause(t *testing.T) {
	t.Parallel()
	b := open(t, filepath.Join(t.TempDir(), "exp.db"))
	t.Cleanup(func() { _ = b.Close() })
	flowtest.ExpiryBehindPause(t, b, 0)
}
