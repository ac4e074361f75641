package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	retrygo "github.com/avast/retry-go/v4"
	"github.com/google/uuid"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

// Client enqueues and inspects jobs on one backend. It is safe for
// concurrent use; make one per process and share it.
type Client struct {
	b      backends.Backend
	cfg    Config
	queues *queueBook
}

// NewClient returns a client on backend b.
func NewClient(b backends.Backend, cfg Config) *Client {
	if cfg.MaxPayloadBytes == 0 {
		cfg.MaxPayloadBytes = defaultMaxPayloadBytes
	}
	return &Client{b: b, cfg: cfg, queues: newQueueBook(b, cfg.Queues)}
}

// Backend returns the client's backend, for its optional capabilities.
func (c *Client) Backend() backends.Backend { return c.b }

// Request is one job ready to enqueue, built by Task.Request.
type Request struct {
	ins *backends.JobInsert
	err error
	deb *backends.DebounceParams // EnqueueOptions.Debounce, its Job filled at enqueue
}

// Err is the error building the request met (arguments that did not
// encode or decode, a bad ID), which EnqueueMany would return; nil for a
// request ready to enqueue. An HTTP or RPC front end checks it to say
// which item of a batch is wrong.
func (r Request) Err() error { return r.err }

// JobRef identifies an enqueued job.
type JobRef struct {
	ID string
	// Duplicate is set when a job holding the same unique key (or ID)
	// already existed: ID is that job and nothing was inserted. For a
	// debounced enqueue, the key's waiting job took its arguments.
	Duplicate bool
}

// EnqueueMany enqueues a batch in one backend call where the backend allows.
// The batch is all or nothing: any bad request (an argument that did not
// encode, an oversized payload) or a full queue fails it whole. Refs are in
// the order of reqs. An error that leaves open whether the batch was
// stored (the backend went away mid-call) wraps ErrOutcomeUnknown and is an
// *OutcomeUnknownError naming the jobs' IDs.
func (c *Client) EnqueueMany(ctx context.Context, reqs ...Request) ([]JobRef, error) {
	p, err := c.params(ctx, reqs)
	if err != nil {
		return nil, err
	}
	deb, err := debounceOf(reqs, p)
	if err != nil {
		return nil, err
	}
	own := make([]bool, len(reqs)) // IDs this client made up, not the caller's
	for i, r := range reqs {
		own[i] = r.ins.ID == ""
	}
	end := c.trace(ctx, p)
	out, err := c.enqueue(ctx, p, own, deb)
	end(err)
	if err == nil && c.cfg.Inline != nil {
		if _, ierr := c.cfg.Inline.WorkDue(ctx); ierr != nil {
			return out, fmt.Errorf("enqueued, but running inline failed: %w", ierr)
		}
	}
	return out, err
}

// EnqueueTx enqueues inside the caller's own database transaction: the jobs
// exist if and only if tx commits. tx is a *sql.Tx, or a pgx.Tx on the
// PostgreSQL backend; the backend must store jobs in that database
// (backends.TxEnqueuer), otherwise the error wraps ErrUnsupported.
func (c *Client) EnqueueTx(ctx context.Context, tx any, reqs ...Request) ([]JobRef, error) {
	txb, ok := c.b.(backends.TxEnqueuer)
	if !ok {
		return nil, fmt.Errorf("%w: transactional enqueue on %T", job.ErrUnsupported, c.b)
	}
	p, err := c.params(ctx, reqs)
	if err != nil {
		return nil, err
	}
	if deb, _ := debounceOf(reqs, p); deb != nil {
		return nil, fmt.Errorf("%w: a debounced enqueue inside a transaction", job.ErrUnsupported)
	}
	// No retry or blocking here: the transaction is the caller's to retry.
	end := c.trace(ctx, p)
	res, err := txb.EnqueueTx(ctx, tx, p)
	end(err)
	c.observe(p, res, err) // counted when enqueued, though the caller may roll back
	if err != nil {
		return nil, fmt.Errorf("enqueue: %w", err)
	}
	return refs(res), nil
}

// trace starts the Tracer's span for an enqueue, if there is a Tracer.
func (c *Client) trace(ctx context.Context, p backends.EnqueueParams) (end func(error)) {
	if c.cfg.Tracer == nil {
		return func(error) {}
	}
	return c.cfg.Tracer.StartEnqueue(ctx, p.Jobs)
}

func (c *Client) params(ctx context.Context, reqs []Request) (backends.EnqueueParams, error) {
	p := backends.EnqueueParams{Jobs: make([]*backends.JobInsert, len(reqs))}
	var bound int // MaxDepth of the queue of the job before
	for i, r := range reqs {
		if r.err != nil {
			return p, fmt.Errorf("request %d: %w", i, r.err)
		}
		if r.ins == nil {
			return p, fmt.Errorf("%w: request %d is empty; build it with Task.Request", job.ErrInvalid, i)
		}
		if c.cfg.MaxPayloadBytes > 0 && len(r.ins.Payload) > c.cfg.MaxPayloadBytes {
			return p, fmt.Errorf("request %d: %w: task %s payload is %d bytes, limit %d",
				i, job.ErrPayloadTooLarge, r.ins.Task, len(r.ins.Payload), c.cfg.MaxPayloadBytes)
		}
		ins := *r.ins // a Request may be enqueued twice; each gets its own ID
		if ins.ID == "" {
			ins.ID = newID()
		}
		if i == 0 || ins.Queue != p.Jobs[i-1].Queue { // a batch is mostly one queue
			bound = c.queues.options(ctx, ins.Queue).MaxDepth
		}
		ins.MaxDepth = bound
		p.Jobs[i] = &ins
	}
	return p, nil
}

// enqueue runs one insert with retries of transient backend errors (safe
// because a re-sent ID is a duplicate, not a second job) and, for queues set
// to Block, waits for room. A failure that is not a refusal may have been
// stored all the same, so it becomes an OutcomeUnknownError.
func (c *Client) enqueue(ctx context.Context, p backends.EnqueueParams, own []bool, deb *backends.DebounceParams) ([]JobRef, error) {
	for {
		var res []backends.EnqueueResult
		var unsure error // the first attempt's error that may have stored the jobs
		err := retrygo.Do(func() error {
			var err error
			res, err = c.insert(ctx, p, deb)
			if err != nil && unsure == nil && !refused(err) {
				unsure = err
			}
			return err
		},
			retrygo.Context(ctx),
			retrygo.Attempts(3),
			retrygo.Delay(20*time.Millisecond),
			retrygo.LastErrorOnly(true),
			retrygo.RetryIf(transient),
		)
		if err == nil {
			ourOwnDuplicates(p, res, own)
			c.observe(p, res, nil)
			return refs(res), nil
		}
		c.observe(p, nil, err)
		if unsure != nil {
			// A refusal after an attempt that may have stored the jobs is
			// no refusal: that attempt's jobs may exist where the retry
			// could not see them (a broker that took the messages before
			// the store's record). It names the unsure error, so
			// errors.Is(err, ErrQueueFull) does not read it as nothing
			// stored.
			if refused(err) {
				err = fmt.Errorf("%w (tried again: %v)", unsure, err)
			}
			return nil, fmt.Errorf("enqueue: %w", &OutcomeUnknownError{IDs: ids(p), Err: err})
		}
		if !errors.Is(err, job.ErrQueueFull) || !c.blocks(ctx, p) {
			return nil, fmt.Errorf("enqueue: %w", err)
		}
		if werr := c.waitForRoom(ctx, p); werr != nil {
			return nil, fmt.Errorf("enqueue: %w: %w", err, werr)
		}
	}
}

// ourOwnDuplicates clears Duplicate on the jobs whose fresh ID this client
// made up and got back: nobody else knows that ID, so the "duplicate" is the
// job an earlier attempt (ours, or the driver's own resend) stored without
// its reply reaching us.
func ourOwnDuplicates(p backends.EnqueueParams, res []backends.EnqueueResult, own []bool) {
	for i, ins := range p.Jobs {
		if own[i] && res[i].Duplicate && res[i].ID == ins.ID {
			res[i].Duplicate = false
		}
	}
}

func ids(p backends.EnqueueParams) []string {
	out := make([]string, len(p.Jobs))
	for i, ins := range p.Jobs {
		out[i] = ins.ID
	}
	return out
}

// observe tells the Observer, if any, what an enqueue did, per queue.
func (c *Client) observe(p backends.EnqueueParams, res []backends.EnqueueResult, err error) {
	o := c.cfg.Observer
	if o == nil || (err != nil && !errors.Is(err, job.ErrQueueFull)) {
		return
	}
	counts := map[string]int{}
	for i, ins := range p.Jobs {
		if err != nil || !res[i].Duplicate {
			counts[ins.Queue]++
		}
	}
	for q, n := range counts {
		if err != nil {
			o.Rejected(q, n)
		} else {
			o.Enqueued(q, n)
		}
	}
}

// refused reports whether an enqueue error is the backend's answer that it
// stored nothing: a full queue, a bad or unsupported request, a closed
// backend. Any other error may have come after the write.
func refused(err error) bool {
	for _, no := range []error{job.ErrQueueFull, job.ErrInvalid, job.ErrClosed, job.ErrUnsupported, job.ErrPayloadTooLarge} {
		if errors.Is(err, no) {
			return true
		}
	}
	return false
}

// transient reports whether an enqueue error may pass if tried again.
func transient(err error) bool {
	return !refused(err) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

func (c *Client) blocks(ctx context.Context, p backends.EnqueueParams) bool {
	for _, ins := range p.Jobs {
		if c.queues.options(ctx, ins.Queue).WhenFull == Block {
			return true
		}
	}
	return false
}

// waitForRoom returns when a job of the batch's queues finishes (announced
// by the backend's Notifier) or after a backoff, or with ctx's error.
func (c *Client) waitForRoom(ctx context.Context, p backends.EnqueueParams) error {
	var queues []string
	for _, ins := range p.Jobs {
		queues = append(queues, ins.Queue)
	}
	return c.await(ctx, queues, 200*time.Millisecond, func(backends.Event) bool { return true })
}

// await blocks until an event matches, poll passes, or ctx ends. Events are
// hints, so callers re-check their condition either way.
func (c *Client) await(ctx context.Context, queues []string, poll time.Duration, match func(backends.Event) bool) error {
	timer := time.NewTimer(poll)
	defer timer.Stop()
	var events <-chan backends.Event
	if n, ok := c.b.(backends.Notifier); ok {
		lctx, cancel := context.WithCancel(ctx)
		defer cancel()
		if ch, err := n.Listen(lctx, backends.ListenParams{Queues: queues}); err == nil {
			events = ch
		}
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			return nil
		case ev, ok := <-events:
			if !ok || ev.Kind == backends.Changed || (ev.Kind == backends.JobFinished && match(ev)) {
				return nil
			}
		}
	}
}

func refs(res []backends.EnqueueResult) []JobRef {
	out := make([]JobRef, len(res))
	for i, r := range res {
		out[i] = JobRef{ID: r.ID, Duplicate: r.Duplicate}
	}
	return out
}

// newID returns a time-ordered UUIDv7, so IDs sort roughly by enqueue time.
func newID() string {
	return uuid.Must(uuid.NewV7()).String()
}

// Job returns a job's record: state, attempts with their errors, result.
func (c *Client) Job(ctx context.Context, id string) (*job.Record, error) {
	in, ok := c.b.(backends.Inspector)
	if !ok {
		return nil, fmt.Errorf("%w: job status on %T", job.ErrUnsupported, c.b)
	}
	return in.GetJob(ctx, backends.GetJobParams{ID: id})
}

// Cancel cancels a waiting job, or asks a running one to stop (its handler's
// context is cancelled at the worker's next heartbeat). It returns the state
// after the call.
func (c *Client) Cancel(ctx context.Context, id string) (job.State, error) {
	return c.b.Cancel(ctx, backends.CancelParams{JobID: id})
}

// WaitFinished blocks until the job is done, dead or cancelled and returns
// its record, woken by the backend's notifications where it has them.
func (c *Client) WaitFinished(ctx context.Context, id string) (*job.Record, error) {
	poll := 10 * time.Millisecond
	for {
		r, err := c.Job(ctx, id)
		if err != nil {
			return nil, err
		}
		if r.State.Finished() {
			return r, nil
		}
		if err := c.await(ctx, []string{r.Queue}, poll, func(ev backends.Event) bool { return ev.JobID == id }); err != nil {
			return nil, err
		}
		poll = min(2*poll, time.Second)
	}
}
