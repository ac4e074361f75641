package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"strings"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/conveyorhq/conveyor/daemon"
)

// ErrUsage marks a command line that is wrong: an unknown command or flag,
// a missing or extra argument, a flag value out of range. Execute exits 2
// on it, 1 on any other error.
var ErrUsage = errors.New("usage")

// Exit codes of Main and Execute; `worker` adds the daemon's own (see
// daemon.ExitCode).
const (
	ExitOK    = 0 // the command did what it was asked, or -h printed help
	ExitError = 1 // the command failed
	ExitUsage = 2 // the command line was wrong (ErrUsage), or the worker's configuration
)

// Main runs the command line args (without the program name) of app's
// binary and returns its exit code. Output goes to stdout, diagnostics and
// errors to stderr, one line prefixed with the app's name. ctx ends the
// long-running commands (worker, dashboard): package main gives it a
// signal context.
func Main(ctx context.Context, app daemon.App, args []string, stdout, stderr io.Writer) int {
	return Execute(ctx, Command(app), args, stdout, stderr)
}

// Execute runs root, a tree from Command with commands of the caller's own
// added (as cmd/conveyor adds `demo`), on args; see Main.
func Execute(ctx context.Context, root *cobra.Command, args []string, stdout, stderr io.Writer) int {
	// go-redis logs every failed dial through its own global logger before
	// the error reaches us; the error we print says it once.
	redis.SetLogger(discardRedis{})
	root.SetArgs(longFlags(root, args))
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp), daemon.ExitCode(err) == ExitOK: // the last two: the worker's own -h
		return ExitOK
	case errors.Is(err, ErrUsage):
		fmt.Fprintf(stderr, "%s: %s\n(see %s -h)\n", root.Name(), strings.TrimPrefix(message(err), ErrUsage.Error()+": "), root.Name())
		return ExitUsage
	}
	fmt.Fprintf(stderr, "%s: %s\n", root.Name(), message(err))
	return daemon.ExitCode(err) // 1, or the worker daemon's own: 2 for its bad configuration, 3 for a recycled process
}

// message is err's text with the library's own "conveyor: " prefixes
// removed: the sentinels of package job carry one, and wrapped inside a
// command's context it would repeat the binary's prefix mid-line.
func message(err error) string {
	return strings.ReplaceAll(err.Error(), "conveyor: ", "")
}

// Command returns the command tree of app's binary: every Conveyor command,
// knowing app's tasks. The caller may add commands of its own to it before
// passing it to Execute.
func Command(app daemon.App) *cobra.Command {
	if app.Name == "" {
		app.Name = "conveyor"
	}
	if app.Version == "" {
		app.Version = buildVersion()
	}
	e := &env{app: app}
	root := &cobra.Command{
		Use:   app.Name,
		Short: "run workers, enqueue, inspect and steer jobs, manage periodic tasks, serve the dashboard",
		Long: app.Name + ` runs workers, enqueues, inspects and steers jobs, manages periodic tasks and the
PostgreSQL schema, and serves the dashboard, on any backend.

--db (default $CONVEYOR_DB, else conveyor.db) is a SQLite file path or a URL:
` + schemesHelp + `.
Commands that only read never create a database. Flags go anywhere on the line, with one dash or two.`,
		SilenceErrors: true,
		SilenceUsage:  true,
		// Args instead of cobra's own check, which does not say "unknown
		// command" for a mistyped verb of a group.
		Args: cobra.ArbitraryArgs,
		RunE: helpOrUnknown,
	}
	root.CompletionOptions.HiddenDefaultCmd = true
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return fmt.Errorf("%w: %w", ErrUsage, err) })
	pf := root.PersistentFlags()
	pf.StringVar(&e.db, "db", defaultDB(), "backend: a SQLite file or a URL (env CONVEYOR_DB)")
	pf.BoolVar(&e.json, "json", false, "print what a reading command shows as JSON")
	root.AddCommand(
		e.workerCmd(), e.enqueueCmd(), e.jobsCmd(), e.inspectCmd(), e.scheduleCmd(),
		e.migrateCmd(), e.dashboardCmd(), e.configCmd(), e.pingCmd(), e.versionCmd(),
	)
	return root
}

// env is what every command shares: the app and the global flags.
type env struct {
	app  daemon.App
	db   string
	json bool
}

// group returns a command that only holds subcommands: run bare it prints
// its help; with an argument that names no subcommand it says so.
func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{Use: use, Short: short, Args: cobra.ArbitraryArgs, RunE: helpOrUnknown}
	c.AddCommand(subs...)
	return c
}

func helpOrUnknown(c *cobra.Command, args []string) error {
	if len(args) == 0 {
		if err := c.Help(); err != nil {
			return err
		}
		return fmt.Errorf("%w: %s needs a command", ErrUsage, c.CommandPath())
	}
	hint := ""
	c.SuggestionsMinimumDistance = 2 // cobra's default, which SuggestionsFor alone does not apply
	if s := c.SuggestionsFor(args[0]); len(s) > 0 {
		hint = "; did you mean " + strings.Join(s, " or ") + "?"
	}
	return fmt.Errorf("%w: unknown command %q for %q%s", ErrUsage, args[0], c.CommandPath(), hint)
}

// nArgs is cobra.ExactArgs that marks the error as a usage error.
func nArgs(n int) cobra.PositionalArgs {
	return wrapArgs(cobra.ExactArgs(n))
}

// minArgs is cobra.MinimumNArgs that marks the error as a usage error.
func minArgs(n int) cobra.PositionalArgs {
	return wrapArgs(cobra.MinimumNArgs(n))
}

func wrapArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if err := check(c, args); err != nil {
			return fmt.Errorf("%w: %s %s: %w", ErrUsage, c.CommandPath(), strings.TrimPrefix(c.Use, c.Name()+" "), err)
		}
		return nil
	}
}

// usageErr is a usage error of c with a reason.
func usageErr(c *cobra.Command, format string, a ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrUsage, c.CommandPath(), fmt.Sprintf(format, a...))
}

// buildVersion is the main module's version from the binary's build
// information: a tag for `go install ...@vX`, "(devel)" for a local build.
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok || bi.Main.Version == "" {
		return "(devel)"
	}
	return bi.Main.Version
}

type discardRedis struct{}

func (discardRedis) Printf(context.Context, string, ...any) {}
