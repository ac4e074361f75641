package worker_test

import (
	"path/filepath"
	"testing"

	"github.com/conveyorhq/conveyor/flow/flowtest"
)

// Limits changed while jobs run, on two workers over one SQLite file; see
// flowtest.LimitsChangeAtRunTime (run by the Redis and PostgreSQL
// backends' tests too).
func TestLimitsChangeAtRunTime(t *testing.T) {
	bs := openSQLite(t, filepath.Join(t.TempDir(), "live.db"), 2)
	flowtest.LimitsChangeAtRunTime(t, bs[0], bs[1])
}
