// Package daemon turns an application's binary into a production worker
// daemon: configuration from flags, environment and a file; signals as
// operators expect (drain, quiet, reload); health and metrics endpoints;
// supervised worker processes. `conveyor worker` is this package run with
// the demo's tasks. It is a module of its own because it opens any
// backend by URL (backends/open), which brings every server driver.
package daemon
