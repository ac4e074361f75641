package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"

	_ "modernc.org/sqlite" // the driver sqlitebackend uses too
)

// openRiverSQLite opens a fresh database file for River in a temporary
// directory, with the settings sqlitebackend uses (WAL, synchronous=NORMAL,
// a 5 s busy timeout) except that SQLite checkpoints inside commits as it
// does by default (Conveyor checkpoints in the background instead). The
// pool has one connection, as riversqlite's documentation asks: River's
// concurrent operations would otherwise fail with SQLITE_BUSY.
func openRiverSQLite() (*sql.DB, func(), error) {
	dir, err := os.MkdirTemp("", "conveyor-bench-river-")
	if err != nil {
		return nil, nil, err
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "river.db")+"?"+q.Encode())
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	db.SetMaxOpenConns(1)
	return db, func() { db.Close(); os.RemoveAll(dir) }, nil
}

// runRiverSQLite is the river-sqlite row, the sqlite row's peer: River with
// riversqlite on the same modernc.org/sqlite driver, a file of its own per
// workload.
func runRiverSQLite(ctx context.Context, cfg config) (row, error) {
	return runRiverRow(ctx, cfg, "river-sqlite", func(concurrency int, fn func(int64)) (*river.Client[*sql.Tx], func(), error) {
		db, closeDB, err := openRiverSQLite()
		if err != nil {
			return nil, nil, err
		}
		migrator, err := rivermigrate.New(riversqlite.New(db), &rivermigrate.Config{Logger: quietSlog()})
		if err == nil {
			_, err = migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
		}
		if err != nil {
			closeDB()
			return nil, nil, fmt.Errorf("river-sqlite migrate: %w", err)
		}
		client, err := river.NewClient(riversqlite.New(db), riverConfig("", concurrency, fn))
		if err != nil {
			closeDB()
			return nil, nil, err
		}
		return client, closeDB, nil
	})
}
