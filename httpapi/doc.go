// Package httpapi is Conveyor's producer API over HTTP, for any language:
// enqueue one job or a batch by task name with JSON arguments, read a job's
// status and result by ID, wait for it (a long poll), cancel it. It is an
// http.Handler to mount in an app's own server; `conveyor serve` and the
// worker daemon serve it on an optional address.
//
// The routes, all JSON, are described by an OpenAPI 3 document served at
// /v1/openapi.json (and checked in as openapi.json):
//
//	POST /v1/jobs             enqueue one job
//	POST /v1/jobs/batch       enqueue several, all or nothing
//	GET  /v1/jobs/{id}        status, attempts, result
//	GET  /v1/jobs/{id}/wait   the same once the job has finished, or after ?timeout=
//	POST /v1/jobs/{id}/cancel cancel a waiting job, stop a running one
//
// A full queue answers 429 Too Many Requests with Retry-After: the bounded
// backlog as HTTP backpressure. Bad JSON, an unknown field, an unknown task
// or arguments that do not decode into the task's type answer 400 with a
// message naming the field. Every error is {"error": "..."}.
//
// Security: with a BearerToken or BasicAuth configured every route needs
// it; with neither, only requests from loopback are served, so an API
// mounted on a public address by mistake refuses instead of taking jobs
// from anyone.
package httpapi
