package pgbackend_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/backendtest"
	"github.com/conveyorhq/conveyor/backends/pgbackend"
	"github.com/conveyorhq/conveyor/internal/faulttest"
	"github.com/conveyorhq/conveyor/internal/testenv"
)

// newPool connects to the test server and gives the test a schema of its
// own, dropped at the end.
func newPool(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, testenv.PostgresURL(t)+"?pool_max_conns=20")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	schema := "t_" + strings.ToLower(strings.NewReplacer("/", "_", "-", "_").Replace(t.Name()))
	if len(schema) > 60 {
		schema = schema[:60]
	}
	drop := func() { _, _ = pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE") }
	drop()
	t.Cleanup(drop)
	return pool, schema
}

func open(t testing.TB, pool *pgxpool.Pool, cfg pgbackend.Config) *pgbackend.Backend {
	t.Helper()
	cfg.Pool = pool
	cfg.Migrate = true
	b, err := pgbackend.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestConformance(t *testing.T) {
	pool, schema := newPool(t)
	open(t, pool, pgbackend.Config{Schema: schema}) // migrate once
	backendtest.Run(t, func(t *testing.T) backends.Backend {
		return open(t, pool, pgbackend.Config{Schema: schema})
	})
}

// Finished jobs are pruned after their retention, except while their
// unique window is open; the maintained counts follow.
func TestTidyPrunesFinishedJobs(t *testing.T) {
	pool, schema := newPool(t)
	b := open(t, pool, pgbackend.Config{Schema: schema, KeepDone: time.Millisecond, JanitorEvery: -1})
	faulttest.PruneAfterRetention(t, b, b.Tidy)
}
