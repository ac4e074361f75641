package sqlitebackend_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/sqlitebackend"
	"github.com/conveyorhq/conveyor/flow/flowtest"
)

// BenchmarkLimitsOverhead: a burn-down with a rate limit and with a
// concurrency limit, both far above the throughput, against none, each
// on a file of its own (scripts/bench-limits sqlite).
func BenchmarkLimitsOverhead(b *testing.B) {
	flowtest.BenchOverhead(b, func(b *testing.B) backends.Backend {
		be, err := sqlitebackend.Open(context.Background(), sqlitebackend.Config{Path: filepath.Join(b.TempDir(), "jobs.db")})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { be.Close() })
		return be
	})
}
