package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

// Queue is a named queue and its backlog bound, defined once, like a task,
// and named by the tasks that use it (TaskOptions.Queue: q.Name()). A
// client given the queue (Config.Queues) stores its bound in the backend,
// so every process, the CLI and the dashboard enforce and show the same
// one, and an operator can change it without a deploy (Client.SetQueue).
type Queue struct {
	name string
	opts QueueOptions
}

// QueueOptions bound one queue's backlog.
type QueueOptions struct {
	// MaxDepth is the most unfinished jobs (pending, scheduled, running,
	// retrying) the queue may hold. Default 0: unbounded.
	MaxDepth int `json:"max_depth"`
	// WhenFull says what an enqueue past MaxDepth does. Default Reject.
	WhenFull FullPolicy `json:"when_full"`
}

// NewQueue defines a queue. It panics on an empty name, as NewTask does:
// queues are package-level definitions, wrong only by a programming error.
func NewQueue(name string, opts QueueOptions) *Queue {
	if name == "" {
		panic("queue: NewQueue needs a name")
	}
	return &Queue{name: name, opts: opts}
}

// Name returns the queue's name, for TaskOptions.Queue.
func (q *Queue) Name() string { return q.name }

// Options returns the queue's options as the code defines them.
func (q *Queue) Options() QueueOptions { return q.opts }

// FullPolicy is what an enqueue into a full queue does.
type FullPolicy int

const (
	// Reject fails at once with ErrQueueFull: the caller sheds load (a web
	// handler answers 503 or 429).
	Reject FullPolicy = iota
	// Block waits for room until the caller's context ends, then fails
	// with an error wrapping both ErrQueueFull and the context's error.
	Block
)

func (p FullPolicy) String() string {
	if p == Block {
		return "block"
	}
	return "reject"
}

// MarshalText implements encoding.TextMarshaler: "reject" or "block".
func (p FullPolicy) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (p *FullPolicy) UnmarshalText(b []byte) error {
	switch string(b) {
	case "reject", "":
		*p = Reject
	case "block":
		*p = Block
	default:
		return fmt.Errorf("%w: full policy %q is not reject or block", job.ErrInvalid, b)
	}
	return nil
}

// QueueSettings are a queue's options as stored in the backend: the code's
// definition, and an operator's override that wins over it until cleared.
type QueueSettings struct {
	Queue    string        `json:"queue"`
	Code     QueueOptions  `json:"code"`               // as the newest client that declared it defines it
	Operator *QueueOptions `json:"operator,omitempty"` // set with Client.SetQueue; nil: none
	Changed  time.Time     `json:"changed"`
}

// Effective is what enqueues obey: the operator's options if set, else
// the code's.
func (s QueueSettings) Effective() QueueOptions {
	if s.Operator != nil {
		return *s.Operator
	}
	return s.Code
}

const queueKeyPrefix = "queue/"

// settingsTTL is how long a client trusts the settings it read: an
// operator's change reaches every process within it.
const settingsTTL = 2 * time.Second

// queueBook is a client's view of its queues' settings: the code's
// definitions, and what it last read from the backend.
type queueBook struct {
	kv   backends.KVStore // nil: the backend stores no settings; the code's options hold
	code map[string]QueueOptions

	mu   sync.Mutex
	seen map[string]cachedSettings
}

type cachedSettings struct {
	opts QueueOptions
	at   time.Time
}

func newQueueBook(b backends.Backend, qs []*Queue) *queueBook {
	kv, _ := b.(backends.KVStore)
	book := &queueBook{kv: kv, code: map[string]QueueOptions{}, seen: map[string]cachedSettings{}}
	for _, q := range qs {
		book.code[q.name] = q.opts
	}
	return book
}

// options returns the options enqueues into queue obey: the stored
// settings, read at most every settingsTTL, with the code's definition
// declared first; without a KVStore, or while it cannot be read, the
// code's definition (the bound is then enforced as this process knows it).
func (b *queueBook) options(ctx context.Context, queue string) QueueOptions {
	code, defined := b.code[queue]
	if b.kv == nil {
		return code
	}
	now := time.Now()
	b.mu.Lock()
	c, ok := b.seen[queue]
	b.mu.Unlock()
	if ok && now.Sub(c.at) < settingsTTL {
		return c.opts
	}
	s, err := b.sync(ctx, queue, code, defined)
	if err != nil {
		if ok {
			return c.opts // what we last knew beats the code's, which an operator may have overridden
		}
		return code
	}
	opts := s.Effective()
	b.mu.Lock()
	b.seen[queue] = cachedSettings{opts: opts, at: now}
	b.mu.Unlock()
	return opts
}

// sync reads a queue's stored settings and, when this client defines the
// queue differently from what is stored as the code's, stores its own
// definition: the newest deploy's code wins, an operator's override stays.
func (b *queueBook) sync(ctx context.Context, queue string, code QueueOptions, defined bool) (QueueSettings, error) {
	return updateSettings(ctx, b.kv, queue, func(s *QueueSettings, stored bool) bool {
		if !defined || (stored && s.Code == code) {
			return false
		}
		s.Code = code
		return true
	})
}

// updateSettings reads a queue's settings, lets change edit them (it says
// whether it did; stored tells whether any were stored) and writes them
// back by compare-and-set, reading again when another writer came first.
func updateSettings(ctx context.Context, kv backends.KVStore, queue string, change func(s *QueueSettings, stored bool) bool) (QueueSettings, error) {
	for range 3 {
		s, ver, err := readSettings(ctx, kv, queue)
		if err != nil || !change(&s, ver > 0) {
			return s, err
		}
		s.Queue, s.Changed = queue, time.Now()
		err = writeSettings(ctx, kv, s, ver)
		if !errors.Is(err, job.ErrConflict) {
			if err != nil {
				return s, fmt.Errorf("queue %s: store settings: %w", queue, err)
			}
			return s, nil
		}
	}
	return QueueSettings{}, fmt.Errorf("queue %s: settings: %w", queue, job.ErrConflict)
}

func readSettings(ctx context.Context, kv backends.KVStore, queue string) (QueueSettings, int64, error) {
	rec, err := kv.GetKV(ctx, backends.GetKVParams{Key: queueKeyPrefix + queue})
	if errors.Is(err, job.ErrNotFound) {
		return QueueSettings{Queue: queue}, 0, nil
	}
	if err != nil {
		return QueueSettings{}, 0, fmt.Errorf("queue %s: read settings: %w", queue, err)
	}
	var s QueueSettings
	if err := json.Unmarshal(rec.Value, &s); err != nil {
		return QueueSettings{}, 0, fmt.Errorf("%w: queue %s settings: %w", job.ErrMalformedPayload, queue, err)
	}
	s.Queue = queue
	return s, rec.Version, nil
}

func writeSettings(ctx context.Context, kv backends.KVStore, s QueueSettings, ver int64) error {
	v, err := json.Marshal(s)
	if err != nil {
		return err
	}
	_, err = kv.PutKV(ctx, backends.PutKVParams{Key: queueKeyPrefix + s.Queue, Value: v, IfVersion: ver})
	return err
}

// forget drops what the client read of queue, so the next enqueue reads
// the stored settings again.
func (b *queueBook) forget(queue string) {
	b.mu.Lock()
	delete(b.seen, queue)
	b.mu.Unlock()
}

// QueueOptions returns the options an enqueue into queue name meets now:
// an operator's stored options over the code's definition (Config.Queues),
// as read within the last few seconds.
func (c *Client) QueueOptions(ctx context.Context, name string) QueueOptions {
	return c.queues.options(ctx, name)
}

// QueueSettings returns every queue whose settings the backend stores, or
// one when name is set. The backend must be a backends.KVStore.
func (c *Client) QueueSettings(ctx context.Context, name string) ([]QueueSettings, error) {
	kv, ok := c.b.(backends.KVStore)
	if !ok {
		return nil, fmt.Errorf("%w: queue settings on %T", job.ErrUnsupported, c.b)
	}
	if name != "" {
		s, ver, err := readSettings(ctx, kv, name)
		if err != nil {
			return nil, err
		}
		if ver == 0 {
			return nil, fmt.Errorf("%w: no settings stored for queue %s", job.ErrNotFound, name)
		}
		return []QueueSettings{s}, nil
	}
	kvs, err := kv.ListKV(ctx, backends.ListKVParams{Prefix: queueKeyPrefix})
	if err != nil {
		return nil, fmt.Errorf("queue settings: %w", err)
	}
	out := make([]QueueSettings, 0, len(kvs))
	for _, rec := range kvs {
		var s QueueSettings
		if err := json.Unmarshal(rec.Value, &s); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", job.ErrMalformedPayload, rec.Key, err)
		}
		out = append(out, s)
	}
	return out, nil
}

// SetQueue stores an operator's options for a queue, which win over the
// code's definition in every process within a few seconds; nil clears
// them, so the code's definition holds again.
func (c *Client) SetQueue(ctx context.Context, name string, opts *QueueOptions) error {
	kv, ok := c.b.(backends.KVStore)
	if !ok {
		return fmt.Errorf("%w: queue settings on %T", job.ErrUnsupported, c.b)
	}
	if name == "" || (opts != nil && opts.MaxDepth < 0) {
		return fmt.Errorf("%w: SetQueue needs a queue name and a MaxDepth of 0 or more", job.ErrInvalid)
	}
	if _, err := updateSettings(ctx, kv, name, func(s *QueueSettings, _ bool) bool {
		s.Operator = opts
		return true
	}); err != nil {
		return err
	}
	c.queues.forget(name)
	return nil
}
