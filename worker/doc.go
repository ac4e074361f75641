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
//
// A job whose task has no handler on this worker is not dead-lettered for
// that: in a rolling deploy an old worker meets tasks only the new code
// has. The worker gives it back, using no attempt and no delivery, to be
// offered again after Config.UnknownTaskDelay (5s, plus jitter) to a worker
// that has the handler; it reports the outcome UnknownTask and logs one
// warning per task a minute, naming the task and the worker. Only a job
// that no worker has taken for Config.UnknownTaskWindow (24h from its
// creation or last failed attempt), while no live worker on its queue
// announces the task (Info.Tasks), is dead-lettered, with that reason.
// Backends cannot yet leave such jobs out at reserve time.
//
// Every failed attempt is logged as a warning with the task, job ID,
// attempt number, error and what comes next, through Config.Logger, unless
// Config.QuietFailedAttempts turns it off.
//
// Long jobs: from a handler, Progress reports how far it is (at most one
// backend write per job per Config.ProgressEvery), Checkpoint and
// LastCheckpoint keep state across retries and re-deliveries under the
// job's lease, Logger's lines are kept with the job (bounded by
// Config.JobLogLines and JobLogBytes), Iterate runs a cursor loop that
// checkpoints after each batch and stops cleanly at a drain, and Draining
// tells that a drain began. A handler that ignores its cancellation past
// Config.CancelGrace is abandoned: its outcome recorded, its slot freed,
// its lease no longer extended, its late result refused.
package worker
