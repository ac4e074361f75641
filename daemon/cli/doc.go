// Package cli is Conveyor's command line as a library: an application's
// binary calls cli.Main with its daemon.App and gets `worker`, `enqueue`,
// `jobs`, `inspect`, `schedule`, `migrate` and the rest, knowing the
// app's own tasks. cmd/conveyor is cli.Main with the demo's tasks.
package cli
