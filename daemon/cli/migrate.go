package cli

import (
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/conveyorhq/conveyor/backends/open"
	"github.com/conveyorhq/conveyor/backends/pgbackend"
)

// migrateCmd applies the PostgreSQL backend's migrations: up to the latest
// version by default, or down to --to.
func (e *env) migrateCmd() *cobra.Command {
	var schema string
	var to int
	c := &cobra.Command{
		Use:   "migrate",
		Short: "apply the PostgreSQL schema's migrations, up or down (--db postgres://...)",
		Args:  nArgs(0),
		RunE: func(c *cobra.Command, _ []string) error {
			if !open.IsPostgres(e.db) {
				return usageErr(c, "migrate works on PostgreSQL (--db postgres://...); %s needs none", e.db)
			}
			pool, err := pgxpool.New(c.Context(), e.db)
			if err != nil {
				return err
			}
			defer pool.Close()
			v, err := pgbackend.Migrate(c.Context(), pool, pgbackend.MigrateParams{Schema: schema, To: to})
			if err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "schema %s is at version %d\n", schema, v)
			return nil
		},
	}
	c.Flags().StringVar(&schema, "schema", "conveyor", "schema holding Conveyor's tables")
	c.Flags().IntVar(&to, "to", 0, "version to migrate to: 0 for the latest, -1 to remove every table")
	return c
}
