// Package worker runs task handlers over any backend: concurrency overall
// and per queue, strict or weighted queue priority, batched reserves, lease
// heartbeats, per-job timeouts, panic recovery, retry policies, circuit
// breakers and graceful shutdown.
//
// A Worker is driven by Start and Stop; it never touches OS signals — a
// command translates SIGTERM into Stop (see cmd/conveyor).
//
//	w := worker.New(backend, worker.Config{Concurrency: 20})
//	worker.Register(w, tasks.SendEmail, sendEmail)
//	if err := w.Start(ctx); err != nil { ... }
//	<-sigterm
//	w.Stop(drainCtx)
//
// Delivery is at least once: a job whose worker dies is delivered again when
// its lease expires, so handlers must be idempotent.
package worker
