package dashboard_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/dashboard"
	"github.com/conveyorhq/conveyor/flow"
	"github.com/conveyorhq/conveyor/internal/testenv"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

// The limits view: each limit in force with its use and the jobs it holds
// back, as the workers announce them; an override set and removed through
// the API, seen at once, and then applied and announced by the worker.
func TestLimitsView(t *testing.T) {
	ctx := context.Background()
	b := openSQLite(t)
	limited := queue.NewTask[mailArgs, queue.None]("lim.send", queue.TaskOptions{Queue: "lim",
		ConcurrencyLimit: &flow.ConcurrencyLimit{Limit: 1, Backoff: time.Hour}})
	w := worker.New(b, worker.Config{Queues: []worker.QueueConfig{{Name: "lim", RateLimit: &flow.RateLimit{Limit: 600, Per: time.Minute, Burst: 50}}},
		PollInterval: 20 * time.Millisecond, LeaseDuration: 3 * time.Second}) // announcing every second
	release := make(chan struct{})
	worker.Register(w, limited, func(ctx context.Context, _ mailArgs) (queue.None, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return queue.None{}, nil
	})
	c := queue.NewClient(b, queue.Config{})
	for range 3 {
		if _, err := limited.Enqueue(ctx, c, mailArgs{To: "x@example.com"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer w.Stop(ctx)
	defer close(release)
	srv := serve(t, dashboard.Config{Backend: b})
	get := func() (conc, rate dashboard.LimitView) {
		var ls []dashboard.LimitView
		call(t, srv, "GET", "/api/limits", "", http.StatusOK, &ls)
		for _, l := range ls {
			switch l.Kind + "/" + l.Name {
			case "concurrency/lim.send":
				conc = l
			case "rate/queue:lim":
				rate = l
			default:
				t.Fatalf("unexpected limit %+v", l)
			}
		}
		return conc, rate
	}
	testenv.WaitFor(t, 15*time.Second, "one job running, two held back", func() bool {
		conc, _ := get()
		return conc.InUse == 1 && conc.HeldBack == 2
	})
	conc, rate := get()
	if conc.Limit != 1 || !conc.PerKey || conc.Workers != 1 || conc.HeldBackTotal != 2 || conc.Override != nil {
		t.Fatalf("concurrency limit shown as %+v", conc)
	}
	if rate.Limit != 600 || rate.PerSeconds != 60 || rate.Burst != 50 || rate.PerKey || rate.InUse != 1 {
		t.Fatalf("queue rate limit shown as %+v", rate)
	}

	call(t, srv, "POST", "/api/limits/concurrency/lim.send/override", `{"limit": 3}`, http.StatusNoContent, nil)
	if conc, _ := get(); conc.Override == nil || conc.Override.Limit != 3 || conc.Override.SetAt == nil {
		t.Fatalf("after setting an override: %+v", conc)
	}
	testenv.WaitFor(t, 15*time.Second, "the worker applying the override", func() bool {
		conc, _ := get()
		return conc.Limit == 3
	})
	call(t, srv, "POST", "/api/limits/concurrency/lim.send/reset", "", http.StatusNoContent, nil)
	if conc, _ := get(); conc.Override != nil {
		t.Fatalf("after the reset: %+v", conc)
	}
	call(t, srv, "POST", "/api/limits/concurrency/lim.send/override", `{"limit": 0}`, http.StatusBadRequest, nil)
	call(t, srv, "POST", "/api/limits/speed/lim.send/override", `{"limit": 2}`, http.StatusBadRequest, nil)
	call(t, srv, "POST", "/api/limits/speed/lim.send/reset", "", http.StatusBadRequest, nil)
	call(t, srv, "POST", "/api/limits/concurrency/lim.send/override", `{"limit": 2, "per_seconds": 1}`, http.StatusBadRequest, nil)
}
