package cli

import (
	"github.com/spf13/cobra"

	"github.com/conveyorhq/conveyor/daemon"
)

// workerCmd runs the worker daemon (package daemon) with the app's tasks
// until the context ends or a signal stops it. The daemon parses its own
// flags, environment and config file, so cobra hands it the raw arguments
// (`worker -h` lists them).
func (e *env) workerCmd() *cobra.Command {
	return &cobra.Command{
		Use:                "worker [flags]",
		Short:              "run the worker daemon with the app's tasks and the scheduler (worker -h: its flags)",
		DisableFlagParsing: true,
		RunE: func(c *cobra.Command, args []string) error {
			return daemon.Main(c.Context(), e.app, args, c.OutOrStdout(), c.ErrOrStderr())
		},
	}
}

// configCmd checks a worker's config file as the daemon loads it.
func (e *env) configCmd() *cobra.Command {
	return group("config", "the worker daemon's config file",
		&cobra.Command{
			Use:   "check FILE",
			Short: "check a config file: unknown keys and wrong types, with file, line and key",
			Args:  nArgs(1),
			RunE: func(c *cobra.Command, args []string) error {
				if err := daemon.CheckConfig(args[0]); err != nil {
					return err
				}
				c.Printf("%s is a valid config\n", args[0])
				return nil
			},
		})
}

// pingCmd makes one round trip through the backend a URL names, for
// external health checks; without an argument it pings --db.
func (e *env) pingCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "ping [URL]",
		Short: "one round trip through the backend (default --db), for external checks",
		Args:  wrapArgs(cobra.MaximumNArgs(1)),
		RunE: func(c *cobra.Command, args []string) error {
			u := e.db
			if len(args) == 1 {
				u = args[0]
			}
			if err := daemon.Ping(c.Context(), u); err != nil {
				return err
			}
			c.Println("ok")
			return nil
		},
	}
}
