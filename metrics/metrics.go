package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

// Metrics is a queue.Observer and a worker.Observer that counts into
// Prometheus metrics. Counting is a few atomic adds: cheap on every job,
// and free at scrape time.
type Metrics struct {
	enqueued, rejected *prometheus.CounterVec
	started, finished  *prometheus.CounterVec
	runTime, pickup    *prometheus.HistogramVec
	limits             *limitCollector
}

var (
	_ queue.Observer  = (*Metrics)(nil)
	_ worker.Observer = (*Metrics)(nil)
)

// New registers Conveyor's metrics with reg and returns them.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		enqueued: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "conveyor_jobs_enqueued_total",
			Help: "Jobs enqueued, duplicates of a unique key not counted."}, []string{"queue"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "conveyor_jobs_rejected_total",
			Help: "Jobs refused at enqueue because their queue was full (backpressure)."}, []string{"queue"}),
		started: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "conveyor_jobs_started_total",
			Help: "Job deliveries started by this process's workers."}, []string{"queue", "task"}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "conveyor_jobs_finished_total",
			Help: "Job deliveries by what became of them: succeeded, retried, dead_lettered, postponed, cancelled, released, lease_lost, unrecorded, unknown_task, abandoned."},
			[]string{"queue", "task", "outcome"}),
		runTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "conveyor_job_run_seconds",
			Help:    "How long a job's handler ran, per delivery.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)}, []string{"queue", "task"}),
		pickup: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "conveyor_job_pickup_seconds",
			Help:    "From when a job was due to when a worker started it.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10)}, []string{"queue"}),
		limits: &limitCollector{},
	}
	reg.MustRegister(m.enqueued, m.rejected, m.started, m.finished, m.runTime, m.pickup, m.limits)
	return m
}

// Enqueued implements queue.Observer.
func (m *Metrics) Enqueued(q string, n int) { m.enqueued.WithLabelValues(q).Add(float64(n)) }

// Rejected implements queue.Observer.
func (m *Metrics) Rejected(q string, n int) { m.rejected.WithLabelValues(q).Add(float64(n)) }

// Started implements worker.Observer.
func (m *Metrics) Started(rec *job.Record) {
	m.started.WithLabelValues(rec.Queue, rec.Task).Inc()
	if !rec.RunAt.IsZero() && !rec.StartedAt.IsZero() {
		m.pickup.WithLabelValues(rec.Queue).Observe(max(rec.StartedAt.Sub(rec.RunAt), 0).Seconds())
	}
}

// Finished implements worker.Observer.
func (m *Metrics) Finished(rec *job.Record, o worker.Outcome, ran time.Duration) {
	m.finished.WithLabelValues(rec.Queue, rec.Task, string(o)).Inc()
	m.runTime.WithLabelValues(rec.Queue, rec.Task).Observe(ran.Seconds())
}
