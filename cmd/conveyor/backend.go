package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/amqpbackend"
	"github.com/conveyorhq/conveyor/backends/pgbackend"
	"github.com/conveyorhq/conveyor/backends/redisbackend"
	"github.com/conveyorhq/conveyor/backends/sqlitebackend"
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

// openBackend opens the backend -db names: a postgres:// URL (its schema
// migrated by `conveyor migrate`), a redis:// or redis+cluster:// URL, an
// amqp:// URL with its job-state store, or else a SQLite file path.
func openBackend(ctx context.Context, db string) (store, error) {
	if strings.HasPrefix(db, "amqp://") || strings.HasPrefix(db, "amqps://") {
		return openAMQP(ctx, db)
	}
	if isPostgres(db) {
		return pgbackend.Open(ctx, db, pgbackend.Config{})
	}
	if strings.HasPrefix(db, "redis://") || strings.HasPrefix(db, "rediss://") || strings.HasPrefix(db, "redis+cluster://") {
		return redisbackend.Open(ctx, db, redisbackend.Config{})
	}
	return sqlitebackend.Open(ctx, sqlitebackend.Config{Path: db})
}

// openAMQP opens a RabbitMQ broker paired with the job-state store that the
// URL's store parameter names (any other -db value), as in
// amqp://guest:guest@localhost:5672/?store=conveyor.db. The CLI inspects
// and steers jobs by ID, which a broker alone cannot.
func openAMQP(ctx context.Context, db string) (store, error) {
	u, err := url.Parse(db)
	if err != nil {
		return nil, fmt.Errorf("bad AMQP URL: %w", err)
	}
	q := u.Query()
	stateDB := q.Get("store")
	if stateDB == "" || strings.HasPrefix(stateDB, "amqp") {
		return nil, errors.New("an amqp:// URL needs ?store=<SQLite path, postgres:// or redis:// URL> for job state")
	}
	q.Del("store")
	u.RawQuery = q.Encode()
	state, err := openBackend(ctx, stateDB)
	if err != nil {
		return nil, err
	}
	kv, ok := state.(backends.KVStore)
	if !ok {
		_ = state.Close()
		return nil, fmt.Errorf("%s cannot store job state: %w", stateDB, job.ErrUnsupported)
	}
	b, err := amqpbackend.Open(ctx, amqpbackend.Config{URL: u.String(), Store: kv})
	if err != nil {
		_ = state.Close()
		return nil, err
	}
	return &pairedBackend{StoredBackend: b.(*amqpbackend.StoredBackend), state: state}, nil
}

// pairedBackend is a broker with its job-state store; Close closes both.
type pairedBackend struct {
	*amqpbackend.StoredBackend
	state store
}

func (p *pairedBackend) Close() error { return errors.Join(p.StoredBackend.Close(), p.state.Close()) }
