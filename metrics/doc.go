// Package metrics counts what Conveyor does in this process, for
// Prometheus: jobs enqueued and refused by full queues (from a
// queue.Client), jobs started and what became of each, how long they ran
// and how long they waited to start (from a worker.Worker), and each flow
// limit in force with this process's use of it and the jobs it held back
// (WatchLimits).
//
//	m := metrics.New(prometheus.DefaultRegisterer)
//	client := queue.NewClient(b, queue.Config{Observer: m})
//	w := worker.New(b, worker.Config{Observer: m})
//	m.WatchLimits(w.LimitStates)
//	http.Handle("/metrics", promhttp.Handler())
//
// Counters live in this process: each web process and worker exposes its
// own, and Prometheus sums them. What the backend knows (jobs per queue and
// state, live workers, breakers) is the dashboard's /metrics.
package metrics
