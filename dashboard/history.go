package dashboard

import (
	"slices"
	"sync"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/worker"
)

// Point is one queue's figures over one sampling interval of GET
// /api/history: jobs done and dead per second.
type Point struct {
	At         time.Time `json:"at"`
	Queue      string    `json:"queue"`
	DonePerSec float64   `json:"done_per_s"`
	DeadPerSec float64   `json:"dead_per_s"`
}

// PickupPoint is the enqueue-to-start latency over one sampling interval
// of GET /api/history: the highest p50 and p99 that any live worker
// reported for the jobs it started since its previous heartbeat (the
// slowest worker's view, which is the one to watch).
type PickupPoint struct {
	At  time.Time `json:"at"`
	P50 float64   `json:"p50_ms"`
	P99 float64   `json:"p99_ms"`
}

// History is GET /api/history.
type History struct {
	Rates  []Point       `json:"rates"`
	Pickup []PickupPoint `json:"pickup"`
}

// history samples the queues at most every interval while the dashboard
// is in use (each GET /api/queues may take a sample: the page asks every
// second) and keeps an hour of points. Rates are differences of the
// backend's done and dead counts, so a prune of finished jobs reads as
// zero, never as negative.
type history struct {
	every, keep time.Duration

	mu     sync.Mutex
	at     time.Time
	last   map[string]map[job.State]int
	points []Point
	pickup []PickupPoint
}

// sample records a point per queue, and one of pickup latency from the
// live workers (read only then), if the last sample is older than every.
func (h *history) sample(stats []backends.QueueStats, workers func() []worker.Info) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	if now.Sub(h.at) < h.every {
		return
	}
	prev, prevAt := h.last, h.at
	h.at, h.last = now, map[string]map[job.State]int{}
	for _, s := range stats {
		h.last[s.Queue] = s.Counts
	}
	if prev == nil {
		return // the first sample is the baseline
	}
	secs := now.Sub(prevAt).Seconds()
	for _, s := range stats {
		p := Point{At: now, Queue: s.Queue,
			DonePerSec: max(float64(s.Counts[job.Done]-prev[s.Queue][job.Done]), 0) / secs,
			DeadPerSec: max(float64(s.Counts[job.Dead]-prev[s.Queue][job.Dead]), 0) / secs}
		h.points = append(h.points, p)
	}
	pp := PickupPoint{At: now}
	for _, w := range workers() {
		pp.P50, pp.P99 = max(pp.P50, w.PickupP50), max(pp.P99, w.PickupP99)
	}
	h.pickup = append(h.pickup, pp)
	h.points = dropOlder(h.points, now.Add(-h.keep), func(p Point) time.Time { return p.At })
	h.pickup = dropOlder(h.pickup, now.Add(-h.keep), func(p PickupPoint) time.Time { return p.At })
}

// dropOlder drops the points, oldest first, taken before cut.
func dropOlder[P any](ps []P, cut time.Time, at func(P) time.Time) []P {
	n := 0
	for n < len(ps) && at(ps[n]).Before(cut) {
		n++
	}
	return slices.Delete(ps, 0, n)
}

// snapshot returns the kept points, oldest first.
func (h *history) snapshot() History {
	h.mu.Lock()
	defer h.mu.Unlock()
	// Never null: a page iterates both before the first two samples exist.
	return History{Rates: append([]Point{}, h.points...), Pickup: append([]PickupPoint{}, h.pickup...)}
}
