package celery

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/conveyorhq/conveyor/backends"
)

// Config configures a Broker. Exactly one of AMQPURL and Redis names the
// broker. Zero values mean the stated default.
type Config struct {
	// AMQPURL is a RabbitMQ broker, as in Celery's broker_url
	// (amqp://guest:guest@localhost:5672//). Default "": not RabbitMQ.
	AMQPURL string
	// Redis is a Redis broker, in kombu's layout: a list per queue (and
	// per priority step), the unacked hash and index. Default nil: not Redis.
	Redis redis.UniversalClient
	// Results is Celery's Redis result backend (result_backend =
	// redis://...): finished jobs are written to celery-task-meta-<id>,
	// and GetJob reads them. Default: Redis when the broker is Redis, else
	// none (no results stored unless RPCResults).
	Results redis.UniversalClient
	// RPCResults also sends each result to the message's reply_to queue
	// with its correlation_id, as Celery's rpc:// result backend expects.
	// RabbitMQ only. Default false: Celery clients always set reply_to,
	// so replying only when asked keeps a Redis result backend's clients
	// from collecting stray messages.
	RPCResults bool
	// ResultExpires is how long a result key lives (Celery's
	// result_expires). Default 24h.
	ResultExpires time.Duration
	// Prefetch bounds the due messages one queue's consumer holds
	// unacknowledged in this process (Celery's prefetch). Messages with
	// an eta in the future are held too, on top of it, as Celery's worker
	// holds them. Default 64.
	Prefetch int
	// DeadQueue names the dead-letter queue of a queue. Default: the
	// queue's name with ".dead" appended.
	DeadQueue func(queue string) string
	// TransitWait bounds how long Reserve waits for messages this process
	// published to the queue but its consumer has not received yet, so an
	// Enqueue followed by a Reserve sees its job. Default 2s.
	TransitWait time.Duration
	// Origin is the origin header of published messages. Default
	// "conveyor@<hostname>".
	Origin string
	// Clock tells the time of leases, eta and expires. Default the system clock.
	Clock backends.Clock
	// VisibilityTimeout is kombu's visibility_timeout on Redis: a message
	// taken from a queue and neither acked nor given back for this long
	// (its consumer crashed) is put back on its queue by any Go process
	// consuming, as Celery's own workers do. Keep it above the longest
	// job and the furthest eta, or such jobs run twice (Celery's own
	// caveat). Default 1h, kombu's.
	VisibilityTimeout time.Duration
	// Logger receives what the broker does on its own (restores of
	// unacked messages, their failures). Default slog.Default().
	Logger *slog.Logger
}

// ErrConfig is returned by New for a Config it cannot use.
var ErrConfig = errors.New("celery: invalid config")

func (c Config) withDefaults() (Config, error) {
	switch {
	case c.AMQPURL == "" && c.Redis == nil:
		return c, fmt.Errorf("%w: set AMQPURL or Redis", ErrConfig)
	case c.AMQPURL != "" && c.Redis != nil:
		return c, fmt.Errorf("%w: set one of AMQPURL and Redis, not both", ErrConfig)
	case c.RPCResults && c.AMQPURL == "":
		return c, fmt.Errorf("%w: RPCResults needs a RabbitMQ broker", ErrConfig)
	}
	if c.Results == nil && c.Redis != nil {
		c.Results = c.Redis
	}
	if c.ResultExpires <= 0 {
		c.ResultExpires = 24 * time.Hour
	}
	if c.Prefetch <= 0 {
		c.Prefetch = 64
	}
	if c.DeadQueue == nil {
		c.DeadQueue = func(q string) string { return q + ".dead" }
	}
	if c.TransitWait <= 0 {
		c.TransitWait = 2 * time.Second
	}
	if c.Origin == "" {
		host, _ := os.Hostname()
		c.Origin = "conveyor@" + host
	}
	if c.Clock == nil {
		c.Clock = backends.SystemClock{}
	}
	if c.VisibilityTimeout <= 0 {
		c.VisibilityTimeout = time.Hour
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}
