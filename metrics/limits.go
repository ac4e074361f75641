package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/conveyorhq/conveyor/flow"
)

var (
	descLimit = prometheus.NewDesc("conveyor_limit",
		"The limit in force (an override's if set): jobs started per conveyor_limit_interval_seconds for a rate limit, jobs running at once for a concurrency limit; per key when per_key is true.",
		[]string{"limit", "kind", "per_key"}, nil)
	descInterval = prometheus.NewDesc("conveyor_limit_interval_seconds", "A rate limit's interval.", []string{"limit"}, nil)
	descInUse    = prometheus.NewDesc("conveyor_limit_in_use",
		"This process's use of the limit: slots held now (concurrency), jobs started in about the last interval (rate).", []string{"limit", "kind"}, nil)
	descHeldBack = prometheus.NewDesc("conveyor_limit_held_back",
		"Jobs this process's workers held back by the limit whose wait has not ended.", []string{"limit", "kind"}, nil)
	descHeldBackTotal = prometheus.NewDesc("conveyor_limit_held_back_total",
		"Deliveries this process's workers held back by the limit (postponed, no attempt used).", []string{"limit", "kind"}, nil)
)

// limitCollector reads the limits at each scrape: they are the workers'
// own counts, so a scrape costs no backend call.
type limitCollector struct {
	mu     sync.Mutex
	states func() []flow.LimitState
}

// WatchLimits exports, at each scrape, the limits that states reports
// (worker.Worker.LimitStates, or the sum over a process's workers with
// flow.Sum): conveyor_limit and conveyor_limit_interval_seconds, the
// figures in force; conveyor_limit_in_use, conveyor_limit_held_back and
// conveyor_limit_held_back_total, this process's use and the jobs held
// back. Prometheus sums them over processes. A later call replaces states.
func (m *Metrics) WatchLimits(states func() []flow.LimitState) {
	m.limits.mu.Lock()
	m.limits.states = states
	m.limits.mu.Unlock()
}

func (c *limitCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLimit, descInterval, descInUse, descHeldBack, descHeldBackTotal} {
		ch <- d
	}
}

func (c *limitCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	states := c.states
	c.mu.Unlock()
	if states == nil {
		return
	}
	for _, s := range states() {
		perKey := "false"
		if s.PerKey {
			perKey = "true"
		}
		ch <- prometheus.MustNewConstMetric(descLimit, prometheus.GaugeValue, float64(s.Limit), s.Name, s.Kind, perKey)
		if s.Kind == flow.KindRate {
			ch <- prometheus.MustNewConstMetric(descInterval, prometheus.GaugeValue, s.Per.Seconds(), s.Name)
		}
		ch <- prometheus.MustNewConstMetric(descInUse, prometheus.GaugeValue, float64(s.InUse), s.Name, s.Kind)
		ch <- prometheus.MustNewConstMetric(descHeldBack, prometheus.GaugeValue, float64(s.HeldBack), s.Name, s.Kind)
		ch <- prometheus.MustNewConstMetric(descHeldBackTotal, prometheus.CounterValue, float64(s.HeldBackTotal), s.Name, s.Kind)
	}
}
