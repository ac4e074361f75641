package amqpbackend

import (
	"log/slog"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/internal/knobs"
)

// Config configures a Backend. Zero values mean the stated default.
type Config struct {
	// URL of the broker, amqp:// or amqps://; a cluster's nodes as
	// several comma-separated addresses (amqp://u:p@h1:5672,h2:5672/vh),
	// dialled in turn from a random one and again on a reconnect, so a
	// stopped node's clients move to a live one. Required.
	URL string
	// Store keeps job state for lookup by ID, cancel, unique keys and an
	// exact depth bound (see the package documentation). Optional: any
	// backend's KVStore, for example a pgbackend, redisbackend or
	// sqlitebackend Backend. The caller owns it: Close does not close it.
	Store backends.KVStore
	// KeepDone is how long the store keeps done and cancelled jobs (and
	// their results) for lookup; KeepDead, dead ones. Defaults 24h and 7
	// days; negative keeps them forever. Without a store they do nothing:
	// the broker forgets a job once it is acked.
	KeepDone, KeepDead time.Duration
	// JanitorEvery is how often the janitor recounts the store's jobs (a
	// scan of every job) to repair per-queue counts a process left behind
	// when it died between a job's change and its count's (QueueStats
	// reads the counts, not the jobs). Default 1h, as it reads every job;
	// negative turns it off in this process. Without a store it does
	// nothing.
	JanitorEvery time.Duration
	// Prefix starts every exchange, queue and store key name, so several
	// apps can share one broker (and one store). Default "conveyor".
	Prefix string
	// QueueType is the x-queue-type of the work queues: "quorum" (durable
	// and replicated across a cluster; the default) or "classic". A classic
	// queue enforces x-max-length exactly under concurrent publishers,
	// where a quorum queue may admit several past it, but it counts no
	// deliveries (x-delivery-count), so MaxDeliveries sees only "delivered
	// before". Delay and dead-letter queues are quorum queues either way.
	QueueType string
	// Prefetch is how many deliveries each queue's consumer may hold
	// unacknowledged, running jobs included. Set it to at least the worker
	// concurrency on that queue: past it, Reserve falls back to one
	// basic.get per job. Default 1000.
	Prefetch int
	// MaxMessageBytes refuses, with job.ErrPayloadTooLarge, a job whose
	// payload is larger, before it reaches the broker: the broker would
	// close the publishing channel instead (its max_message_size). Default
	// 128 MiB, RabbitMQ's default; the task API's own bound (1 MiB) is
	// usually met first.
	MaxMessageBytes int
	// Heartbeat is the AMQP heartbeat: how soon the broker notices a frozen
	// or unplugged process and requeues its deliveries. Default 10s.
	Heartbeat time.Duration
	// ReconnectWait bounds how long an Enqueue waits for a lost broker
	// connection to come back before it fails. Default 5s.
	ReconnectWait time.Duration
	// TransitWait bounds how long Reserve waits for a message this process
	// just published to arrive from the broker, so that a Reserve right
	// after an Enqueue sees the job. Default 500ms.
	TransitWait time.Duration
	// RecordWait is how long, with a store, a delivered message whose job
	// has no record yet waits for the enqueue that published it to write
	// one (an enqueue publishes first, then records), before the record is
	// restored from the message: the enqueue's process died in between.
	// A unique key whose holder has no record is taken over only after
	// this long, too. Default 10s.
	RecordWait time.Duration
	// Logger receives reports of malformed messages and reconnects.
	// Default slog.Default().
	Logger *slog.Logger
	// Clock tells the time the records carry (created, started,
	// finished, attempts) and a delay's due time. Lease expiry and
	// delays themselves keep wall time: the broker's TTLs and this
	// process's lease timers do not follow it. Default
	// backends.SystemClock{}.
	Clock backends.Clock
}

func (c *Config) defaults() {
	if c.Prefix == "" {
		c.Prefix = "conveyor"
	}
	knobs.Knobs{KeepDone: &c.KeepDone, KeepDead: &c.KeepDead, JanitorEvery: &c.JanitorEvery,
		Logger: &c.Logger, Clock: &c.Clock}.Fill(time.Hour)
	if c.QueueType == "" {
		c.QueueType = "quorum"
	}
	if c.Prefetch <= 0 {
		c.Prefetch = 1000
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = 128 << 20
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = 10 * time.Second
	}
	if c.ReconnectWait <= 0 {
		c.ReconnectWait = 5 * time.Second
	}
	if c.RecordWait <= 0 {
		c.RecordWait = 10 * time.Second
	}
	if c.TransitWait <= 0 {
		c.TransitWait = 500 * time.Millisecond
	}
}
