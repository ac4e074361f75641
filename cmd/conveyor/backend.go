package main

import (
	"context"
	"strings"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/pgbackend"
	"github.com/conveyorhq/conveyor/backends/redisbackend"
	"github.com/conveyorhq/conveyor/backends/sqlitebackend"
)

// store is what the commands need of a backend: the core contract plus
// inspection, operator actions and pausing, which every backend the CLI
// opens implements.
type store interface {
	backends.Backend
	backends.Inspector
	backends.Admin
	backends.Pauser
}

// openBackend opens the backend -db names: a postgres:// URL (its schema
// migrated by `conveyor migrate`), a redis:// or redis+cluster:// URL, or
// else a SQLite file path.
func openBackend(ctx context.Context, db string) (store, error) {
	if isPostgres(db) {
		return pgbackend.Open(ctx, db, pgbackend.Config{})
	}
	if strings.HasPrefix(db, "redis://") || strings.HasPrefix(db, "rediss://") || strings.HasPrefix(db, "redis+cluster://") {
		return redisbackend.Open(ctx, db, redisbackend.Config{})
	}
	return sqlitebackend.Open(ctx, sqlitebackend.Config{Path: db})
}
