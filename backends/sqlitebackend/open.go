package sqlitebackend

import (
	"context"
	"database/sql"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"github.com/avast/retry-go/v4"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/internal/gate"
	"github.com/conveyorhq/conveyor/backends/internal/knobs"
	"github.com/conveyorhq/conveyor/backends/internal/notify"
	"github.com/conveyorhq/conveyor/backends/internal/tick"
)

//go:embed schema.sql
var schema string

// Config configures a Backend. Zero values mean the stated default.
type Config struct {
	// Path of the database file; created if absent. Required.
	Path string
	// BusyTimeout is how long a write waits for another process's lock
	// before SQLite reports the database busy. Default 5s.
	BusyTimeout time.Duration
	// NotifyPoll is how often listeners check for other processes' writes.
	// Default 25ms.
	NotifyPoll time.Duration
	// CheckpointEvery is how often the WAL is copied back into the
	// database file, off the write path. Default 1s.
	CheckpointEvery time.Duration
	// KeepDone is how long done and cancelled jobs (and their results) are
	// kept before they are deleted. Default 24h; negative keeps them forever.
	KeepDone time.Duration
	// KeepDead is how long dead letters are kept for inspection and replay.
	// Default 7 days; negative keeps them forever.
	KeepDead time.Duration
	// JanitorEvery is how often the janitor runs (Tidy) in this process: it
	// dead-letters rows that do not decode and deletes finished jobs past
	// their retention. Default 1m; negative turns it off in this process
	// (some process should run it, or call Tidy).
	JanitorEvery time.Duration
	// Logger receives janitor failures. Default slog.Default().
	Logger *slog.Logger
	// Clock tells the time: when a job is due, when a lease expires, the
	// times records carry. Default backends.SystemClock{}.
	Clock backends.Clock
}

// Backend stores jobs in one SQLite file.
type Backend struct {
	cfg Config
	db  *sql.DB // writes: one connection, BEGIN IMMEDIATE
	ro  *sql.DB // reads: several connections, concurrent with the writer
	hub notify.Hub

	stmts   map[string]*sql.Stmt // hotStatements, prepared on db's one connection
	roStmts map[string]*sql.Stmt // readStatements, prepared on ro (once per connection)

	pollOnce sync.Once
	gate     *gate.Gate
	polling  sync.WaitGroup // the data_version and maintenance loops
}

var (
	_ backends.Backend        = (*Backend)(nil)
	_ backends.Inspector      = (*Backend)(nil)
	_ backends.Admin          = (*Backend)(nil)
	_ backends.Pauser         = (*Backend)(nil)
	_ backends.Notifier       = (*Backend)(nil)
	_ backends.TxEnqueuer     = (*Backend)(nil)
	_ backends.BatchCompleter = (*Backend)(nil)
)

// Open opens (creating if needed) the database at cfg.Path and applies the
// schema.
func Open(ctx context.Context, cfg Config) (*Backend, error) {
	if cfg.Path == "" {
		return nil, errors.New("sqlitebackend: Config.Path is required")
	}
	if cfg.BusyTimeout <= 0 {
		cfg.BusyTimeout = 5 * time.Second
	}
	if cfg.NotifyPoll <= 0 {
		cfg.NotifyPoll = 25 * time.Millisecond
	}
	if cfg.CheckpointEvery <= 0 {
		cfg.CheckpointEvery = time.Second
	}
	knobs.Knobs{KeepDone: &cfg.KeepDone, KeepDead: &cfg.KeepDead, JanitorEvery: &cfg.JanitorEvery,
		Logger: &cfg.Logger, Clock: &cfg.Clock}.Fill(time.Minute)
	db, err := OpenDB(cfg.Path, cfg.BusyTimeout)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	ro, err := OpenDB(cfg.Path, cfg.BusyTimeout)
	if err != nil {
		db.Close()
		return nil, err
	}
	ro.SetMaxOpenConns(4)
	b := &Backend{cfg: cfg, db: db, ro: ro, gate: gate.New("sqlitebackend")}
	if err := b.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, schema); err != nil {
			return err
		}
		return applyFairSchema(ctx, tx)
	}); err != nil {
		b.Close()
		return nil, fmt.Errorf("sqlitebackend: apply schema to %s: %w", cfg.Path, err)
	}
	if b.stmts, err = prepareAll(ctx, db, hotStatements); err == nil {
		b.roStmts, err = prepareAll(ctx, ro, readStatements)
	}
	if err != nil {
		b.Close()
		return nil, err
	}
	b.maintain()
	return b, nil
}

// maintain starts the housekeeping every process with a Backend open
// shares: checkpoints and the janitor. Both are idempotent, so processes
// need not agree on who does them.
func (b *Backend) maintain() {
	b.polling.Add(1)
	go func() {
		defer b.polling.Done()
		tick.Every(b.gate.Closing(), b.cfg.CheckpointEvery, func(ctx context.Context) {
			// PASSIVE never waits for readers or writers: what it
			// cannot copy now it copies next time.
			_, _ = b.ro.ExecContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`)
		})
	}()
	if b.cfg.JanitorEvery > 0 {
		b.polling.Add(1)
		go func() {
			defer b.polling.Done()
			tick.Janitor(b.gate.Closing(), b.cfg.JanitorEvery, b.cfg.Logger, "sqlitebackend", b.Tidy)
		}()
	}
}

// OpenDB opens a database/sql handle on path with the settings the backend
// relies on: WAL, synchronous=NORMAL, a busy timeout and BEGIN IMMEDIATE
// transactions. Apps that keep their own tables in the same file and
// enqueue transactionally should open it this way (or use Backend.DB).
func OpenDB(path string, busy time.Duration) (*sql.DB, error) {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busy.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	// NORMAL in WAL mode keeps every commit atomic and the file consistent
	// across a crash of the process; a power loss may lose the last commits.
	q.Add("_pragma", "synchronous(NORMAL)")
	// Checkpoints run in the background (see checkpointLoop) instead of
	// inside whichever commit crosses the WAL size limit, where they stall
	// every write queued behind it.
	q.Add("_pragma", "wal_autocheckpoint(0)")
	q.Add("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlitebackend: open %s: %w", path, err)
	}
	return db, nil
}

// DB returns the backend's write handle, for apps that keep their own
// tables in the same file and enqueue in their transactions (EnqueueTx).
// A transaction held open on it delays the backend's writes in this process.
func (b *Backend) DB() *sql.DB { return b.db }

// Close closes the database. Jobs stay in the file.
func (b *Backend) Close() error {
	if !b.gate.Close() {
		return nil
	}
	b.polling.Wait()
	return errors.Join(b.db.Close(), b.ro.Close())
}

// prepareAll prepares each query on db.
func prepareAll(ctx context.Context, db *sql.DB, queries []string) (map[string]*sql.Stmt, error) {
	out := make(map[string]*sql.Stmt, len(queries))
	for _, q := range queries {
		st, err := db.PrepareContext(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("sqlitebackend: prepare: %w", err)
		}
		out[q] = st
	}
	return out, nil
}

// prepared returns the statement prepared at Open, bound to tx. As the
// write pool has one connection, tx runs on the connection the statement
// was prepared on and database/sql reuses it without parsing again.
func (b *Backend) prepared(ctx context.Context, tx *sql.Tx, query string) *sql.Stmt {
	return tx.StmtContext(ctx, b.stmts[query])
}

// statements gives a query's statement bound to a transaction; a
// transaction closes the statements it gives when it ends.
type statements func(query string) (*sql.Stmt, error)

// statements gives tx, a transaction of this Backend's write pool, the
// statements prepared at Open (hotStatements).
func (b *Backend) statements(ctx context.Context, tx *sql.Tx) statements {
	return func(query string) (*sql.Stmt, error) { return b.prepared(ctx, tx, query), nil }
}

// prepareIn prepares each query in tx, a caller's transaction, which may
// be on a connection of another pool than the Backend's.
func prepareIn(ctx context.Context, tx *sql.Tx) statements {
	return func(query string) (*sql.Stmt, error) { return tx.PrepareContext(ctx, query) }
}

// write runs fn in an IMMEDIATE transaction, retrying when another process
// holds the lock past the busy timeout.
func (b *Backend) write(ctx context.Context, fn func(*sql.Tx) error) error {
	return retry.Do(func() error {
		tx, err := b.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if err := fn(tx); err != nil {
			_ = tx.Rollback()
			return err
		}
		return tx.Commit()
	},
		retry.Context(ctx),
		retry.Attempts(5),
		retry.Delay(10*time.Millisecond),
		retry.LastErrorOnly(true),
		retry.RetryIf(isBusy),
	)
}

func isBusy(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	code := se.Code() & 0xff // primary code, without the extended bits
	return code == sqlite3.SQLITE_BUSY || code == sqlite3.SQLITE_LOCKED
}
