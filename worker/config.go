package worker

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"time"

	"github.com/conveyorhq/conveyor/flow"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/retry"
)

// Config configures a Worker. Zero values mean the stated default.
type Config struct {
	// ID names this worker in leases and logs. Default host-pid-random.
	ID string
	// Queues to work, in priority order. Default: the one queue "default".
	Queues []QueueConfig
	// StrictPriority drains earlier queues before looking at later ones.
	// Default false: each fetch round visits queues in a random order
	// weighted by QueueConfig.Weight, so no queue starves.
	StrictPriority bool
	// Concurrency is the most jobs running at once. Default 10.
	Concurrency int
	// FetchLimit is the most jobs reserved in one backend call; a worker
	// never reserves more than it has free slots. Default 200: on a
	// database a reserve costs a statement plus a little per job, so
	// bigger batches let a busy worker spend its time on jobs.
	FetchLimit int
	// LeaseDuration is how long a reservation lasts without a heartbeat; a
	// crashed worker's jobs come back after it. Heartbeats run every third
	// of it. Default 30s.
	LeaseDuration time.Duration
	// JobTimeout bounds one attempt of tasks that set no timeout. Default 30m.
	JobTimeout time.Duration
	// PollInterval is how often an idle worker looks for due jobs. Backends
	// with notifications wake it sooner. A queue whose reserve found
	// nothing (or, from a backends.ExhaustiveReserver, fewer jobs than it
	// asked for) is skipped until a notification names it, a job this worker
	// postponed there comes due, or PollInterval has passed, so a worker
	// of many queues does not reserve each empty one every round. Default 1s.
	PollInterval time.Duration
	// RetryPolicies are policies jobs can name with
	// queue.EnqueueOptions.RetryPolicy. Default none.
	RetryPolicies map[string]retry.Policy
	// Breakers configure circuit breakers by the name tasks give in
	// queue.TaskOptions.Breaker. Breakers not listed get BreakerConfig's
	// defaults.
	Breakers map[string]BreakerConfig
	// Middleware wraps every handler, the first outermost. Default none.
	Middleware []Middleware
	// Observer hears every job the worker starts and what became of it,
	// for metrics (see package metrics). Default nil.
	Observer Observer
	// Logger receives the worker's own logs. Default slog.Default().
	Logger *slog.Logger
	// QuietFailedAttempts turns off the warning the worker logs for every
	// failed attempt (task, job ID, attempt number, error and what comes
	// next), for an app that reports failures its own way (OnError). A job
	// dead-lettered is still logged, at Info. Default false: logged.
	QuietFailedAttempts bool
	// UnknownTaskDelay is how long a job whose task has no handler on this
	// worker waits before it is offered again, to a worker that may have
	// one (in a rolling deploy, an old worker meets a new task). Each
	// release adds up to half of it again at random, so that several
	// workers' releases spread out. The release uses no attempt and no
	// delivery. Default 5s.
	UnknownTaskDelay time.Duration
	// UnknownTaskWindow is how long a job may wait for a worker that knows
	// its task before a worker without one dead-letters it with that
	// reason. It runs from the job's CreatedAt, or from its last failed
	// attempt when that is later (a worker that had the handler ran it
	// then, or it was dead-lettered and replayed). Where the backend lists
	// live workers (a backends.KVStore), a job whose task a live worker on
	// its queue announces is never dead-lettered for this. Default 24h.
	UnknownTaskWindow time.Duration
	// ProgressEvery is the most often a job's progress and log lines are
	// written to the backend (worker.Progress, worker.Logger): the first
	// at once, then at most one write per job per interval, and the
	// latest always at the end of the run. Default 1s.
	ProgressEvery time.Duration
	// JobLogLines and JobLogBytes bound the log lines kept with each job
	// (worker.Logger): the newest lines within both bounds are kept, older
	// ones dropped and counted (job.Notes.LogsDropped). The worker buffers
	// at most as much per running job. Defaults 1000 lines, 256 KiB.
	JobLogLines int
	JobLogBytes int
	// CancelGrace is how long a handler may run on after its context ended
	// (timeout, cancel request, lost lease, shutdown) before the worker
	// abandons it: it logs that, records the outcome the cancellation
	// calls for, frees the slot and stops extending the lease; the
	// goroutine is left to return, and what it returns is discarded
	// (outcome Abandoned, job.Notes.IgnoredCancel). Default 5s; negative:
	// never abandon.
	CancelGrace time.Duration
}

// QueueConfig is one queue a worker takes jobs from.
type QueueConfig struct {
	Name string
	// Concurrency caps the jobs running from this queue. Default 0: only
	// the worker's overall Concurrency.
	Concurrency int
	// Weight is the queue's share of fetch rounds in weighted mode. Default 1.
	Weight int
	// RateLimit lets at most so many of the queue's jobs start per
	// interval across every worker on the backend (flow.RateLimit; its
	// Name defaults to "queue:<name>"), on top of the tasks' own limits.
	// Reconfigure changes it at run time. Default nil: no limit.
	RateLimit *flow.RateLimit
	// Fair serves the queue's tenants round-robin: its jobs are grouped by
	// queue.EnqueueOptions.Key and each fetch takes one job of each group
	// in turn (backends.FairReserver), so a tenant that enqueued 100,000
	// jobs does not delay one that enqueued 10. On a backend without the
	// capability, Start and Reconfigure fail with job.ErrUnsupported. A
	// task's concurrency limit per job key is held inside the fair reserve
	// as inside a plain one (backends.SlotReserver's Fair), counted with
	// the plain queues' jobs of the limit.
	// Default false: the queue's order, whoever enqueued first.
	Fair bool
	// FairWeights gives groups of a Fair queue more than one job a turn:
	// a tenant of weight 3 starts three jobs for every one of a tenant of
	// weight 1 (backends.ReserveParams.Weights). Reconfigure changes them
	// at run time. Default nil: every group weight 1.
	FairWeights map[string]int
}

func (c Config) withDefaults() Config {
	if c.ID == "" {
		host, _ := os.Hostname()
		c.ID = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), randomSuffix())
	}
	if len(c.Queues) == 0 {
		c.Queues = []QueueConfig{{Name: queue.DefaultQueue}}
	}
	qs := make([]QueueConfig, len(c.Queues))
	for i, q := range c.Queues {
		q.Weight = max(q.Weight, 1)
		q.FairWeights = maps.Clone(q.FairWeights) // read by fetches while the caller may change its map
		qs[i] = q
	}
	c.Queues = qs
	if c.Concurrency <= 0 {
		c.Concurrency = 10
	}
	if c.FetchLimit <= 0 {
		c.FetchLimit = 200
	}
	if c.LeaseDuration <= 0 {
		c.LeaseDuration = 30 * time.Second
	}
	if c.JobTimeout <= 0 {
		c.JobTimeout = 30 * time.Minute
	}
	if c.PollInterval <= 0 {
		c.PollInterval = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.UnknownTaskDelay <= 0 {
		c.UnknownTaskDelay = 5 * time.Second
	}
	if c.UnknownTaskWindow <= 0 {
		c.UnknownTaskWindow = 24 * time.Hour
	}
	if c.ProgressEvery <= 0 {
		c.ProgressEvery = time.Second
	}
	if c.JobLogLines <= 0 {
		c.JobLogLines = 1000
	}
	if c.JobLogBytes <= 0 {
		c.JobLogBytes = 256 << 10
	}
	if c.CancelGrace == 0 {
		c.CancelGrace = shutdownGrace
	}
	return c
}

func randomSuffix() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
