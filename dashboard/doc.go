// Package dashboard lets operators see and steer Conveyor from a browser:
// a web page (embedded, no build step) over a JSON API with queue counts
// and rates, jobs by queue and state with search, job detail, live workers,
// periodic tasks and flow limits (each one's use and the jobs it holds
// back), and the actions an operator takes (pause and resume a queue or a
// periodic task; cancel, delete or replay a job, with edited arguments;
// replay a queue's dead letters; change a limit on every worker); plus /metrics for Prometheus
// and health endpoints for load balancers. New returns an http.Handler an
// app mounts under a prefix of its own (http.StripPrefix), or that
// `conveyor dashboard` serves alone. The routes are listed on New.
//
// API responses are JSON (encoding/json escapes <, > and & in strings) and
// the page builds its DOM with textContent only, so nothing a job carries
// is ever rendered as markup.
//
// Security: `conveyor dashboard` binds to loopback unless told otherwise.
// With Config.BasicAuth or Config.BearerToken set, every route but the two
// health checks asks for credentials. State-changing routes are POSTs,
// refused when they come cross-site from a browser (net/http's
// CrossOriginProtection, which reads Sec-Fetch-Site and Origin), and
// refused altogether in read-only mode.
package dashboard
