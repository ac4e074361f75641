package metrics_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/conveyorhq/conveyor/backends/sqlitebackend"
	"github.com/conveyorhq/conveyor/flow"
	"github.com/conveyorhq/conveyor/internal/testenv"
	"github.com/conveyorhq/conveyor/metrics"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

// A worker's limits are exported with the figures in force, its use and
// the jobs held back: one job of three runs under a concurrency limit of
// one, the other two wait an hour, and the queue's bucket gave one token.
func TestMetricsShowLimits(t *testing.T) {
	ctx := context.Background()
	b, err := sqlitebackend.Open(ctx, sqlitebackend.Config{Path: filepath.Join(t.TempDir(), "l.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	limited := queue.NewTask[args, queue.None]("m.limited", queue.TaskOptions{Queue: "l",
		ConcurrencyLimit: &flow.ConcurrencyLimit{Limit: 1, Backoff: time.Hour}})
	w := worker.New(b, worker.Config{Queues: []worker.QueueConfig{{Name: "l", RateLimit: &flow.RateLimit{Limit: 10, Per: time.Minute}}},
		PollInterval: 20 * time.Millisecond})
	release := make(chan struct{})
	worker.Register(w, limited, func(ctx context.Context, _ args) (queue.None, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return queue.None{}, nil
	})
	m.WatchLimits(w.LimitStates)
	c := queue.NewClient(b, queue.Config{})
	for range 3 {
		if _, err := limited.Enqueue(ctx, c, args{}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer w.Stop(ctx)
	defer close(release)
	// Both limits' figures, not only the concurrency one's: the queue's
	// bucket records its token in its own step of the admission.
	testenv.WaitFor(t, 15*time.Second, "one running, two held back, one token taken", func() bool {
		var conc, rate bool
		for _, s := range w.LimitStates() {
			switch s.Kind {
			case flow.KindConcurrency:
				conc = s.InUse == 1 && s.HeldBack == 2
			case flow.KindRate:
				rate = s.InUse == 1
			}
		}
		return conc && rate
	})
	want := `
# HELP conveyor_limit The limit in force (an override's if set): jobs started per conveyor_limit_interval_seconds for a rate limit, jobs running at once for a concurrency limit; per key when per_key is true.
# TYPE conveyor_limit gauge
conveyor_limit{kind="concurrency",limit="m.limited",per_key="true"} 1
conveyor_limit{kind="rate",limit="queue:l",per_key="false"} 10
# HELP conveyor_limit_interval_seconds A rate limit's interval.
# TYPE conveyor_limit_interval_seconds gauge
conveyor_limit_interval_seconds{limit="queue:l"} 60
# HELP conveyor_limit_in_use This process's use of the limit: slots held now (concurrency), jobs started in about the last interval (rate).
# TYPE conveyor_limit_in_use gauge
conveyor_limit_in_use{kind="concurrency",limit="m.limited"} 1
conveyor_limit_in_use{kind="rate",limit="queue:l"} 1
# HELP conveyor_limit_held_back Jobs this process's workers held back by the limit whose wait has not ended.
# TYPE conveyor_limit_held_back gauge
conveyor_limit_held_back{kind="concurrency",limit="m.limited"} 2
conveyor_limit_held_back{kind="rate",limit="queue:l"} 0
# HELP conveyor_limit_held_back_total Deliveries this process's workers held back by the limit (postponed, no attempt used).
# TYPE conveyor_limit_held_back_total counter
conveyor_limit_held_back_total{kind="concurrency",limit="m.limited"} 2
conveyor_limit_held_back_total{kind="rate",limit="queue:l"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "conveyor_limit", "conveyor_limit_interval_seconds",
		"conveyor_limit_in_use", "conveyor_limit_held_back", "conveyor_limit_held_back_total"); err != nil {
		t.Fatal(err)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metric %s: %s", p.Metric, p.Text)
	}
}
