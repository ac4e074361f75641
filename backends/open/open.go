// Package open opens a backend from a URL, for binaries and tools that
// take the backend as configuration (the conveyor CLI, a worker daemon, the
// chaos test). Each scheme maps to one backend in an explicit table, not a
// registry filled at init time; an app that picks its backend in code calls
// that backend's own New or Open instead and links only it.
package open

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/amqpbackend"
	"github.com/conveyorhq/conveyor/backends/membackend"
	"github.com/conveyorhq/conveyor/backends/pgbackend"
	"github.com/conveyorhq/conveyor/backends/redisbackend"
	"github.com/conveyorhq/conveyor/backends/sqlitebackend"
	"github.com/conveyorhq/conveyor/job"
)

// Options tune what URL opens. The zero value is the backends' defaults.
type Options struct {
	// Migrate creates or upgrades the PostgreSQL schema on open. Default
	// off: production schemas change through `conveyor migrate`.
	Migrate bool
	// Logger receives what each backend opened reports with no caller to
	// return it to (janitor failures, malformed records). Default
	// slog.Default().
	Logger *slog.Logger
}

// Schemes lists the URL forms URL accepts, for help texts and errors.
const Schemes = "a SQLite file path (or sqlite:PATH), memory:, postgres:// or postgresql://, " +
	"redis://, rediss:// or redis+cluster://host:port,host:port, amqp:// or amqps:// with ?store=<one of the others>"

// URL opens the backend that u names; closing it closes everything it
// opened. An amqp:// URL pairs the broker with the job-state store its
// store parameter names, URL-encoded, as in
// amqp://guest:guest@localhost:5672/?store=app.db; its prefix parameter
// sets amqpbackend.Config.Prefix, the namespace of its queues.
func URL(ctx context.Context, u string, o Options) (backends.Backend, error) {
	scheme, rest, hasScheme := strings.Cut(u, ":")
	if !hasScheme || len(scheme) == 1 { // a path, or a Windows drive letter
		return sqlitebackend.Open(ctx, sqlitebackend.Config{Path: u, Logger: o.Logger})
	}
	switch scheme {
	case "sqlite":
		return sqlitebackend.Open(ctx, sqlitebackend.Config{Path: strings.TrimPrefix(rest, "//"), Logger: o.Logger})
	case "memory":
		return membackend.New(membackend.Config{Logger: o.Logger}), nil
	case "postgres", "postgresql":
		return pgbackend.Open(ctx, u, pgbackend.Config{Migrate: o.Migrate, Logger: o.Logger})
	case "redis", "rediss", "redis+cluster":
		return redisbackend.Open(ctx, u, redisbackend.Config{Logger: o.Logger})
	case "amqp", "amqps":
		return amqp(ctx, u, o)
	}
	return nil, fmt.Errorf("%w: backend URL %q has an unknown scheme %q; use %s", job.ErrInvalid, u, scheme, Schemes)
}

// IsPostgres reports whether u names a PostgreSQL database.
func IsPostgres(u string) bool {
	return strings.HasPrefix(u, "postgres://") || strings.HasPrefix(u, "postgresql://")
}

func amqp(ctx context.Context, raw string, o Options) (backends.Backend, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: AMQP URL: %w", job.ErrInvalid, err)
	}
	q := u.Query()
	storeURL, prefix := q.Get("store"), q.Get("prefix")
	q.Del("store")
	q.Del("prefix")
	u.RawQuery = q.Encode()
	cfg := amqpbackend.Config{URL: u.String(), Prefix: prefix, Logger: o.Logger}
	if storeURL == "" {
		return amqpbackend.Open(ctx, cfg)
	}
	if strings.HasPrefix(storeURL, "amqp") {
		return nil, fmt.Errorf("%w: the job-state store of %s cannot be a broker", job.ErrInvalid, raw)
	}
	state, err := URL(ctx, storeURL, o)
	if err != nil {
		return nil, err
	}
	kv, ok := state.(backends.KVStore)
	if !ok {
		_ = state.Close()
		return nil, fmt.Errorf("%s cannot store job state: %w", storeURL, job.ErrUnsupported)
	}
	cfg.Store = kv
	b, err := amqpbackend.OpenStored(ctx, cfg)
	if err != nil {
		_ = state.Close()
		return nil, err
	}
	return &paired{StoredBackend: b, state: state}, nil
}

// paired is a broker with its job-state store; Close closes both.
type paired struct {
	*amqpbackend.StoredBackend
	state backends.Backend
}

func (p *paired) Close() error { return errors.Join(p.StoredBackend.Close(), p.state.Close()) }
