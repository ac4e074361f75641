package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/flow"
	"github.com/conveyorhq/conveyor/job"
)

// Info is what a running worker announces about itself, for operators:
// `conveyor inspect workers` and the dashboard list it.
type Info struct {
	ID          string         `json:"id"`
	Host        string         `json:"host"`
	PID         int            `json:"pid"`
	Queues      []string       `json:"queues"`
	Concurrency int            `json:"concurrency"`
	Running     int            `json:"running"`
	Started     time.Time      `json:"started"`
	Heartbeat   time.Time      `json:"heartbeat"`
	Breakers    []BreakerState `json:"breakers,omitempty"`
	// PickupP50 and PickupP99 are the enqueue-to-start latency (from when
	// a job was due to when this worker started it) of the jobs it started
	// since its previous heartbeat, in milliseconds; zero when none.
	PickupP50 float64 `json:"pickup_p50_ms,omitempty"`
	PickupP99 float64 `json:"pickup_p99_ms,omitempty"`
	// Tasks are the tasks it has handlers for, sorted. A worker without a
	// handler for a job's task looks here before it dead-letters the job
	// (Config.UnknownTaskWindow). Workers of versions before it was
	// announced list none.
	Tasks []string `json:"tasks,omitempty"`
	// Limits are the limits its tasks and queues declare, with its own
	// use of each (LimitStates); Limits sums them over the workers.
	Limits []flow.LimitState `json:"limits,omitempty"`
	// Fair names the queues of Queues it serves fairly (QueueConfig.Fair),
	// each with its groups' weights (QueueConfig.FairWeights; empty: every
	// group takes one job a turn).
	Fair map[string]map[string]int `json:"fair,omitempty"`
}

// workersPrefix starts the KVStore key of each worker's Info.
const workersPrefix = "workers/"

// registry keeps this worker's Info in the backend's KVStore, if it has
// one, refreshed at every heartbeat and expiring after three missed ones,
// so a worker that died drops off the list by itself.
type registry struct {
	kv      backends.KVStore // nil: the backend cannot list workers
	host    string
	mu      sync.Mutex
	version int64
	started time.Time
	pickups pickups
}

// pickups collects the pickup latencies of the jobs started between two
// heartbeats, the last pickupWindow of them.
type pickups struct {
	mu   sync.Mutex
	vals []time.Duration
}

const pickupWindow = 1024

func (p *pickups) add(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.vals) == pickupWindow {
		p.vals = p.vals[1:]
	}
	p.vals = append(p.vals, max(d, 0))
}

// take returns the p50 and p99 in milliseconds and starts a new window.
func (p *pickups) take() (p50, p99 float64) {
	p.mu.Lock()
	vals := p.vals
	p.vals = nil
	p.mu.Unlock()
	if len(vals) == 0 {
		return 0, 0
	}
	slices.Sort(vals)
	at := func(q float64) float64 {
		return float64(vals[min(int(q*float64(len(vals))), len(vals)-1)]) / float64(time.Millisecond)
	}
	return at(0.50), at(0.99)
}

func (w *Worker) announce(ctx context.Context) {
	r := &w.reg
	if r.kv == nil {
		return
	}
	live := w.live()
	qs := make([]string, len(live.Queues))
	var fair map[string]map[string]int
	for i, q := range live.Queues {
		qs[i] = q.Name
		if q.Fair {
			if fair == nil {
				fair = map[string]map[string]int{}
			}
			fair[q.Name] = q.FairWeights
			if fair[q.Name] == nil {
				fair[q.Name] = map[string]int{}
			}
		}
	}
	now := time.Now()
	p50, p99 := r.pickups.take()
	info, _ := json.Marshal(Info{ID: w.cfg.ID, Host: r.host, PID: os.Getpid(), Queues: qs, Tasks: w.taskNames(), Concurrency: live.Concurrency,
		Running: w.Running(), Started: r.started, Heartbeat: now, Breakers: w.Breakers(), PickupP50: p50, PickupP99: p99, Limits: w.LimitStates(), Fair: fair})
	r.mu.Lock()
	defer r.mu.Unlock()
	p := backends.PutKVParams{Key: workersPrefix + w.cfg.ID, Value: info, IfVersion: r.version,
		ExpiresAt: now.Add(w.cfg.LeaseDuration), Now: now} // three heartbeats
	v, err := r.kv.PutKV(ctx, p)
	if errors.Is(err, job.ErrConflict) { // expired meanwhile: register afresh
		p.IfVersion = 0
		v, err = r.kv.PutKV(ctx, p)
	}
	if err != nil {
		w.log.Warn("announcing the worker failed", "err", err)
		r.version = 0
		return
	}
	r.version = v
}

// withdraw removes this worker's Info at Stop.
func (w *Worker) withdraw(ctx context.Context) {
	r := &w.reg
	if r.kv == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.version != 0 {
		_ = r.kv.DeleteKV(ctx, backends.DeleteKVParams{Key: workersPrefix + w.cfg.ID, IfVersion: r.version})
		r.version = 0
	}
}

// Workers lists the live workers using backend b, by ID. The backend must
// be a backends.KVStore (every backend in this module is); otherwise the
// error wraps job.ErrUnsupported.
func Workers(ctx context.Context, b backends.Backend) ([]Info, error) {
	kv, ok := b.(backends.KVStore)
	if !ok {
		return nil, fmt.Errorf("%w: listing workers needs a backends.KVStore; %T is not one", job.ErrUnsupported, b)
	}
	kvs, err := kv.ListKV(ctx, backends.ListKVParams{Prefix: workersPrefix})
	if err != nil {
		return nil, fmt.Errorf("listing workers: %w", err)
	}
	out := make([]Info, 0, len(kvs))
	for _, e := range kvs {
		var info Info
		if err := json.Unmarshal(e.Value, &info); err != nil {
			return nil, fmt.Errorf("%w: worker entry %s: %w", job.ErrMalformedPayload, e.Key, err)
		}
		out = append(out, info)
	}
	return out, nil
}
