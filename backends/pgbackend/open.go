package pgbackend

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/internal/gate"
	"github.com/conveyorhq/conveyor/backends/internal/knobs"
	"github.com/conveyorhq/conveyor/backends/internal/notify"
)

const defaultSchema = "conveyor"

// Config configures a Backend. Zero values mean the stated default.
type Config struct {
	// Pool is the connection pool. Required. The caller owns it: Close does
	// not close it (Open's pool is closed by Close).
	Pool *pgxpool.Pool
	// Schema holds Conveyor's tables, so several apps can share a database.
	// Default "conveyor".
	Schema string
	// Migrate applies pending migrations at New. Default off: run
	// `conveyor migrate` (or Migrate) as a deploy step instead.
	Migrate bool
	// NoListen turns LISTEN/NOTIFY off, for PgBouncer in transaction mode;
	// listeners then poll every PollEvery. Default: LISTEN on.
	NoListen bool
	// PollEvery is how often listeners re-check when LISTEN is off or its
	// connection is down. Default 1s.
	PollEvery time.Duration
	// KeepDone is how long done and cancelled jobs (and their results) are
	// kept. Default 24h; negative keeps them forever.
	KeepDone time.Duration
	// KeepDead is how long dead letters are kept. Default 7 days; negative
	// keeps them forever.
	KeepDead time.Duration
	// JanitorEvery is how often one process (under an advisory lock)
	// folds the logged count deltas into the counts, recovers expired
	// leases of every queue and prunes finished jobs. Reserve recovers its
	// own queue's leases anyway. Default 1s; negative turns it off in this
	// process (some process should run it: reading counts costs more as
	// the log grows).
	JanitorEvery time.Duration
	// NoVacuum leaves the jobs table to autovacuum alone. Default: the
	// janitor also vacuums it each time 10,000 more dead row versions have
	// piled up; between autovacuum's once-a-minute visits a busy queue
	// leaves a million, and every Reserve walks their index entries. Only
	// a role that owns the table can vacuum it; for any other role the
	// janitor leaves it to autovacuum.
	NoVacuum bool
	// Logger receives janitor and listener failures. Default slog.Default().
	Logger *slog.Logger
	// Clock tells the time: when a job is due, when a lease expires, the
	// times records carry. Default backends.SystemClock{}.
	Clock backends.Clock
}

// Backend stores jobs in PostgreSQL.
type Backend struct {
	cfg        Config
	pool       *pgxpool.Pool
	ownsPool   bool
	q          queries
	hub        notify.Hub
	listening  sync.Once
	tidies     atomic.Int64 // Tidy calls that did the work, for the log's vacuum
	vacuumLeft atomic.Int64 // dead versions of jobs the janitor's last vacuum left

	gate *gate.Gate
	bg   sync.WaitGroup
}

var (
	_ backends.Backend            = (*Backend)(nil)
	_ backends.Inspector          = (*Backend)(nil)
	_ backends.Admin              = (*Backend)(nil)
	_ backends.Pauser             = (*Backend)(nil)
	_ backends.Notifier           = (*Backend)(nil)
	_ backends.BatchCompleter     = (*Backend)(nil)
	_ backends.TxEnqueuer         = (*Backend)(nil)
	_ backends.ExhaustiveReserver = (*Backend)(nil)
)

// New checks the schema version (migrating first when cfg.Migrate) and
// starts the janitor.
func New(ctx context.Context, cfg Config) (*Backend, error) {
	if cfg.Pool == nil {
		return nil, errors.New("pgbackend: Config.Pool is required")
	}
	if cfg.Schema == "" {
		cfg.Schema = defaultSchema
	}
	if cfg.PollEvery <= 0 {
		cfg.PollEvery = time.Second
	}
	knobs.Knobs{KeepDone: &cfg.KeepDone, KeepDead: &cfg.KeepDead, JanitorEvery: &cfg.JanitorEvery,
		Logger: &cfg.Logger, Clock: &cfg.Clock}.Fill(time.Second)
	if cfg.Migrate {
		if _, err := Migrate(ctx, cfg.Pool, MigrateParams{Schema: cfg.Schema}); err != nil {
			return nil, err
		}
	}
	schema := pgx.Identifier{cfg.Schema}.Sanitize()
	conn, err := cfg.Pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("pgbackend: connecting: %w", err)
	}
	v, err := schemaVersion(ctx, conn.Conn(), schema)
	conn.Release()
	if err != nil || v != LatestVersion() {
		return nil, fmt.Errorf("pgbackend: schema %s is at version %d, this code needs %d: run `conveyor migrate` or set Config.Migrate (%v)",
			cfg.Schema, v, LatestVersion(), err)
	}
	b := &Backend{cfg: cfg, pool: cfg.Pool, q: newQueries(schema), gate: gate.New("pgbackend")}
	if cfg.JanitorEvery > 0 {
		b.bg.Add(1)
		go b.janitorLoop()
	}
	return b, nil
}

// Open connects to the database at url (a postgres:// URL or key=value
// string, as pgxpool.ParseConfig takes) and returns a backend that closes
// the pool on Close. Without pool_max_conns in url the pool holds 16
// connections.
func Open(ctx context.Context, url string, cfg Config) (*Backend, error) {
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("pgbackend: %w", err)
	}
	if !strings.Contains(url, "pool_max_conns") {
		pc.MaxConns = 16
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("pgbackend: %w", err)
	}
	cfg.Pool = pool
	b, err := New(ctx, cfg)
	if err != nil {
		pool.Close()
		return nil, err
	}
	b.ownsPool = true
	return b, nil
}

// Close stops the janitor and the listener. Jobs are not affected.
func (b *Backend) Close() error {
	first := b.gate.Close()
	b.bg.Wait()
	if first && b.ownsPool {
		b.pool.Close()
	}
	return nil
}

// Pool returns the connection pool, for transactions that enqueue
// (EnqueueTx) or complete (CompleteTx) along with the app's own writes.
func (b *Backend) Pool() *pgxpool.Pool { return b.pool }

// channelName is the LISTEN channel of a schema. PostgreSQL cuts
// identifiers at 63 bytes and NOTIFY refuses a longer channel ("channel
// name too long"), so a long schema's channel keeps its first 40 bytes and
// a hash of the whole, which no other schema's shares.
func channelName(schema string) string {
	if c := "conveyor:" + schema; len(c) <= 63 {
		return c
	}
	sum := sha256.Sum256([]byte(schema))
	return "conveyor:" + schema[:40] + ":" + hex.EncodeToString(sum[:6])
}
