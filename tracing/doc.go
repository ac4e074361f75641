// Package tracing carries OpenTelemetry trace context from the request
// that enqueues a job to the worker that runs it: an enqueue span (kind
// producer) whose context travels in the job's headers, and a span per run
// (kind consumer) that continues the same trace.
//
//	t := tracing.New(tracing.Config{}) // the global TracerProvider and propagator
//	client := queue.NewClient(b, queue.Config{Tracer: t})
//	w := worker.New(b, worker.Config{Middleware: []worker.Middleware{t.Middleware()}})
package tracing
