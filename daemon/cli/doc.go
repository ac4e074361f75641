// Package cli is Conveyor's command line as a library: an application's
// binary calls Main with its daemon.App and gets `worker` (the daemon),
// `enqueue`, `jobs`, `inspect`, `schedule`, `migrate`, `dashboard`,
// `config check`, `ping` and `version`, knowing the app's own tasks.
// cmd/conveyor is Execute over Command with the demo's tasks, plus a
// `demo` command of its own.
//
//	func main() {
//		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
//		code := cli.Main(ctx, app, os.Args[1:], os.Stdout, os.Stderr)
//		stop()
//		os.Exit(code)
//	}
//
// The commands are cobra's: flags go anywhere on the line, with two dashes
// or (as Go's flag package spells them) one; -h prints help and exits 0;
// a mistyped command is named, with suggestions. Exit codes: 0, 1 for a
// failure, 2 for a wrong command line (ErrUsage) or a bad worker
// configuration, 3 for a recycled worker process (daemon.ExitCode). Every
// error is one line with one prefix, the app's name.
//
// --db (default $CONVEYOR_DB, else conveyor.db) names the backend as
// package backends/open reads it; an unknown URL scheme is refused by
// name. Commands that read or steer (inspect, jobs, schedule list, pause,
// remove, dashboard) never create a database: a SQLite file that is not
// there is ErrNoDatabase. Every reading command prints JSON with --json;
// jobs are shown as the dashboard's job view (dashboard.JobView), with
// their arguments and result decoded. A change that names a queue no job,
// stored setting or task knows fails with ErrUnknownQueue, a periodic task
// that does not exist with ErrUnknownSchedule, a job ID that does not
// exist with job.ErrNotFound, each naming what does exist.
package cli
