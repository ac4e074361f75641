package open_test

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/amqpbackend"
	"github.com/conveyorhq/conveyor/backends/backendtest"
	"github.com/conveyorhq/conveyor/backends/membackend"
	"github.com/conveyorhq/conveyor/backends/pgbackend"
	"github.com/conveyorhq/conveyor/backends/redisbackend"
	"github.com/conveyorhq/conveyor/backends/sqlitebackend"
	"github.com/conveyorhq/conveyor/internal/testenv"
	"github.com/conveyorhq/conveyor/workflow/workflowtest"
)

// The AMQP backend keeps job state in whichever store it is paired with,
// so the conformance suite runs on the broker over each kind of store.
// It lives in this module because it is the one that has every backend;
// the amqpbackend module's own tests pair the broker with SQLite.
func TestAMQPOverEveryStore(t *testing.T) {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
	t.Cleanup(func() { _ = rdb.Close() })
	pool, err := pgxpool.New(ctx, testenv.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	stores := map[string]func(t *testing.T, clock backends.Clock) backends.KVStore{
		"memory": func(t *testing.T, clock backends.Clock) backends.KVStore {
			return must(membackend.New(membackend.Config{Clock: clock}), nil)(t)
		},
		"sqlite": func(t *testing.T, clock backends.Clock) backends.KVStore {
			return must(sqlitebackend.Open(ctx, sqlitebackend.Config{Path: filepath.Join(t.TempDir(), "state.db"), Clock: clock}))(t)
		},
		"redis": func(t *testing.T, clock backends.Clock) backends.KVStore {
			return must(redisbackend.New(ctx, redisbackend.Config{Client: rdb, Prefix: "amqpstore-" + run + "-" + t.Name(), Clock: clock}))(t)
		},
		"postgres": func(t *testing.T, clock backends.Clock) backends.KVStore {
			schema := "as_" + strings.ToLower(strings.NewReplacer("/", "_", "-", "_").Replace(t.Name()))
			if len(schema) > 60 {
				schema = schema[:60]
			}
			drop := func() { _, _ = pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE") }
			drop()
			t.Cleanup(drop)
			return must(pgbackend.New(ctx, pgbackend.Config{Pool: pool, Schema: schema, Migrate: true, Clock: clock}))(t)
		},
	}
	for kind, store := range stores {
		t.Run(kind, func(t *testing.T) {
			prefix := "test-stores-" + kind + "-" + run
			testenv.DeleteRabbitMQQueues(t, prefix)
			backendtest.Suite{New: func(t *testing.T, clock backends.Clock) backends.Backend {
				st := store(t, clock)
				b, err := amqpbackend.OpenStored(ctx, amqpbackend.Config{
					URL: testenv.RabbitMQURL(t), Prefix: prefix, Store: st, Clock: clock,
					TransitWait: 5 * time.Second, // as in amqpbackend's tests: a loaded machine's delivery
				})
				if err != nil {
					t.Fatal(err)
				}
				return b
			}, WallClock: true}.Run(t)
		})
	}
}

// must fails the test on err, else closes b when the test ends.
func must[B backends.Backend](b B, err error) func(t *testing.T) B {
	return func(t *testing.T) B {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return b
	}
}

// TestWorkflows runs the workflow engine's suite on the broker with a
// SQLite store (records and job state in the store, jobs on the broker),
// each case under a prefix and in a file of its own.
func TestWorkflows(t *testing.T) {
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	workflowtest.Run(t, func(t *testing.T) backends.Backend {
		ctx := context.Background()
		prefix := "test-wf-" + run + "-" + strings.NewReplacer("/", "-").Replace(t.Name())
		testenv.DeleteRabbitMQQueues(t, prefix)
		st := must(sqlitebackend.Open(ctx, sqlitebackend.Config{Path: filepath.Join(t.TempDir(), "state.db")}))(t)
		b, err := amqpbackend.OpenStored(ctx, amqpbackend.Config{
			URL: testenv.RabbitMQURL(t), Prefix: prefix, Store: st, TransitWait: 5 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}
