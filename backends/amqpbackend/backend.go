package amqpbackend

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/internal/gate"
	"github.com/conveyorhq/conveyor/backends/internal/notify"
	"github.com/conveyorhq/conveyor/job"
)

// Backend runs jobs through an AMQP broker, optionally paired with a
// job-state store. Open returns a *Backend without a store and a
// *StoredBackend, which adds inspection, with one.
type Backend struct {
	cfg   Config
	names names
	st    *store // nil without Config.Store

	ctx     context.Context // ends at Close
	cancel  context.CancelFunc
	closing <-chan struct{}
	bg      sync.WaitGroup
	gate    *gate.Gate

	mu  sync.Mutex
	cur *session      // nil while reconnecting
	up  chan struct{} // closed when cur is set again

	topoMu   sync.Mutex
	declared map[string]func(*amqp.Channel) error // queues declared, by name, to declare again after a reconnect

	consMu    sync.Mutex
	consumers map[string]*consumer

	probeMu sync.Mutex
	probe   *amqp.Connection // awaitReady's, dialled on first use

	leaseMu sync.Mutex
	leases  map[string]*lease // by lease token

	transit   transit
	recording recording
	pauses    pauses
	bounded   sync.Map // queue name -> *sync.Mutex serializing its publishes without a store
	hub       notify.Hub
}

// StoredBackend is a Backend paired with a job-state store. It adds
// backends.Inspector and passes the store's KVStore through.
type StoredBackend struct {
	*Backend
	backends.KVStore
}

// GetKV implements backends.KVStore on the store, once past the gate.
func (b *StoredBackend) GetKV(ctx context.Context, p backends.GetKVParams) (backends.KV, error) {
	if err := b.gate.Check(ctx); err != nil {
		return backends.KV{}, err
	}
	return b.KVStore.GetKV(ctx, p)
}

// PutKV implements backends.KVStore on the store, once past the gate.
func (b *StoredBackend) PutKV(ctx context.Context, p backends.PutKVParams) (int64, error) {
	if err := b.gate.Check(ctx); err != nil {
		return 0, err
	}
	return b.KVStore.PutKV(ctx, p)
}

// DeleteKV implements backends.KVStore on the store, once past the gate.
func (b *StoredBackend) DeleteKV(ctx context.Context, p backends.DeleteKVParams) error {
	if err := b.gate.Check(ctx); err != nil {
		return err
	}
	return b.KVStore.DeleteKV(ctx, p)
}

// ListKV implements backends.KVStore on the store, once past the gate.
func (b *StoredBackend) ListKV(ctx context.Context, p backends.ListKVParams) ([]backends.KV, error) {
	if err := b.gate.Check(ctx); err != nil {
		return nil, err
	}
	return b.KVStore.ListKV(ctx, p)
}

// GetKVMany implements backends.KVBatcher on the store, in one round
// trip when the store is a KVBatcher, else one GetKV per key, up to
// kvAtOnce at a time.
func (b *StoredBackend) GetKVMany(ctx context.Context, p backends.GetKVManyParams) ([]backends.KV, error) {
	if err := b.gate.Check(ctx); err != nil {
		return nil, err
	}
	if kb, ok := b.KVStore.(backends.KVBatcher); ok {
		return kb.GetKVMany(ctx, p)
	}
	out := make([]backends.KV, len(p.Keys))
	err := eachKV(len(p.Keys), func(i int) error {
		kv, err := b.KVStore.GetKV(ctx, backends.GetKVParams{Key: p.Keys[i], Now: p.Now})
		if errors.Is(err, job.ErrNotFound) {
			kv, err = backends.KV{Key: p.Keys[i]}, nil
		}
		out[i] = kv
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// PutKVMany implements backends.KVBatcher on the store, as GetKVMany
// does.
func (b *StoredBackend) PutKVMany(ctx context.Context, p backends.PutKVManyParams) ([]int64, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if err := b.gate.Check(ctx); err != nil {
		return nil, err
	}
	if kb, ok := b.KVStore.(backends.KVBatcher); ok {
		return kb.PutKVMany(ctx, p)
	}
	out := make([]int64, len(p.Puts))
	err := eachKV(len(p.Puts), func(i int) error {
		v, err := b.KVStore.PutKV(ctx, p.Puts[i])
		if errors.Is(err, job.ErrConflict) {
			return nil
		}
		out[i] = v
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// kvAtOnce bounds the calls a batch makes at once on a store that cannot
// batch.
const kvAtOnce = 16

// eachKV runs fn for 0..n-1, kvAtOnce at a time, and returns the first
// error.
func eachKV(n int, fn func(i int) error) error {
	errs := make([]error, n)
	sem := make(chan struct{}, kvAtOnce)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = fn(i)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

var (
	_ backends.Backend   = (*Backend)(nil)
	_ backends.Notifier  = (*Backend)(nil)
	_ backends.Inspector = (*StoredBackend)(nil)
	_ backends.KVStore   = (*StoredBackend)(nil)
	_ backends.KVBatcher = (*StoredBackend)(nil)
)

// OpenStored connects to the broker (giving up when ctx ends) and pairs it
// with cfg.Store, which it requires: the pair adds lookups by ID
// (backends.Inspector) and the store's KVStore to what the broker keeps.
func OpenStored(ctx context.Context, cfg Config) (*StoredBackend, error) {
	if cfg.Store == nil {
		return nil, errors.New("amqpbackend: OpenStored needs Config.Store (Open opens the broker alone)")
	}
	b, err := Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &StoredBackend{Backend: b, KVStore: cfg.Store}, nil
}

// Open connects to the broker cfg.URL names (giving up when ctx ends) and
// owns the connection until Close: Open, as sqlitebackend.Open owns its
// file, since no caller hands the backend a connection. Without cfg.Store
// it is the stateless backend (backendtest.Suite.RunStateless); with one,
// the store keeps job state, and OpenStored returns the pair that
// exposes it.
func Open(ctx context.Context, cfg Config) (*Backend, error) {
	if cfg.URL == "" {
		return nil, errors.New("amqpbackend: Config.URL is required")
	}
	cfg.defaults()
	b := &Backend{
		cfg: cfg, names: names(cfg.Prefix),
		declared:  map[string]func(*amqp.Channel) error{},
		consumers: map[string]*consumer{}, leases: map[string]*lease{},
		up: make(chan struct{}),
	}
	if cfg.Store != nil {
		b.st = &store{kv: cfg.Store, prefix: cfg.Prefix + "/amqp", keepDone: cfg.KeepDone, keepDead: cfg.KeepDead, cnt: &counts{}}
	}
	b.gate = gate.New("amqpbackend")
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.closing = b.ctx.Done()
	s, err := b.dial(ctx, 1)
	if err != nil {
		b.cancel()
		return nil, err
	}
	if b.st != nil {
		if err := b.countFirst(ctx); err != nil {
			b.cancel()
			_ = s.conn.Close()
			return nil, fmt.Errorf("amqpbackend: count the store's jobs: %w", err)
		}
		b.bg.Add(1)
		go b.keepCounts()
	}
	b.cur = s
	close(b.up)
	b.bg.Add(3)
	go b.keep(s)
	go b.reapLeases()
	go b.sweepDelays()
	return b, nil
}

// Close returns every delivery this Backend holds to the broker (by
// closing the connection) and stops its goroutines. Jobs are not affected.
func (b *Backend) Close() error {
	if b.gate.Close() {
		b.cancel()
		b.bg.Wait()
		b.closeProbe()
	}
	return nil
}

// closed is the gate's check for the loops, which have no caller's context.
func (b *Backend) closed() error { return b.gate.Check(context.Background()) }

// Listen implements backends.Notifier with this process's events: jobs
// that arrived from the broker or were enqueued here, and jobs finished
// here. Other processes' finishes are not seen; waiters poll for those.
func (b *Backend) Listen(ctx context.Context, p backends.ListenParams) (<-chan backends.Event, error) {
	if err := b.gate.Check(ctx); err != nil {
		return nil, err
	}
	return b.hub.Listen(ctx, p)
}

// Enqueue implements backends.Backend. Each job is published with a
// publisher confirm; Enqueue returns once the broker has every one.
// Without a store a batch is not atomic: a queue that fills part-way
// keeps the jobs published before (the error wraps job.ErrQueueFull).
func (b *Backend) Enqueue(ctx context.Context, p backends.EnqueueParams) ([]backends.EnqueueResult, error) {
	if res, err := b.gate.Enqueue(ctx, p); res != nil || err != nil {
		return res, err
	}
	for _, ins := range p.Jobs {
		if len(ins.Payload) > b.cfg.MaxMessageBytes {
			return nil, fmt.Errorf("%w: job %s has %d bytes, more than the broker's %d", job.ErrPayloadTooLarge, ins.ID, len(ins.Payload), b.cfg.MaxMessageBytes)
		}
	}
	need := p.DepthNeeded()
	for q, c := range need {
		if err := b.ensureQueue(ctx, q, c.MaxDepth); err != nil {
			return nil, err
		}
	}
	if b.st != nil {
		return b.enqueueStored(ctx, p, need)
	}
	now := b.cfg.Clock.Now()
	res := make([]backends.EnqueueResult, len(p.Jobs))
	msgs := make([]outgoing, len(p.Jobs))
	for i, ins := range p.Jobs {
		if ins.UniqueKey != "" {
			return nil, fmt.Errorf("%w: unique keys need a job-state store (amqpbackend Config.Store)", job.ErrUnsupported)
		}
		d := newDoc(ins, now)
		m, err := b.route(ctx, d, now)
		if err != nil {
			return nil, err
		}
		msgs[i], res[i] = m, backends.EnqueueResult{ID: d.ID, State: d.State}
	}
	// A quorum queue learns it is full asynchronously and admits publishes
	// racing in meanwhile; one publish at a time per bounded queue in this
	// process keeps that to the one the broker documents.
	for _, q := range slices.Sorted(maps.Keys(need)) { // in one order: no deadlock
		if need[q].MaxDepth > 0 {
			mu, _ := b.bounded.LoadOrStore(q, new(sync.Mutex))
			mu.(*sync.Mutex).Lock()
			defer mu.(*sync.Mutex).Unlock()
			if err := b.admit(ctx, q, need[q].MaxDepth, msgs); err != nil {
				return nil, err
			}
		}
	}
	acked, err := b.publish(ctx, msgs...)
	if err != nil {
		return nil, err
	}
	for i, ok := range acked {
		if !ok {
			q := p.Jobs[i].Queue
			return nil, fmt.Errorf("%w: the broker refused job %d of %d: queue %q is at its bound of %d ready messages",
				job.ErrQueueFull, i+1, len(acked), q, need[q].MaxDepth)
		}
	}
	b.announce(p.Jobs)
	return res, nil
}

// admit refuses, with job.ErrQueueFull and before anything is published,
// the messages of msgs for bounded queue q unless they fit under bound
// with those the queue has: the broker's ready count, which is all its
// x-max-length counts, and the deliveries this process holds
// unacknowledged, which the broker requeues past that bound when they
// come back (a consumer killed, a connection lost). Deliveries other
// processes hold are not visible over AMQP (see the package doc).
func (b *Backend) admit(ctx context.Context, q string, bound int, msgs []outgoing) error {
	adding := 0
	for _, m := range msgs {
		if m.work && m.doc.Queue == q {
			adding++
		}
	}
	if adding == 0 {
		return nil
	}
	s, err := b.session(ctx)
	if err != nil {
		return err
	}
	var ready int
	err = onChannel(s.conn, func(ch *amqp.Channel) error {
		st, err := ch.QueueDeclarePassive(b.names.work(q), true, false, false, false, nil)
		ready = st.Messages
		return err
	})
	if err != nil {
		return fmt.Errorf("amqpbackend: depth of %s: %w", q, err)
	}
	held := b.inFlight(q)
	if ready+held+adding > bound {
		return fmt.Errorf("%w: queue %q holds %d ready and %d running or prefetched here, %d more would pass its bound of %d",
			job.ErrQueueFull, q, ready, held, adding, bound)
	}
	return nil
}

// announce tells this process's listeners that jobs were enqueued.
func (b *Backend) announce(jobs []*backends.JobInsert) {
	seen := map[string]bool{}
	for _, ins := range jobs {
		if !seen[ins.Queue] {
			seen[ins.Queue] = true
			b.hub.Publish(backends.Event{Kind: backends.JobsAvailable, Queue: ins.Queue})
		}
	}
}

// enqueueStored publishes the batch (deduplicated against the store,
// within the exact depth bound), then records what the broker took. In
// this order a process that dies in between leaves a message without a
// record, which its consumer restores from the message (claim), not a
// record without a message, which nothing would ever run; a consumer that
// takes the message before the record is written waits for it (this
// process's: recording; another's: polled, up to Config.RecordWait).
func (b *Backend) enqueueStored(ctx context.Context, p backends.EnqueueParams, need map[string]backends.DepthCheck) ([]backends.EnqueueResult, error) {
	now := b.cfg.Clock.Now()
	res := make([]backends.EnqueueResult, len(p.Jobs))
	var fresh []*doc
	var undo []func()
	rollback := func() {
		for _, u := range undo {
			u()
		}
	}
	batch := map[string]*doc{} // this batch's new jobs by ID: the same ID again is a duplicate
	for i, ins := range p.Jobs {
		if d := batch[ins.ID]; d != nil {
			res[i] = backends.EnqueueResult{ID: d.ID, State: d.State, Duplicate: true}
			continue
		}
		if d, _, err := b.st.get(ctx, ins.ID); err == nil {
			res[i] = backends.EnqueueResult{ID: d.ID, State: d.State, Duplicate: true}
			continue
		} else if !errors.Is(err, job.ErrNotFound) {
			rollback()
			return nil, err
		}
		d := newDoc(ins, now)
		if d.UniqueKey != "" {
			holder, err := b.st.claimUnique(ctx, d, fresh, b.cfg.RecordWait)
			if err != nil {
				rollback()
				return nil, err
			}
			if holder != "" {
				res[i] = backends.EnqueueResult{ID: holder, State: b.stateOf(ctx, holder, fresh), Duplicate: true}
				continue
			}
			undo = append(undo, func() { _ = b.st.unclaim(context.WithoutCancel(ctx), d) })
		}
		res[i] = backends.EnqueueResult{ID: d.ID, State: d.State}
		fresh = append(fresh, d)
		batch[d.ID] = d
	}
	adding := map[string]int{}
	for _, d := range fresh {
		if d.Bounded {
			adding[d.Queue]++
		}
	}
	for q, n := range adding {
		if err := b.st.addDepth(ctx, q, n, need[q].MaxDepth); err != nil {
			rollback()
			return nil, err
		}
		undo = append(undo, func() { _ = b.st.addDepth(context.WithoutCancel(ctx), q, -n, 0) })
	}
	msgs := make([]outgoing, len(fresh))
	for i, d := range fresh {
		m, err := b.route(ctx, d, now)
		if err != nil {
			rollback()
			return nil, err
		}
		msgs[i] = m
	}
	ids := make([]string, len(fresh))
	for i, d := range fresh {
		ids[i] = d.ID
	}
	b.recording.start(ids)
	defer b.recording.finish(ids)
	acked, err := b.publish(ctx, msgs...)
	if err != nil {
		// A message that arrived all the same is restored by its consumer.
		rollback()
		return nil, err
	}
	var refused []string
	for i, ok := range acked {
		d := fresh[i]
		if !ok {
			// The broker's own bound refused it (its x-max-length counts
			// ready messages, the store unfinished jobs): give back what
			// it held. Those it took stay.
			refused = append(refused, d.ID)
			_ = b.st.unclaim(context.WithoutCancel(ctx), d)
			if d.Bounded {
				_ = b.st.addDepth(context.WithoutCancel(ctx), d.Queue, -1, 0)
			}
			continue
		}
		// A conflict: the message's consumer found no record and restored
		// it meanwhile (after Config.RecordWait), or a concurrent enqueue
		// of the same ID recorded it; either way it is recorded.
		if err := b.st.put(context.WithoutCancel(ctx), d, 0); err != nil && !errors.Is(err, job.ErrConflict) {
			return nil, fmt.Errorf("amqpbackend: job %s published but not recorded (its consumer restores it from the message): %w: %w",
				d.ID, job.ErrOutcomeUnknown, err)
		}
	}
	if len(refused) > 0 {
		return nil, fmt.Errorf("%w: the broker refused jobs %v: their queue holds its bound of ready messages", job.ErrQueueFull, refused)
	}
	b.announce(p.Jobs)
	return res, nil
}

// stateOf returns the state of the job id, looking first among the jobs of
// this batch not yet stored.
func (b *Backend) stateOf(ctx context.Context, id string, batch []*doc) job.State {
	for _, d := range batch {
		if d.ID == id {
			return d.State
		}
	}
	if d, _, err := b.st.get(ctx, id); err == nil {
		return d.State
	}
	return ""
}
