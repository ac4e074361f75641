package main

import (
	"context"
	"fmt"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/open"
	"github.com/conveyorhq/conveyor/job"
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

// openBackend opens the backend -db names (see open.Schemes); a PostgreSQL
// schema is migrated by `conveyor migrate`, not here.
func openBackend(ctx context.Context, db string) (store, error) {
	b, err := open.URL(ctx, db, open.Options{})
	if err != nil {
		return nil, err
	}
	s, ok := b.(store)
	if !ok {
		_ = b.Close()
		return nil, fmt.Errorf("%w: %s cannot find jobs by ID; an amqp:// URL needs ?store=<SQLite path, postgres:// or redis:// URL> for job state",
			job.ErrUnsupported, db)
	}
	return s, nil
}
