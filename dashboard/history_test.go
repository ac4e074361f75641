package dashboard_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/dashboard"
	"github.com/conveyorhq/conveyor/internal/testenv"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
)

// The history is per minute and kept in the backend: samplers record
// readings (here as of minutes past), any dashboard on the backend serves
// them, and two processes sampling one minute agree instead of adding up.
func TestHistoryIsKeptInTheBackend(t *testing.T) {
	ctx := context.Background()
	b := openSQLite(t)
	c := queue.NewClient(b, queue.Config{})
	for range 4 {
		if _, err := sendMail.Enqueue(ctx, c, mailArgs{To: "x@example.com"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	s1, err := dashboard.NewSampler(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	s2, _ := dashboard.NewSampler(b, nil) // another process's
	t0 := time.Now().Truncate(time.Minute).Add(-3 * time.Minute)
	if err := s1.Sample(ctx, t0.Add(10*time.Second)); err != nil {
		t.Fatal(err)
	}
	recs, err := b.Reserve(ctx, backends.ReserveParams{Queue: "mail", Limit: 4, Lease: time.Minute})
	if err != nil || len(recs) != 4 {
		t.Fatalf("Reserve = %d, %v", len(recs), err)
	}
	for _, r := range recs[:3] {
		if err := b.Complete(ctx, backends.CompleteParams{Lease: r.Lease}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.DeadLetter(ctx, backends.DeadLetterParams{Lease: recs[3].Lease, Error: job.AttemptError{Error: "x"}}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*dashboard.Sampler{s1, s2} {
		if err := s.Sample(ctx, t0.Add(70*time.Second)); err != nil {
			t.Fatal(err)
		}
	}

	srv := serve(t, dashboard.Config{Backend: b})
	var h dashboard.History
	call(t, srv, "GET", "/api/history", "", http.StatusOK, &h)
	if h.Range != "1h" || h.StepSeconds != 60 || len(h.Queues) != 1 || h.Queues[0] != "mail" {
		t.Fatalf("history = %+v", h)
	}
	var tp *dashboard.ThroughputPoint
	for i, p := range h.Throughput {
		if p.At.Equal(t0.Add(time.Minute)) {
			tp = &h.Throughput[i]
		}
		if p.At.Equal(t0) {
			t.Fatalf("a throughput point for the first minute sampled, which has no predecessor: %+v", p)
		}
	}
	if tp == nil || tp.Queue != "mail" || tp.Done != 3 || tp.Dead != 1 {
		t.Fatalf("throughput = %+v, want 3 done and 1 dead in the minute after %v", h.Throughput, t0)
	}
	depth := map[int64]int{}
	for _, p := range h.Depth {
		depth[p.At.Unix()] = p.Depth
	}
	if depth[t0.Unix()] != 4 || depth[t0.Add(time.Minute).Unix()] != 0 {
		t.Fatalf("depth = %+v, want 4 then 0", h.Depth)
	}
	call(t, srv, "GET", "/api/history?range=7d&queue=mail", "", http.StatusOK, &h)
	if h.StepSeconds != 3600 || len(h.Depth) == 0 {
		t.Fatalf("7d history = %+v", h)
	}
	call(t, srv, "GET", "/api/history?range=1h&queue=nope", "", http.StatusOK, &h)
	if len(h.Depth) != 0 || len(h.Throughput) != 0 {
		t.Fatalf("history of no such queue = %+v", h)
	}
	call(t, srv, "GET", "/api/history?range=1y", "", http.StatusBadRequest, nil)
}

// A dashboard samples from the start, at its default interval, with no
// page open: its first reading is in the history at once.
func TestDashboardSamplesWithoutAPage(t *testing.T) {
	ctx := context.Background()
	b := openSQLite(t) // whose Close at the end ends the sampler
	if _, err := sendMail.Enqueue(ctx, queue.NewClient(b, queue.Config{}), mailArgs{To: "x@example.com"}, nil); err != nil {
		t.Fatal(err)
	}
	srv := serve(t, dashboard.Config{Backend: b})
	testenv.WaitFor(t, 10*time.Second, "the dashboard's first reading", func() bool {
		var h dashboard.History
		call(t, srv, "GET", "/api/history", "", http.StatusOK, &h)
		return len(h.Depth) == 1 && h.Depth[0].Depth == 1
	})
}
