// Package daemon turns an application's binary into a production worker
// daemon: configuration from flags, environment and a file; signals as
// operators expect (drain, quiet, reload); health and metrics endpoints;
// supervised worker processes. `conveyor worker` is this package run with
// the demo's tasks. It is a module of its own because it opens any
// backend by URL (backends/open), which brings every server driver.
//
// An app's worker binary is three lines around its App:
//
//	func main() {
//	err := daemon.Main(context.Background(), app, os.Args[1:], os.Stdout, os.Stderr)
//	if err != nil { fmt.Fprintln(os.Stderr, err); os.Exit(daemon.ExitCode(err)) }
//	}
//
// # Configuration
//
// Every key has one name in the three sources: the key of the TOML config
// file (-config FILE or CONVEYOR_CONFIG), the environment variable
// CONVEYOR_<KEY> (upper case, dashes as underscores) and the flag -<key>.
// A flag wins over the environment, which wins over the file, which wins
// over the default. The file refuses unknown keys and values of the wrong
// type, naming the key and its line; `conveyor config check FILE` runs
// the same check (CheckConfig). Lists are TOML arrays of strings in the
// file and comma-separated in flags and environment.
//
//	key          environment           type     default      on SIGHUP
//	db           CONVEYOR_DB           string   conveyor.db  restart
//	queues       CONVEYOR_QUEUES       list     default      live
//	fair         CONVEYOR_FAIR         list     none         live
//	strict       CONVEYOR_STRICT       bool     false        live
//	concurrency  CONVEYOR_CONCURRENCY  integer  10           live
//	lease        CONVEYOR_LEASE        duration 30s          live
//	job-timeout  CONVEYOR_JOB_TIMEOUT  duration 30m          live
//	drain        CONVEYOR_DRAIN        duration 30s          live
//	breakers     CONVEYOR_BREAKERS     list     none         live
//	limits       CONVEYOR_LIMITS       list     none         live
//	http         CONVEYOR_HTTP         string   none         restart
//	api-token    CONVEYOR_API_TOKEN    string   none         restart
//	log-format   CONVEYOR_LOG_FORMAT   string   text         restart
//	log-level    CONVEYOR_LOG_LEVEL    string   info         live
//	processes    CONVEYOR_PROCESSES    integer  0            restart
//	max-jobs     CONVEYOR_MAX_JOBS     integer  0            restart
//	max-rss      CONVEYOR_MAX_RSS      size     0            restart
//	slow-job     CONVEYOR_SLOW_JOB     duration 0            live
//
// What each key means:
//
//   - db: the backend, a SQLite file or a URL: postgres://, redis://,
//     redis+cluster://host:port,..., amqp://...?store=<one of the others>.
//   - queues: highest priority first, each NAME[:CONCURRENCY[:WEIGHT]]
//     ("email:4:2" caps email at 4 running jobs and gives it twice the
//     fetch rounds of a weight-1 queue; CONCURRENCY 0 or empty means only
//     the overall cap).
//   - fair: queues whose tenants (the jobs' keys) are served round-robin,
//     each QUEUE[:GROUP=WEIGHT...] ("reports:enterprise=3" gives tenant
//     enterprise three jobs a turn for every other tenant's one); each must
//     be one of queues. A backend without fair queues (RabbitMQ) refuses
//     them at start.
//   - strict: drain earlier queues before later ones instead of weighted
//     random order.
//   - concurrency: most jobs running at once in one process.
//   - lease: a reservation's length; a crashed worker's jobs return after it.
//   - job-timeout: bound of an attempt of a task that sets no timeout.
//   - drain: after SIGTERM, how long running jobs may take before they are
//     cancelled and released to other workers.
//   - breakers: circuit breakers, each NAME:FAILURES:OPEN-FOR ("smtp:10:1m").
//   - limits: flow limit overrides, each KIND:NAME=LIMIT[/PER[:BURST]]
//     ("rate:queue:email=100/1m:20", "concurrency:shopify.sync=3"), set in
//     the backend for every worker on it (flow.Override): a task's or a
//     queue's declared limit changes, and one that declares none gets it
//     (a queue's rate limit is named queue:<name>). A reload sets the new
//     figures and removes the overrides it no longer lists; a restart does
//     not remove those an earlier config set (`conveyor inspect limits
//     KIND:NAME reset` does).
//   - http: the address of /healthz, /readyz and /metrics, and of the
//     producer HTTP API at /v1/ (package httpapi) for the App's tasks;
//     with processes, the supervisor serves /healthz and /readyz there and
//     worker process i (from 1) serves the rest on the port plus i.
//   - api-token: the bearer token the producer API asks for; without one
//     it answers requests from loopback only.
//   - log-format: text or json (log/slog). log-level: debug, info, warn, error.
//   - processes: run that many worker processes under a supervisor in this
//     one; 0 runs the worker in this process.
//   - max-jobs, max-rss: recycle a supervised worker process (drained, then
//     replaced) after it finished that many jobs or once its resident
//     memory passes the size ("512MiB", "2GB", or bytes).
//   - slow-job: log a warning for each job still running past it.
//
// An example file:
//
//	db          = "postgres://conveyor@db.internal/conveyor"
//	queues      = ["critical:0:4", "email:8", "default"]
//	concurrency = 20
//	drain       = "25s"
//	breakers    = ["smtp:10:1m"]
//	limits      = ["rate:queue:email=100/1m"]
//	http        = "127.0.0.1:9187"
//	log-format  = "json"
//
// # Signals
//
//   - SIGTERM, SIGINT: drain. Stop fetching, let running jobs finish for up
//     to drain, then cancel the rest and release their leases so another
//     worker runs them at once. A second SIGTERM or SIGINT releases them at
//     once.
//   - SIGTSTP: quiet. Stop fetching and keep running what was started, for
//     a deploy's cut-over; SIGTERM afterwards drains what is left, SIGCONT
//     fetches again (worker.Pause and Resume).
//   - SIGHUP: reload the config file (with the same flags and environment
//     on top) and apply the live keys; the log lists what changed and what
//     needs a restart. Queues, weights, fair queues, strict order and
//     concurrency change on the running worker (worker.Reconfigure), so one
//     concurrency cap holds throughout; limits change on every worker
//     within a second; lease, job timeout and breakers start a new worker
//     that takes over fetching while the old one finishes its jobs. A file
//     that does not load is refused with its error and the running
//     configuration stays.
//
// A supervisor (processes > 0) passes each signal on to its workers.
// Exit codes: 0 after a drain, 1 for an error, 2 for bad configuration
// (ExitCode).
package daemon
