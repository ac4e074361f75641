package dashboard

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/worker"
)

// collector exports what the backend knows of every queue and live worker
// as Prometheus gauges. A scrape reads a snapshot at most Config.MetricsTTL
// old, so however often Prometheus (or several) scrape, the backend sees
// one QueueStats and one worker listing per TTL, and both are cheap.
type collector struct {
	b   backends.Backend
	ttl time.Duration

	mu    sync.Mutex
	at    time.Time
	stats []backends.QueueStats
	ws    []worker.Info
	err   error
}

var (
	descJobs    = prometheus.NewDesc("conveyor_queue_jobs", "Jobs in the queue, by state.", []string{"queue", "state"}, nil)
	descDepth   = prometheus.NewDesc("conveyor_queue_depth", "Unfinished jobs in the queue (pending, scheduled, running, retrying): the figure MaxDepth bounds.", []string{"queue"}, nil)
	descPaused  = prometheus.NewDesc("conveyor_queue_paused", "1 if the queue is paused.", []string{"queue"}, nil)
	descWorkers = prometheus.NewDesc("conveyor_workers", "Live worker processes.", nil, nil)
	descRunning = prometheus.NewDesc("conveyor_worker_running_jobs", "Jobs a worker process is running.", []string{"worker"}, nil)
	descSlots   = prometheus.NewDesc("conveyor_worker_concurrency", "Jobs a worker process can run at once.", []string{"worker"}, nil)
	descBreaker = prometheus.NewDesc("conveyor_breaker_open", "1 if the circuit breaker is open (0.5 half-open, 0 closed), per worker process.", []string{"worker", "breaker"}, nil)
	descUp      = prometheus.NewDesc("conveyor_backend_up", "1 if the last read of the backend for these metrics worked.", nil, nil)
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descJobs, descDepth, descPaused, descWorkers, descRunning, descSlots, descBreaker, descUp} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	stats, ws, err := c.snapshot()
	up := 1.0
	if err != nil {
		up = 0
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up)
	for _, s := range stats {
		for _, st := range job.States() {
			ch <- prometheus.MustNewConstMetric(descJobs, prometheus.GaugeValue, float64(s.Counts[st]), s.Queue, string(st))
		}
		ch <- prometheus.MustNewConstMetric(descDepth, prometheus.GaugeValue, float64(s.Depth()), s.Queue)
		ch <- prometheus.MustNewConstMetric(descPaused, prometheus.GaugeValue, boolValue(s.Paused), s.Queue)
	}
	if ws == nil {
		return // the backend cannot list workers
	}
	ch <- prometheus.MustNewConstMetric(descWorkers, prometheus.GaugeValue, float64(len(ws)))
	for _, w := range ws {
		ch <- prometheus.MustNewConstMetric(descRunning, prometheus.GaugeValue, float64(w.Running), w.ID)
		ch <- prometheus.MustNewConstMetric(descSlots, prometheus.GaugeValue, float64(w.Concurrency), w.ID)
		for _, br := range w.Breakers {
			ch <- prometheus.MustNewConstMetric(descBreaker, prometheus.GaugeValue, breakerValue(br.State), w.ID, br.Name)
		}
	}
}

// snapshot returns the cached readings, refreshing them when older than
// the TTL. A failed read keeps nothing stale: it reports the backend down.
func (c *collector) snapshot() ([]backends.QueueStats, []worker.Info, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.at.IsZero() && time.Since(c.at) < c.ttl {
		return c.stats, c.ws, c.err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.at, c.stats, c.ws, c.err = time.Now(), nil, nil, nil
	if in, ok := c.b.(backends.Inspector); ok {
		c.stats, c.err = in.QueueStats(ctx, backends.QueueStatsParams{})
	}
	if _, ok := c.b.(backends.KVStore); ok && c.err == nil {
		c.ws, c.err = worker.Workers(ctx, c.b)
	}
	return c.stats, c.ws, c.err
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func breakerValue(state string) float64 {
	switch state {
	case "open":
		return 1
	case "half-open":
		return 0.5
	}
	return 0
}
