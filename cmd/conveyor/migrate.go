package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/conveyorhq/conveyor/backends/open"
	"github.com/conveyorhq/conveyor/backends/pgbackend"
)

// runMigrate applies the PostgreSQL backend's migrations: up to the latest
// version by default, or down to -to.
func runMigrate(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	db := dbFlag(fs)
	schema := fs.String("schema", "conveyor", "schema holding Conveyor's tables")
	to := fs.Int("to", 0, "version to migrate to: 0 for the latest, -1 to remove every table")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if !open.IsPostgres(*db) {
		return fmt.Errorf("migrate works on PostgreSQL (-db postgres://...); %q needs none: %w", *db, flag.ErrHelp)
	}
	pool, err := pgxpool.New(ctx, *db)
	if err != nil {
		return err
	}
	defer pool.Close()
	v, err := pgbackend.Migrate(ctx, pool, pgbackend.MigrateParams{Schema: *schema, To: *to})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "schema %s is at version %d\n", *schema, v)
	return nil
}
