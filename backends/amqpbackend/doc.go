// Package amqpbackend runs Conveyor jobs through an AMQP 0-9-1 broker
// (RabbitMQ 3.10 or newer), through github.com/rabbitmq/amqp091-go.
//
// # The broker
//
// Every queue is a durable quorum queue ("<prefix>.q.<queue>"; classic
// with Config.QueueType). A job is a plain message: its payload is the
// body, its ID the message-id, its task name the type, and the rest of the
// job is in x-conveyor-* headers. An enqueue
// returns only once the broker confirmed the publish (publisher confirms);
// Reserve hands out deliveries that stay unacknowledged while their job
// runs, so a worker that dies, or loses its connection, gives its jobs back
// to the broker, which delivers them again: at-least-once.
//
// A consumer per queue and Backend prefetches Config.Prefetch deliveries
// into a local buffer ordered by priority, run-at and arrival, so Reserve
// usually takes jobs without a round trip. Priority therefore orders the
// jobs this process holds, not the whole queue (quorum queues on 3.10 have
// no priorities): within the prefetch window.
//
// Leases are the process's own: a delivery whose lease passes without an
// Extend is returned to the broker (nack, requeue), and the broker counts
// the return in x-delivery-count, which is how poison messages are found
// without a store. With a store the deliveries are the leases it recorded:
// the broker's count also takes in the returns of messages that a dying
// consumer had prefetched but never started.
// A process that stops without returning them (killed, frozen) loses its
// connection, at once or after the AMQP heartbeat (Config.Heartbeat), and
// the broker requeues them then.
//
// Bounded backlogs: a queue enqueued with MaxDepth is declared with
// x-max-length and x-overflow=reject-publish, so the broker itself nacks a
// publish past the bound and Enqueue returns job.ErrQueueFull. The broker
// counts ready messages only: deliveries held unacknowledged (running or
// prefetched) are not counted, and when they come back (a consumer killed,
// a connection lost, a broker restart) they are requeued past the bound.
// So, without a store, Enqueue also admits a batch only if the queue's
// ready messages (read with a passive declare before it publishes) plus
// the deliveries this process holds unacknowledged on the queue plus the
// batch's jobs fit under the bound, and publishes to a bounded queue one
// batch at a time per process. The guarantee: ready + unacknowledged <=
// MaxDepth + U + P, where U is the number of deliveries other processes
// hold at the time (AMQP 0-9-1 shows a client no unacknowledged count,
// and a process's holding is at most its Config.Prefetch plus its running
// basic.get jobs), and P is 0 on a classic queue and at most one per
// publishing process on a quorum queue (it learns it is full
// asynchronously). A process that both enqueues and consumes keeps the
// bound itself. TestBoundCountsDeliveriesInFlight measured, with bound
// 20 and prefetch 5: 20 ready after killing a consumer in the enqueuing
// process (25 before this admission control), 25 after killing one in
// another process. Delayed jobs wait in the delay levels and count only
// once they are due. With a store (below) the bound is exact.
//
// Delays, retry-at and snoozes use no plugin: a message waits in per-delay
// level queues ("<prefix>.delay.<ms>", one per power of two milliseconds),
// each with a fixed x-message-ttl and a dead-letter exchange back to the
// work queues. A job due in d waits in the largest level not above the rest
// of d, and hops down the levels (one hop per set bit of d in
// milliseconds); once it is due within 64ms, the consumer that receives it
// holds it in memory and files it when due. It never runs early;
// TestDelaysNeverRunEarly measured it due well under a millisecond late
// when a consumer was running (tens of milliseconds when the first Reserve
// has to start one).
//
// Dead letters are published through the exchange "<prefix>.dead" into
// "<prefix>.dead.<queue>", where they can be inspected and replayed
// (ReplayDead); the work queues name that exchange as their dead-letter
// exchange, so messages the broker itself dead-letters land there too. A
// dead letter (malformed, poison or dead-lettered by its handler) keeps
// the properties and headers of the message that died (message-id,
// correlation-id, content type, application headers...), all but its
// expiration and user-id (kept in x-conveyor-user-id), with the reason in
// x-conveyor-reason and the time in x-conveyor-dead-at.
//
// A quorum queue exists (a passive declare finds it) a moment before its
// Raft member has started, and again after a node restart; a read before
// then fails with 541 noproc, which closes the whole connection. So the
// Backend waits, before its first read of a queue, until a basic.get on a
// probe connection of its own succeeds: after declaring the queue, or on
// finding it declared by another process (which may still be declaring
// it). ListDead and ReplayDead read on a connection of their own. Both
// retry noproc with backoff (up to 30s), so the race costs no leases.
//
// # The store
//
// A broker cannot look a message up by ID. Paired with a job-state store
// (Config.Store: any backend's backends.KVStore, such as PostgreSQL, Redis
// or SQLite), as Celery pairs a broker with a result backend, the Backend
// records every job and its state there and gains:
//
//   - status, result and inspection by ID (backends.Inspector), which the
//     task API's Wait, Result and the CLI's inspect need;
//   - Cancel of a waiting or running job by ID;
//   - unique keys and duplicate IDs (a retried Enqueue is idempotent);
//   - an exact MaxDepth over unfinished jobs, all or nothing per batch;
//   - the store's KVStore itself, so the scheduler and the worker registry
//     work;
//   - QueueStats from per-queue counters the store keeps with every change
//     (a few keys a call, whatever the number of jobs; see counts.go for
//     why they are not atomic with the jobs' changes and how the janitor
//     recounts them every Config.JanitorEvery).
//
// The broker holds the job and the store its state, so the two can
// disagree. A delivery whose record the store does not have is not taken
// for a finished job: a job that finishes keeps its record until its
// retention passes (a job cancelled while it waited, until its run-at
// plus that retention), and a job deleted on purpose (DeleteJobs,
// PurgeQueue) leaves a tombstone for as long, so the message of either is
// acked without a run (logged at Debug). A record that is simply absent (a
// store restarted without persistence, restored from an older backup or
// cleaned by hand, or a message published by another producer) is restored
// from the message, which carries the whole job, and the job runs, with a
// warning naming it; a message that is no job goes to dead letter.
//
// An enqueue publishes first and records second, so that a process dying
// in between leaves a message the consumer restores, never a record that
// no message will run. A consumer that takes a job's first message before
// its record exists waits for the write when its own process is making it
// (a workflow's engine releasing steps, a producer that also works), and
// otherwise puts it back and looks again every 10ms, for up to
// Config.RecordWait after the job was created, before it restores the
// record from the message; a unique key whose holder has no record is
// taken over only once it is that old. A Retry publishes the next message
// and then records it; a process that froze in between and whose delivery
// was taken again by another worker finds its lease gone, records nothing,
// and the message it published (which names the delivery it retried) is
// dropped when it arrives.
//
// Without a store Enqueue refuses unique keys with job.ErrUnsupported,
// Cancel works only for the worker holding the lease, duplicate IDs are
// not detected, and the depth bound is the broker's.
//
// # Faults
//
// When the connection drops, the Backend reconnects with exponential
// backoff (avast/retry-go), declares its topology again and resumes its
// consumers. Deliveries held when it dropped are returned by the broker;
// their leases are lost (Complete fails with job.ErrLeaseLost), so the job
// runs again. An Enqueue during the outage waits up to Config.ReconnectWait
// for the broker, then fails; a publish the broker did not confirm is
// never reported as done.
package amqpbackend
