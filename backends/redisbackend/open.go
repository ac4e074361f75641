package redisbackend

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/internal/gate"
	"github.com/conveyorhq/conveyor/backends/internal/knobs"
	"github.com/conveyorhq/conveyor/backends/internal/record"
	"github.com/conveyorhq/conveyor/job"
)

// Config configures a Backend. Zero values mean the stated default.
type Config struct {
	// Client talks to Redis: a *redis.Client, a *redis.ClusterClient or any
	// redis.UniversalClient. Required. The caller owns it: Close does not
	// close it.
	Client redis.UniversalClient
	// Prefix starts every key and channel name, so several apps can share
	// one Redis. Default "conveyor".
	Prefix string
	// KeepDone is how long done and cancelled jobs (and their results) are
	// kept. Default 24h; negative keeps them forever.
	KeepDone time.Duration
	// KeepDead is how long dead letters are kept. Default 7 days; negative
	// keeps them forever.
	KeepDead time.Duration
	// JanitorEvery is how often some client (one at a time, cluster-wide)
	// recovers expired leases, promotes due jobs and prunes finished ones in
	// every queue, and reconciles a bounded part of each queue's state sets
	// with the job hashes. Reserve does the first two for its own queue
	// anyway; the janitor keeps the counts of queues nobody is reserving
	// from true.
	// Default 1s; negative turns it off in this process.
	JanitorEvery time.Duration
	// Logger receives reports of malformed entries found in Redis and
	// janitor failures. Default slog.Default().
	Logger *slog.Logger
	// Clock tells the time: when a job is due, when a lease expires, the
	// times records carry. Default backends.SystemClock{}.
	Clock backends.Clock
	// WaitReplicas, when above 0, makes every write (each state change is
	// one script) wait until that many replicas of its node have it, with
	// WAIT, before it is answered: a failover that promotes one of them
	// then loses nothing acknowledged. A write fewer replicas took within
	// WaitTimeout fails with an error wrapping ErrNotReplicated and
	// job.ErrOutcomeUnknown (the master has it). New adds a hook to
	// Client (to each node's client of a cluster client) to do this.
	// Default 0: Redis's asynchronous replication, whose loss window in a
	// failover is what the replica had not yet received (docs/scaling.md).
	WaitReplicas int
	// WaitTimeout bounds each WAIT. Default 1s.
	WaitTimeout time.Duration
}

// Backend stores jobs in Redis. Every state change is one Lua script on the
// keys of one queue.
type Backend struct {
	cfg     Config
	rdb     redis.UniversalClient
	cluster bool
	s       *scripts

	ownsClient bool     // opened by Open: Close closes it
	known      sync.Map // queue names this process registered in <prefix>:queues
	gate       *gate.Gate
	bg         sync.WaitGroup
}

var (
	_ backends.Backend            = (*Backend)(nil)
	_ backends.Inspector          = (*Backend)(nil)
	_ backends.Admin              = (*Backend)(nil)
	_ backends.Pauser             = (*Backend)(nil)
	_ backends.Notifier           = (*Backend)(nil)
	_ backends.BatchCompleter     = (*Backend)(nil)
	_ backends.ExhaustiveReserver = (*Backend)(nil)
)

// New checks that Redis answers, loads the scripts and starts the janitor.
func New(ctx context.Context, cfg Config) (*Backend, error) {
	if cfg.Client == nil {
		return nil, errors.New("redisbackend: Config.Client is required")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "conveyor"
	}
	knobs.Knobs{KeepDone: &cfg.KeepDone, KeepDead: &cfg.KeepDead, JanitorEvery: &cfg.JanitorEvery,
		Logger: &cfg.Logger, Clock: &cfg.Clock}.Fill(time.Second)
	if cfg.WaitReplicas < 0 || cfg.WaitTimeout < 0 {
		return nil, fmt.Errorf("redisbackend: %w: WaitReplicas and WaitTimeout must not be negative", job.ErrInvalid)
	}
	if cfg.WaitReplicas > 0 {
		cfg.WaitTimeout = cmp.Or(cfg.WaitTimeout, time.Second)
		if err := installReplicaHook(ctx, cfg.Client, cfg.WaitReplicas, cfg.WaitTimeout); err != nil {
			return nil, err
		}
	}
	_, cluster := cfg.Client.(*redis.ClusterClient)
	b := &Backend{cfg: cfg, rdb: cfg.Client, cluster: cluster, s: loadScripts(), gate: gate.New("redisbackend")}
	for _, s := range b.s.all() {
		if err := s.Load(ctx, b.rdb).Err(); err != nil {
			return nil, fmt.Errorf("redisbackend: loading scripts: %w", err)
		}
	}
	if cfg.JanitorEvery > 0 {
		b.bg.Add(1)
		go b.janitorLoop()
	}
	return b, nil
}

// Open connects to the Redis at url (redis://host:port/db, or several
// comma-separated host:port addresses of a cluster after redis+cluster://)
// and returns a backend that closes the connection on Close.
func Open(ctx context.Context, url string, cfg Config) (*Backend, error) {
	var client redis.UniversalClient
	if rest, ok := strings.CutPrefix(url, "redis+cluster://"); ok {
		client = redis.NewClusterClient(&redis.ClusterOptions{Addrs: strings.Split(rest, ",")})
	} else {
		opt, err := redis.ParseURL(url)
		if err != nil {
			return nil, fmt.Errorf("redisbackend: %w", err)
		}
		client = redis.NewClient(opt)
	}
	cfg.Client = client
	b, err := New(ctx, cfg)
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	b.ownsClient = true
	return b, nil
}

// Close stops the janitor. Jobs are not affected.
func (b *Backend) Close() error {
	first := b.gate.Close()
	b.bg.Wait()
	if first && b.ownsClient {
		return b.rdb.Close()
	}
	return nil
}

// base is the key every key of queue q starts with; the braces make the
// queue name the hash tag, so one queue's keys share a cluster slot.
func (b *Backend) base(queue string) string { return b.cfg.Prefix + ":{" + queue + "}" }

func (b *Backend) queuesKey() string { return b.cfg.Prefix + ":queues" }

// register records queue names in the queue registry, once per process.
func (b *Backend) register(ctx context.Context, queues ...string) error {
	var add []any
	for _, q := range queues {
		if _, ok := b.known.Load(q); !ok {
			add = append(add, q)
		}
	}
	if len(add) == 0 {
		return nil
	}
	if err := b.rdb.SAdd(ctx, b.queuesKey(), add...).Err(); err != nil {
		return fmt.Errorf("redisbackend: registering queues: %w", err)
	}
	for _, q := range add {
		b.known.Store(q, true)
	}
	return nil
}

// queues lists every registered queue.
func (b *Backend) queues(ctx context.Context) ([]string, error) {
	qs, err := b.rdb.SMembers(ctx, b.queuesKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("redisbackend: listing queues: %w", err)
	}
	return qs, nil
}

// newTokenPrefix returns the start of the lease tokens of one Reserve call:
// the queue, so a lease finds its queue's keys, then a random part; the
// script appends a counter.
func newTokenPrefix(queue string) string { return queue + "/" + record.Token(8) + "." }

// queueOf returns the queue a lease token names.
func queueOf(token string) (string, bool) {
	i := strings.LastIndexByte(token, '/')
	if i < 0 {
		return "", false
	}
	return token[:i], true
}
