package metrics_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/conveyorhq/conveyor/backends/sqlitebackend"
	"github.com/conveyorhq/conveyor/metrics"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/retry"
	"github.com/conveyorhq/conveyor/worker"
)

type args struct{ Fail bool }

var task = queue.NewTask[args, queue.None]("m.task", queue.TaskOptions{Queue: "m", Retry: &retry.Policy{Stop: retry.StopAfterAttempt(1)}})

// Jobs enqueued, refused, run and failed are counted under names that pass
// Prometheus's own lint.
func TestMetricsCountJobs(t *testing.T) {
	ctx := context.Background()
	b, err := sqlitebackend.Open(ctx, sqlitebackend.Config{Path: filepath.Join(t.TempDir(), "m.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	c := queue.NewClient(b, queue.Config{Observer: m, Queues: []*queue.Queue{queue.NewQueue("m", queue.QueueOptions{MaxDepth: 3})}})
	for i := range 4 {
		_, err := task.Enqueue(ctx, c, args{Fail: i == 0}, nil)
		if i < 3 && err != nil {
			t.Fatal(err)
		}
		if i == 3 && !errors.Is(err, queue.ErrQueueFull) {
			t.Fatalf("fourth enqueue = %v, want ErrQueueFull", err)
		}
	}
	done := make(chan struct{}, 3)
	w := worker.New(b, worker.Config{Queues: []worker.QueueConfig{{Name: "m"}}, Observer: m})
	worker.Register(w, task, func(_ context.Context, a args) (queue.None, error) {
		defer func() { done <- struct{}{} }()
		if a.Fail {
			return queue.None{}, errors.New("no")
		}
		return queue.None{}, nil
	})
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		<-done
	}
	if err := w.Stop(ctx); err != nil { // every outcome recorded
		t.Fatal(err)
	}
	want := `
# HELP conveyor_jobs_enqueued_total Jobs enqueued, duplicates of a unique key not counted.
# TYPE conveyor_jobs_enqueued_total counter
conveyor_jobs_enqueued_total{queue="m"} 3
# HELP conveyor_jobs_rejected_total Jobs refused at enqueue because their queue was full (backpressure).
# TYPE conveyor_jobs_rejected_total counter
conveyor_jobs_rejected_total{queue="m"} 1
# HELP conveyor_jobs_started_total Job deliveries started by this process's workers.
# TYPE conveyor_jobs_started_total counter
conveyor_jobs_started_total{queue="m",task="m.task"} 3
# HELP conveyor_jobs_finished_total Job deliveries by what became of them: succeeded, retried, dead_lettered, postponed, cancelled, released, lease_lost, unrecorded, unknown_task, abandoned.
# TYPE conveyor_jobs_finished_total counter
conveyor_jobs_finished_total{outcome="dead_lettered",queue="m",task="m.task"} 1
conveyor_jobs_finished_total{outcome="succeeded",queue="m",task="m.task"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "conveyor_jobs_enqueued_total", "conveyor_jobs_rejected_total",
		"conveyor_jobs_started_total", "conveyor_jobs_finished_total"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(reg, "conveyor_job_run_seconds", "conveyor_job_pickup_seconds"); n != 2 {
		t.Fatalf("%d histogram series, want one each", n)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metric %s: %s", p.Metric, p.Text)
	}
}
