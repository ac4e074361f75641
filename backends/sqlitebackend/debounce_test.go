package sqlitebackend_test

import (
	"path/filepath"
	"testing"

	"github.com/conveyorhq/conveyor/flow/flowtest"
)

// TestDebounceBurst and TestExpiryBehindPause: the numbers on wall
// time with a worker (see flowtest). Not parallel: every write on SQLite
// takes the file's one lock, and the two cases' thousands of writes, run
// beside each other and the suite, slowed both past their waits.
func TestDebounceBurst(t *testing.T) {
	b := open(t, filepath.Join(t.TempDir(), "deb.db"))
	t.Cleanup(func() { _ = b.Close() })
	flowtest.DebounceBurst(t, b)
}

func TestExpiryBehindPause(t *testing.T) {
	b := open(t, filepath.Join(t.TempDir(), "exp.db"))
	t.Cleanup(func() { _ = b.Close() })
	flowtest.ExpiryBehindPause(t, b, 0)
}
