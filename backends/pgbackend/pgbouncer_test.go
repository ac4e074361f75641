package pgbackend_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/backendtest"
	"github.com/conveyorhq/conveyor/backends/pgbackend"
	"github.com/conveyorhq/conveyor/internal/testenv"
)

// The core contracts hold on a pool that prepares no named statements, the
// mode the package documents for PgBouncer's transaction pooling (the
// batch enqueue's COPY then describes its columns on each call).
func TestConformanceWithoutPreparedStatements(t *testing.T) {
	pool, err := pgxpool.New(context.Background(), testenv.PostgresURL(t)+"?default_query_exec_mode=exec")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	backendtest.Suite{New: func(t *testing.T, clock backends.Clock) backends.Backend {
		return open(t, pool, pgbackend.Config{Schema: freshSchema(t, pool), Clock: clock})
	}, TimePrecision: time.Microsecond}.RunCore(t)
}
