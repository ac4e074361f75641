package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/open"
	"github.com/conveyorhq/conveyor/job"
)

// ErrNoDatabase: a command that must not create a database was pointed at
// a SQLite file that does not exist (most often a mistyped path).
var ErrNoDatabase = errors.New("no such database")

// schemesHelp is what --db accepts, for help texts.
const schemesHelp = open.Schemes

// store is what the commands need of a backend: the core contract plus
// inspection, operator actions and pausing, which every backend the CLI
// opens implements.
type store interface {
	backends.Backend
	backends.Inspector
	backends.Admin
	backends.Pauser
}

// create says whether opening may create a database.
type create bool

const (
	mustExist create = false // reading and steering commands: a typo is an error
	mayCreate create = true  // worker, enqueue, schedule add: the first use makes it
)

// defaultDB is --db's default: $CONVEYOR_DB, else conveyor.db.
func defaultDB() string {
	if db := os.Getenv("CONVEYOR_DB"); db != "" {
		return db
	}
	return "conveyor.db"
}

// open opens the backend --db names (see open.Schemes). With mustExist a
// SQLite file that is not there is ErrNoDatabase rather than a new empty
// database; a server's database is the server's to have. A PostgreSQL
// schema is migrated by `migrate`, never here.
func (e *env) open(ctx context.Context, c create) (store, error) {
	if path, ok := sqlitePath(e.db); ok && c == mustExist {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s does not exist (this command does not create one; check --db or $CONVEYOR_DB)", ErrNoDatabase, path)
		}
	}
	b, err := open.URL(ctx, e.db, open.Options{})
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", e.db, err)
	}
	s, ok := b.(store)
	if !ok {
		_ = b.Close()
		return nil, fmt.Errorf("%w: %s cannot find jobs by ID; an amqp:// URL needs ?store=<SQLite path, postgres:// or redis:// URL> for job state",
			job.ErrUnsupported, e.db)
	}
	return s, nil
}

// sqlitePath returns the file a --db value names if it names a SQLite
// file, as open.URL reads it: a path, or sqlite:PATH.
func sqlitePath(db string) (string, bool) {
	scheme, rest, hasScheme := strings.Cut(db, ":")
	switch {
	case !hasScheme || len(scheme) == 1: // a path, or a Windows drive letter
		return db, true
	case scheme == "sqlite":
		return strings.TrimPrefix(rest, "//"), true
	}
	return "", false
}
