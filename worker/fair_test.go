package worker_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/membackend"
	"github.com/conveyorhq/conveyor/backends/sqlitebackend"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

// onlyCore is the memory backend seen through backends.Backend alone: a
// backend without FairReserver, as AMQP is.
type onlyCore struct{ backends.Backend }

// A fair queue on a backend that cannot serve it fairly is refused at
// Start and at Reconfigure, with job.ErrUnsupported: never served unfairly.
func TestFairRefusedWithoutCapability(t *testing.T) {
	ctx := context.Background()
	b := onlyCore{membackend.New(membackend.Config{})}
	fair := []worker.QueueConfig{{Name: "reports", Fair: true}}

	w := worker.New(b, worker.Config{Queues: fair})
	worker.Register(w, BuildReport, func(context.Context, TenantReport) (queue.None, error) { return queue.None{}, nil })
	if err := w.Start(ctx); !errors.Is(err, job.ErrUnsupported) {
		t.Fatalf("Start with a fair queue on %T: %v, want job.ErrUnsupported", b, err)
	}

	w = worker.New(b, worker.Config{Queues: []worker.QueueConfig{{Name: "reports"}}})
	worker.Register(w, BuildReport, func(context.Context, TenantReport) (queue.None, error) { return queue.None{}, nil })
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer w.Stop(ctx)
	if err := w.Reconfigure(worker.LiveConfig{Queues: fair}); !errors.Is(err, job.ErrUnsupported) {
		t.Fatalf("Reconfigure to a fair queue on %T: %v, want job.ErrUnsupported", b, err)
	}
	c := queue.NewClient(b, queue.Config{})
	if _, err := BuildReport.Enqueue(ctx, c, TenantReport{Tenant: "A"}, nil); err != nil {
		t.Fatal(err)
	}
	inline := worker.New(b, worker.Config{Queues: fair})
	worker.Register(inline, BuildReport, func(context.Context, TenantReport) (queue.None, error) { return queue.None{}, nil })
	if _, err := inline.WorkDue(ctx); !errors.Is(err, job.ErrUnsupported) {
		t.Fatalf("WorkDue of a fair queue on %T: %v, want job.ErrUnsupported", b, err)
	}
}

// The workload of issue 17 through a running worker: tenant A enqueues
// 50,000 no-op jobs (5,000 on SQLite), then tenant B enqueues 10, into a
// fair queue; B's 10 all start before A's next 1,000 do. The test logs the bound measured:
// how many of A's started before B's last.
func TestFairWorkerStartsQuietTenant(t *testing.T) {
	ctx := context.Background()
	sq, err := sqlitebackend.Open(ctx, sqlitebackend.Config{Path: filepath.Join(t.TempDir(), "fair.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sq.Close() })
	t.Run("memory", func(t *testing.T) { fairWorker(t, membackend.New(membackend.Config{}), 50_000) })
	// 5,000 on SQLite: 50,000 inserts take minutes under the race
	// detector (the conformance suite's case has the full workload).
	t.Run("sqlite", func(t *testing.T) { fairWorker(t, sq, 5_000) })
}

func fairWorker(t *testing.T, b backends.Backend, backlog int) {
	ctx := context.Background()
	const quiet = 10
	c := queue.NewClient(b, queue.Config{})
	for done := 0; done < backlog; done += 1000 {
		reqs := make([]queue.Request, 1000)
		for i := range reqs {
			reqs[i] = BuildReport.Request(TenantReport{Tenant: "A"}, &queue.EnqueueOptions{Key: "A"})
		}
		if _, err := c.EnqueueMany(ctx, reqs...); err != nil {
			t.Fatal(err)
		}
	}
	reqs := make([]queue.Request, quiet)
	for i := range reqs {
		reqs[i] = BuildReport.Request(TenantReport{Tenant: "B"}, &queue.EnqueueOptions{Key: "B"})
	}
	if _, err := c.EnqueueMany(ctx, reqs...); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	aBefore, bStarted := 0, 0
	allB := make(chan struct{})
	w := worker.New(b, worker.Config{Queues: []worker.QueueConfig{{Name: "reports", Fair: true}}, Concurrency: 10, PollInterval: 10 * time.Millisecond})
	worker.Register(w, BuildReport, func(_ context.Context, r TenantReport) (queue.None, error) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case r.Tenant == "B":
			if bStarted++; bStarted == quiet {
				close(allB)
			}
		case bStarted < quiet:
			aBefore++
		}
		return queue.None{}, nil
	})
	start := time.Now()
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer w.Stop(ctx)
	select {
	case <-allB:
	case <-time.After(time.Minute):
		t.Fatalf("B's %d jobs did not all start within a minute", quiet)
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("fair worker: %d of A's %d jobs started before B's %d had all started (%v after Start)", aBefore, backlog, quiet, time.Since(start).Round(time.Millisecond))
	if aBefore >= 1000 {
		t.Fatalf("%d of A's jobs started before B's %d: want fewer than 1,000", aBefore, quiet)
	}
}

// A fair queue's weights reach the backend: with tenant A of weight 3,
// one job at a time, A starts three jobs for each of B's while both have
// jobs waiting.
func TestFairWorkerWeights(t *testing.T) {
	ctx := context.Background()
	b := membackend.New(membackend.Config{})
	c := queue.NewClient(b, queue.Config{})
	var reqs []queue.Request
	for _, tenant := range []string{"A", "B"} {
		for range 30 {
			reqs = append(reqs, BuildReport.Request(TenantReport{Tenant: tenant}, &queue.EnqueueOptions{Key: tenant}))
		}
	}
	if _, err := c.EnqueueMany(ctx, reqs...); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var started []string
	first40 := make(chan struct{})
	w := worker.New(b, worker.Config{Queues: []worker.QueueConfig{{Name: "reports", Fair: true, FairWeights: map[string]int{"A": 3}}},
		Concurrency: 1, PollInterval: 10 * time.Millisecond})
	worker.Register(w, BuildReport, func(_ context.Context, r TenantReport) (queue.None, error) {
		mu.Lock()
		defer mu.Unlock()
		if started = append(started, r.Tenant); len(started) == 40 {
			close(first40)
		}
		return queue.None{}, nil
	})
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer w.Stop(ctx)
	select {
	case <-first40:
	case <-time.After(time.Minute):
		t.Fatal("40 jobs did not start within a minute")
	}
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(started[:8], ""); got != "AAABAAAB" {
		t.Fatalf("first starts %s, want AAABAAAB", got)
	}
	if a := strings.Count(strings.Join(started[:40], ""), "A"); a != 30 {
		t.Fatalf("%d of the first 40 starts were A's, want 30 (weight 3 to 1)", a)
	}
}
