package pgbackend_test

import (
	"testing"

	"github.com/conveyorhq/conveyor/backends/pgbackend"
	"github.com/conveyorhq/conveyor/flow/flowtest"
)

// Limits changed while jobs run, on two worker processes' worth of
// backends over one schema: overrides and limits in the KV table; see
// flowtest.LimitsChangeAtRunTime.
func TestLimitsChangeAtRunTime(t *testing.T) {
	pool, schema := newPool(t)
	other, _ := newPool(t)
	flowtest.LimitsChangeAtRunTime(t, open(t, pool, pgbackend.Config{Schema: schema}), open(t, other, pgbackend.Config{Schema: schema}))
}
