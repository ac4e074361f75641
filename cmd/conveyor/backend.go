package main

import (
	"context"

	"github.com/conveyorhq/conveyor/backends/sqlitebackend"
)

func openBackend(ctx context.Context, path string) (*sqlitebackend.Backend, error) {
	return sqlitebackend.Open(ctx, sqlitebackend.Config{Path: path})
}
