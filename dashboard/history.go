package dashboard

import (
	"slices"
	"sync"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

// Point is one queue's figures over one sampling interval of GET
// /api/history: jobs done and dead per second.
type Point struct {
	At         time.Time `json:"at"`
	Queue      string    `json:"queue"`
	DonePerSec float64   `json:"done_per_s"`
	DeadPerSec float64   `json:"dead_per_s"`
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
}

// sample records a point per queue if the last sample is older than every.
func (h *history) sample(stats []backends.QueueStats) {
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
	cut := 0
	for cut < len(h.points) && now.Sub(h.points[cut].At) > h.keep {
		cut++
	}
	h.points = slices.Delete(h.points, 0, cut)
}

// points returns the kept points, oldest first.
func (h *history) snapshot() []Point {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.points)
}
