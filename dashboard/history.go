package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/worker"
)

// The history lives in the backend's KVStore, one key per minute and one
// per hour, so it is there whether or not a browser had the page open and
// whichever process serves the dashboard, and every process shows the
// same figures:
//
//	dashboard/history/minute/<YYYYMMDDHH>/<MM>   kept 25 hours
//	dashboard/history/hour/<YYYYMMDD>/<HH>       kept 8 days
//
// A key holds the latest reading taken in its minute (or hour): each
// queue's done and dead counts and its depth as QueueStats gives them,
// and the highest pickup latency the live workers reported. Readings are
// absolute, not increments, so two processes sampling the same minute
// agree instead of adding up; the jobs finished in a minute are the
// difference between its reading and the previous minute's.
const (
	historyPrefix = "dashboard/history/"
	minuteKeep    = 25 * time.Hour
	hourKeep      = 8 * 24 * time.Hour
)

// reading is the value of one history key.
type reading struct {
	At     time.Time               `json:"at"` // when it was read
	Queues map[string]queueReading `json:"queues"`
	P50    float64                 `json:"p50_ms"` // the highest of the bucket's readings
	P99    float64                 `json:"p99_ms"`
}

type queueReading struct {
	Done  int `json:"done"`
	Dead  int `json:"dead"`
	Depth int `json:"depth"`
}

// bucket is the KV key of the minute or hour (step) holding t.
func bucket(step time.Duration, t time.Time) string {
	t = t.UTC()
	if step == time.Hour {
		return historyPrefix + "hour/" + t.Format("20060102/15")
	}
	return historyPrefix + "minute/" + t.Format("2006010215/04")
}

// Sampler keeps the dashboard's history in the backend's KVStore. Every
// dashboard handler runs one (New starts it, at Config.HistoryEvery); a
// worker process can run one too, so that the history is kept while no
// dashboard is served.
type Sampler struct {
	b      backends.Backend
	in     backends.Inspector
	kv     backends.KVStore
	logger *slog.Logger
}

// NewSampler returns a sampler of b, which must be a backends.Inspector
// (for the counts) and a backends.KVStore (to keep them); otherwise the
// error wraps job.ErrUnsupported. A nil logger is slog.Default().
func NewSampler(b backends.Backend, logger *slog.Logger) (*Sampler, error) {
	in, ok := b.(backends.Inspector)
	kv, kvOK := b.(backends.KVStore)
	if !ok || !kvOK {
		return nil, fmt.Errorf("%w: the dashboard's history needs a backend that is an Inspector and a KVStore; %T is not both", job.ErrUnsupported, b)
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &Sampler{b: b, in: in, kv: kv, logger: logger}, nil
}

// Run samples every interval until ctx ends or the backend is closed
// (its reads fail with job.ErrClosed), and returns why it stopped. A
// minute another process sampled less than half an interval ago is left
// to that reading. Failures are logged once until a sample works again.
func (s *Sampler) Run(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	failing := false
	for {
		err := s.sample(ctx, time.Now(), every/2)
		switch {
		case errors.Is(err, job.ErrClosed), ctx.Err() != nil:
			return err
		case err != nil && !failing:
			s.logger.Warn("dashboard: history sample failed; retrying every interval", "err", err, "interval", every)
		case err == nil && failing:
			s.logger.Info("dashboard: history samples work again")
		}
		failing = err != nil
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Sample reads the queues and workers now and records the reading as the
// latest of now's minute and hour. now is the caller's clock (as with the
// KVStore's Now fields), so a test can record minutes past.
func (s *Sampler) Sample(ctx context.Context, now time.Time) error {
	return s.sample(ctx, now, 0)
}

func (s *Sampler) sample(ctx context.Context, now time.Time, fresh time.Duration) error {
	if fresh > 0 {
		kv, err := s.kv.GetKV(ctx, backends.GetKVParams{Key: bucket(time.Minute, now), Now: now})
		var r reading
		if err == nil && json.Unmarshal(kv.Value, &r) == nil && now.Sub(r.At) >= 0 && now.Sub(r.At) < fresh {
			return nil // another process read the queues a moment ago
		}
	}
	stats, err := s.in.QueueStats(ctx, backends.QueueStatsParams{})
	if err != nil {
		return fmt.Errorf("dashboard: history: %w", err)
	}
	r := reading{At: now, Queues: make(map[string]queueReading, len(stats))}
	for _, st := range stats {
		r.Queues[st.Queue] = queueReading{Done: st.Counts[job.Done], Dead: st.Counts[job.Dead], Depth: st.Depth()}
	}
	ws, _ := worker.Workers(ctx, s.b) // none listed: no latency in this reading
	for _, w := range ws {
		r.P50, r.P99 = max(r.P50, w.PickupP50), max(r.P99, w.PickupP99)
	}
	for _, b := range []struct {
		step, keep time.Duration
	}{{time.Minute, minuteKeep}, {time.Hour, hourKeep}} {
		start := now.Truncate(b.step)
		if err := s.merge(ctx, bucket(b.step, now), r, start.Add(b.step+b.keep), now); err != nil {
			return err
		}
	}
	return nil
}

// merge makes r the latest reading of key (unless a later one is there)
// and keeps the bucket's highest latencies, by compare-and-set.
func (s *Sampler) merge(ctx context.Context, key string, r reading, expires, now time.Time) error {
	for range 5 {
		cur, ver := r, int64(0)
		kv, err := s.kv.GetKV(ctx, backends.GetKVParams{Key: key, Now: now})
		switch {
		case errors.Is(err, job.ErrNotFound):
		case err != nil:
			return fmt.Errorf("dashboard: history %s: %w", key, err)
		default:
			var old reading
			if json.Unmarshal(kv.Value, &old) == nil {
				if old.At.After(r.At) {
					cur = old
				}
				cur.P50, cur.P99 = max(old.P50, r.P50), max(old.P99, r.P99)
			}
			ver = kv.Version
		}
		v, err := json.Marshal(cur)
		if err != nil {
			return fmt.Errorf("dashboard: history %s: %w", key, err)
		}
		_, err = s.kv.PutKV(ctx, backends.PutKVParams{Key: key, Value: v, IfVersion: ver, ExpiresAt: expires, Now: now})
		if !errors.Is(err, job.ErrConflict) {
			if err != nil {
				return fmt.Errorf("dashboard: history %s: %w", key, err)
			}
			return nil
		}
	}
	return fmt.Errorf("dashboard: history %s: %w (five times in a row)", key, job.ErrConflict)
}

// historyRanges are the ranges GET /api/history?range= takes, with the
// step of their points.
var historyRanges = map[string]struct{ span, step time.Duration }{
	"1h":  {time.Hour, time.Minute},
	"6h":  {6 * time.Hour, time.Minute},
	"24h": {24 * time.Hour, time.Minute},
	"7d":  {7 * 24 * time.Hour, time.Hour},
}

// History is GET /api/history: per step (a minute, or an hour for 7d),
// the jobs each queue finished, its depth at the step's end and the
// workers' pickup latency. A step no process sampled has no points: the
// charts show a gap rather than a guess.
type History struct {
	Range       string            `json:"range"`
	StepSeconds int               `json:"step_seconds"`
	From        time.Time         `json:"from"`
	To          time.Time         `json:"to"`
	Queues      []string          `json:"queues"`
	Throughput  []ThroughputPoint `json:"throughput"`
	Depth       []DepthPoint      `json:"depth"`
	Pickup      []PickupPoint     `json:"pickup"`
}

// ThroughputPoint is the jobs of one queue that finished done and dead in
// the step starting At: the difference of the step's counts and the
// previous step's, so a step whose predecessor was not sampled has none.
// Finished jobs pruned (the backend's KeepDone and KeepDead) in the same
// step lower it; it is never negative.
type ThroughputPoint struct {
	At    time.Time `json:"at"`
	Queue string    `json:"queue"`
	Done  int       `json:"done"`
	Dead  int       `json:"dead"`
}

// DepthPoint is one queue's unfinished jobs at the last reading of the
// step starting At.
type DepthPoint struct {
	At    time.Time `json:"at"`
	Queue string    `json:"queue"`
	Depth int       `json:"depth"`
}

// PickupPoint is the due-to-start latency in the step starting At: the
// highest p50 and p99 any live worker reported for the jobs it started
// since its previous heartbeat (the slowest worker's view, the one to
// watch); zero when no job started.
type PickupPoint struct {
	At  time.Time `json:"at"`
	P50 float64   `json:"p50_ms"`
	P99 float64   `json:"p99_ms"`
}

// readHistory reads the steps of rng ending now, of one queue (or all).
func readHistory(ctx context.Context, kv backends.KVStore, rng, queue string, now time.Time) (History, error) {
	spec, ok := historyRanges[rng]
	if !ok {
		return History{}, fmt.Errorf("%w: range %q: want 1h, 6h, 24h or 7d", job.ErrInvalid, rng)
	}
	to := now.UTC().Truncate(spec.step)
	from := to.Add(-spec.span + spec.step)
	h := History{Range: rng, StepSeconds: int(spec.step / time.Second), From: from, To: to.Add(spec.step),
		Queues: []string{}, Throughput: []ThroughputPoint{}, Depth: []DepthPoint{}, Pickup: []PickupPoint{}}
	// One listing per hour (or day) of keys: the range's cost is its own
	// length, not the whole kept history's. The step before from is read
	// too, for the first step's difference.
	group := time.Hour
	if spec.step == time.Hour {
		group = 24 * time.Hour
	}
	byAt := map[int64]reading{} // by the step's Unix time: Times as keys compare their locations too
	for g := from.Add(-spec.step).Truncate(group); !g.After(to); g = g.Add(group) {
		prefix := bucket(spec.step, g)
		prefix = prefix[:len(prefix)-2] // the group's part: up to the last "/"
		kvs, err := kv.ListKV(ctx, backends.ListKVParams{Prefix: prefix, Now: now})
		if err != nil {
			return History{}, fmt.Errorf("dashboard: history: %w", err)
		}
		for _, e := range kvs {
			var r reading
			if json.Unmarshal(e.Value, &r) != nil {
				continue // not ours to judge: another version's key
			}
			byAt[r.At.Truncate(spec.step).Unix()] = r
		}
	}
	seen := map[string]bool{}
	for at := from; !at.After(to); at = at.Add(spec.step) {
		r, ok := byAt[at.Unix()]
		if !ok {
			continue
		}
		prev, hasPrev := byAt[at.Add(-spec.step).Unix()]
		for _, q := range slices.Sorted(maps.Keys(r.Queues)) {
			if queue != "" && q != queue {
				continue
			}
			seen[q] = true
			c := r.Queues[q]
			h.Depth = append(h.Depth, DepthPoint{At: at, Queue: q, Depth: c.Depth})
			if hasPrev {
				p := prev.Queues[q] // zero for a queue new in this step
				h.Throughput = append(h.Throughput, ThroughputPoint{At: at, Queue: q,
					Done: max(c.Done-p.Done, 0), Dead: max(c.Dead-p.Dead, 0)})
			}
		}
		h.Pickup = append(h.Pickup, PickupPoint{At: at, P50: r.P50, P99: r.P99})
	}
	h.Queues = slices.Sorted(maps.Keys(seen))
	if h.Queues == nil {
		h.Queues = []string{}
	}
	return h, nil
}
