// Package dashboard serves Conveyor's operator API over HTTP: queue counts,
// jobs by queue and state, job detail, live workers, and the actions an
// operator takes (pause and resume a queue; cancel, delete or replay a
// job; replay a queue's dead letters), plus health endpoints for load
// balancers. New returns an http.Handler an app mounts under a prefix of
// its own (http.StripPrefix), or that `conveyor dashboard` serves alone.
//
// Every response is JSON (encoding/json escapes <, > and & in strings, so
// nothing it returns is markup). The API is documented route by route on
// New.
//
// Security: `conveyor dashboard` binds to loopback unless told otherwise.
// With Config.BasicAuth or Config.BearerToken set, every route but the two
// health checks asks for credentials. State-changing routes are POSTs,
// refused when they come cross-site from a browser (net/http's
// CrossOriginProtection, which reads Sec-Fetch-Site and Origin), and
// refused altogether in read-only mode.
package dashboard
