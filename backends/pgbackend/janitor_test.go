package pgbackend_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/pgbackend"
	"github.com/conveyorhq/conveyor/internal/testenv"
)

// The janitor vacuums the jobs table once enough dead row versions piled
// up, and leaves it to autovacuum when told to or when its role does not
// own the table.
func TestJanitorVacuumsJobs(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		cfg    pgbackend.Config
		tenant bool // the backend's role may write the tables but does not own them
		want   bool
	}{
		{name: "owner", want: true},
		{name: "NoVacuum", cfg: pgbackend.Config{NoVacuum: true}},
		{name: "not the owner", tenant: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pool, schema := newPool(t)
			jobs := pgx.Identifier{schema}.Sanitize() + ".jobs"
			if _, err := pgbackend.Migrate(ctx, pool, pgbackend.MigrateParams{Schema: schema}); err != nil {
				t.Fatal(err)
			}
			// Only the janitor vacuums here, when it does.
			if _, err := pool.Exec(ctx, "ALTER TABLE "+jobs+" SET (autovacuum_enabled = false)"); err != nil {
				t.Fatal(err)
			}
			tc.cfg.Pool, tc.cfg.Schema, tc.cfg.JanitorEvery = pool, schema, -1
			if tc.tenant {
				var warned []string
				tc.cfg.Pool = tenantPool(t, pool, schema, func(n *pgconn.Notice) { warned = append(warned, n.Message) })
				// A VACUUM it may not run would do nothing but warn.
				defer func() {
					if len(warned) > 0 {
						t.Errorf("the server warned the janitor: %q", warned)
					}
				}()
			}
			b, err := pgbackend.New(ctx, tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			for i := range 12 {
				batch := make([]*backends.JobInsert, 1000)
				for k := range batch {
					batch[k] = &backends.JobInsert{ID: fmt.Sprintf("j%d-%d", i, k), Queue: "q", Task: "t"}
				}
				if _, err := b.Enqueue(ctx, backends.EnqueueParams{Jobs: batch}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := pool.Exec(ctx, "UPDATE "+jobs+" SET priority = 1"); err != nil {
				t.Fatal(err)
			}
			stats := func() (dead, vacuums int64) {
				t.Helper()
				if err := pool.QueryRow(ctx, "SELECT n_dead_tup, vacuum_count FROM pg_stat_all_tables WHERE relid = $1::regclass",
					jobs).Scan(&dead, &vacuums); err != nil {
					t.Fatal(err)
				}
				return dead, vacuums
			}
			// The server publishes a session's counts when it goes idle, at
			// most once a second.
			for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				if dead, _ := stats(); dead >= 12000 {
					break
				} else if time.Now().After(deadline) {
					t.Fatalf("the server reports %d dead rows, want 12,000", dead)
				}
			}
			if err := b.Tidy(ctx); err != nil {
				t.Fatal(err)
			}
			dead, vacuums := stats()
			if got := vacuums == 1; got != tc.want {
				t.Fatalf("%d vacuums by the janitor, %d dead rows left; want a vacuum: %v", vacuums, dead, tc.want)
			}
			if !tc.want {
				return
			}
			if dead >= 1000 {
				t.Fatalf("%d dead rows after the vacuum", dead)
			}
			// Nothing new to remove: the next tick does not vacuum again.
			if err := b.Tidy(ctx); err != nil {
				t.Fatal(err)
			}
			if _, again := stats(); again != 1 {
				t.Fatalf("%d vacuums after a second tick, want 1", again)
			}
		})
	}
}

// tenantPool connects as a fresh role that may use schema's tables but
// owns none of them, the way an app's role often is.
func tenantPool(t *testing.T, owner *pgxpool.Pool, schema string, notice func(*pgconn.Notice)) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	role := "conveyor_tenant_" + fmt.Sprint(time.Now().UnixNano())
	s := pgx.Identifier{schema}.Sanitize()
	for _, sql := range []string{
		"CREATE ROLE " + role + " LOGIN PASSWORD 'tenant'",
		"GRANT USAGE ON SCHEMA " + s + " TO " + role,
		"GRANT ALL ON ALL TABLES IN SCHEMA " + s + " TO " + role,
		"GRANT ALL ON ALL SEQUENCES IN SCHEMA " + s + " TO " + role,
	} {
		if _, err := owner.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := pgxpool.ParseConfig(testenv.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.User, cfg.ConnConfig.Password = role, "tenant"
	var mu sync.Mutex
	cfg.ConnConfig.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { mu.Lock(); defer mu.Unlock(); notice(n) }
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		pool.Close()
		_, _ = owner.Exec(ctx, "DROP OWNED BY "+role)
		_, _ = owner.Exec(ctx, "DROP ROLE "+role)
	})
	return pool
}
