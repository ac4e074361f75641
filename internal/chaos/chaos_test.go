package chaos_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/amqpbackend"
	"github.com/conveyorhq/conveyor/backends/membackend"
	"github.com/conveyorhq/conveyor/backends/pgbackend"
	"github.com/conveyorhq/conveyor/backends/redisbackend"
	"github.com/conveyorhq/conveyor/backends/sqlitebackend"
	"github.com/conveyorhq/conveyor/internal/testenv"
)

// spec says how to open a case's backend; worker processes get it as JSON
// in CONVEYOR_CHAOS_SPEC.
type spec struct {
	Kind   string `json:"kind"`             // sqlite, memory, redis, postgres, amqp
	URL    string `json:"url"`              // file, redis://, redis+cluster://, postgres:// or amqp:// URL
	Store  string `json:"store,omitempty"`  // amqp: the redis:// URL of the job-state store, if any
	Prefix string `json:"prefix,omitempty"` // redis, amqp: key and entity names on a shared server; postgres: the schema (default conveyor)
	// Wait, on a Redis Cluster: every script waits for this many replicas
	// to have it (WAIT) before its answer counts (redisbackend.Config.WaitReplicas).
	Wait int `json:"wait,omitempty"`
}

// opened is a backend as the test and its workers use it.
type opened struct {
	backends.Backend                      // handed to clients and workers as is, with its capabilities
	insp             backends.Inspector   // nil: AMQP without a store
	amqp             *amqpbackend.Backend // the AMQP cases' own methods (ListDead)
	kv               backends.KVStore     // the AMQP job-state store, if any
	sp               spec
	probe            *brokerProbe // AMQP: the broker's own counts
	closers          []func() error
}

func (o *opened) Close() error {
	err := o.Backend.Close()
	if o.probe != nil {
		o.probe.close()
	}
	for _, c := range o.closers {
		_ = c()
	}
	return err
}

func open(ctx context.Context, sp spec, logger *slog.Logger) (*opened, error) {
	var b backends.Backend
	var err error
	switch sp.Kind {
	case "sqlite":
		b, err = sqlitebackend.Open(ctx, sqlitebackend.Config{Path: sp.URL})
	case "memory":
		b = membackend.New(membackend.Config{})
	case "redis":
		b, err = redisbackend.Open(ctx, sp.URL, redisbackend.Config{Prefix: sp.Prefix, Logger: logger, WaitReplicas: sp.Wait})
	case "postgres":
		b, err = pgbackend.Open(ctx, sp.URL, pgbackend.Config{Migrate: true, Logger: logger, Schema: sp.Prefix})
	case "amqp":
		return openAMQP(ctx, sp, logger)
	default:
		return nil, fmt.Errorf("unknown backend kind %q", sp.Kind)
	}
	if err != nil {
		return nil, err
	}
	o := &opened{Backend: b, sp: sp}
	o.insp, _ = b.(backends.Inspector)
	return o, nil
}

func openAMQP(ctx context.Context, sp spec, logger *slog.Logger) (*opened, error) {
	// A one-second heartbeat: a SIGSTOPped worker's connection drops, and
	// the broker hands its deliveries on, soon after its leases would end.
	cfg := amqpbackend.Config{URL: sp.URL, Prefix: sp.Prefix, Heartbeat: time.Second, Logger: logger}
	o := &opened{sp: sp, probe: &brokerProbe{url: sp.URL}}
	if sp.Store != "" {
		st, err := redisbackend.Open(ctx, sp.Store, redisbackend.Config{Prefix: "store", Logger: logger})
		if err != nil {
			return nil, err
		}
		cfg.Store, o.kv = st, st
		// Killed workers lose their last unflushed counts and may leak a
		// depth slot; the recount repairs both. Every few seconds here, so
		// the run's end sees the repair (the default is hourly).
		cfg.JanitorEvery = amqpJanitorEvery
		o.closers = append(o.closers, st.Close)
	}
	b, err := amqpbackend.Open(ctx, cfg)
	if err != nil {
		for _, c := range o.closers {
			_ = c()
		}
		return nil, err
	}
	o.Backend, o.amqp = b, b
	if cfg.Store != nil {
		sb := &amqpbackend.StoredBackend{Backend: b, KVStore: cfg.Store}
		o.Backend, o.insp = sb, sb
	}
	return o, nil
}

// TestMain turns the test binary into a worker process when the test
// starts it with CONVEYOR_CHAOS_WORKER set.
func TestMain(m *testing.M) {
	if os.Getenv("CONVEYOR_CHAOS_WORKER") == "1" {
		if os.Getenv("CONVEYOR_CHAOS_DEBUG") == "1" { // every dropped message and lease, to read a stuck job's story
			slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})))
		}
		var sp spec
		err := json.Unmarshal([]byte(os.Getenv("CONVEYOR_CHAOS_SPEC")), &sp)
		if err == nil {
			err = runWorkerProcess(sp, os.Getenv("CONVEYOR_CHAOS_LEDGER"))
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "chaos worker:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	// All cases at once, unless -test.parallel says otherwise: they spend
	// most of their time waiting (on pacing, leases, restarts, SQLite's
	// one writer), and the default of one case per CPU would run them in
	// turns, past the time CI gives the package.
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit {
		_ = flag.Set("test.parallel", "8")
	}
	os.Exit(m.Run())
}

// jobCount is the main queue's jobs per backend: 1,000 as CI runs it,
// 20,000 in scripts/chaos.
func jobCount() int {
	if n, err := strconv.Atoi(os.Getenv("CONVEYOR_CHAOS_JOBS")); err == nil && n > 0 {
		return n
	}
	return 1000
}

// uniquePrefix names a run's keys or entities on a server other tests
// share.
func uniquePrefix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "chaos-" + hex.EncodeToString(b)
}

// chaosCase is one backend under chaos.
type chaosCase struct {
	spec    spec
	server  crasher     // nil: nothing to crash-restart
	corrupt []corruptor // how to damage waiting jobs in this backend's own format
	// lossAllowed: the crash may lose acknowledged jobs (a failover to an
	// asynchronous replica); the run measures how many instead of failing.
	lossAllowed bool
	// failover: a cluster node dies under the workers. A deleted job hash
	// is still removed from every set there (the account checks it is gone
	// and never ran), but the process whose script found it often loses
	// the script's reply with the dying node, and with it the log line
	// naming the ID (a known limit, docs/reliability.md): counted, not a
	// failure.
	failover bool
}

func TestChaos(t *testing.T) {
	if os.Getenv("CI") == "true" && os.Getenv("CONVEYOR_SKIP_SERVERS") == "1" {
		t.Fatal("CI runs the chaos test on every backend: CONVEYOR_SKIP_SERVERS=1 would skip all but SQLite and memory")
	}
	cases := map[string]func(t *testing.T) chaosCase{
		"sqlite": func(t *testing.T) chaosCase {
			path := filepath.Join(t.TempDir(), "chaos.db")
			return chaosCase{spec: spec{Kind: "sqlite", URL: path}, corrupt: sqliteCorruptors(path)}
		},
		// The memory backend lives in one process: its workers run in the
		// test process and are "killed" by cutting them off it.
		"memory": func(t *testing.T) chaosCase { return chaosCase{spec: spec{Kind: "memory"}} },
		"redis": func(t *testing.T) chaosCase {
			srv := startRedis(t)
			sp := spec{Kind: "redis", URL: "redis://" + srv.Addr + "/0", Prefix: "conveyor"}
			return chaosCase{spec: sp, server: srv, corrupt: redisCorruptors(sp)}
		},
		// The shared cluster is not restarted: a unique prefix keeps this
		// run's keys apart from other tests'.
		"redis-cluster": func(t *testing.T) chaosCase {
			sp := spec{Kind: "redis", URL: "redis+cluster://" + strings.Join(testenv.RedisCluster(t), ","), Prefix: uniquePrefix()}
			return chaosCase{spec: sp, corrupt: redisCorruptors(sp)}
		},
		"postgres": func(t *testing.T) chaosCase {
			srv := startPostgres(t)
			// A pool per process big enough for its enqueuers (the default
			// is 4 connections on this machine).
			url := srv.URL + "?pool_max_conns=16"
			return chaosCase{spec: spec{Kind: "postgres", URL: url}, server: srv, corrupt: pgCorruptors(srv.URL, "conveyor")}
		},
		"amqp": func(t *testing.T) chaosCase {
			sp := spec{Kind: "amqp", URL: testenv.RabbitMQURL(t), Prefix: uniquePrefix()}
			return chaosCase{spec: sp, server: broker(t), corrupt: amqpGarbage(sp)}
		},
		// The job-state store is a Redis of the test's own: SQLite's one
		// writer per file, under the race detector, would make the store
		// the bottleneck of the run.
		"amqp-store": func(t *testing.T) chaosCase {
			store := startRedis(t)
			sp := spec{Kind: "amqp", URL: testenv.RabbitMQURL(t), Prefix: uniquePrefix(), Store: "redis://" + store.Addr + "/0"}
			return chaosCase{spec: sp, server: broker(t), corrupt: amqpStoreCorruptors(sp)}
		},
	}
	for _, name := range []string{"sqlite", "memory", "redis", "redis-cluster", "postgres", "amqp", "amqp-store"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := cases[name](t)
			if c.spec.Kind == "amqp" {
				t.Cleanup(func() { deleteAMQPEntities(t, c.spec) })
			}
			runChaos(t, c)
		})
	}
}

// broker is the RabbitMQ node to restart mid-run, or nil when this run
// must leave it up (see brokerRestarts).
func broker(t *testing.T) crasher {
	if !brokerRestarts() {
		return nil
	}
	return &rabbitNode{node: testenv.RabbitMQNode(t), t: t}
}

// amqpJanitorEvery is how often the AMQP store's janitor recounts in the
// chaos runs, repairing a leaked depth slot.
const amqpJanitorEvery = 3 * time.Second
