package worker_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/membackend"
	"github.com/conveyorhq/conveyor/backends/sqlitebackend"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/retry"
	"github.com/conveyorhq/conveyor/worker"
)

// countingAnnotator counts the notes writes per job on a real backend.
type countingAnnotator struct {
	*membackend.Backend
	mu     sync.Mutex
	writes map[string]int
}

func (c *countingAnnotator) Annotate(ctx context.Context, p backends.AnnotateParams) error {
	c.mu.Lock()
	c.writes[p.Lease.JobID]++
	c.mu.Unlock()
	return c.Backend.Annotate(ctx, p)
}

var Report = queue.NewTask[Args, queue.None]("test.report", queue.TaskOptions{})

// TestProgressThrottled: 100 running jobs each report progress 1,000
// times in a tight loop; with an interval longer than the test, each
// costs at most two writes (the first report at once, the last at the
// end), and every job's stored progress is its last, 1.0.
func TestProgressThrottled(t *testing.T) {
	b := &countingAnnotator{Backend: membackend.New(membackend.Config{}), writes: map[string]int{}}
	w := worker.New(b, worker.Config{Concurrency: 100, ProgressEvery: time.Hour, PollInterval: 10 * time.Millisecond})
	var started sync.WaitGroup
	started.Add(100)
	worker.Register(w, Report, func(ctx context.Context, a Args) (queue.None, error) {
		started.Done()
		started.Wait() // all 100 run at once
		for i := 1; i <= 1000; i++ {
			if err := worker.Progress(ctx, job.Progress{Fraction: float64(i) / 1000, Message: fmt.Sprint("step ", i)}); err != nil {
				return queue.None{}, err
			}
		}
		return queue.None{}, nil
	})
	c := queue.NewClient(b, queue.Config{})
	ctx := context.Background()
	var reqs []queue.Request
	for i := range 100 {
		reqs = append(reqs, Report.Request(Args{N: i}, nil))
	}
	refs, err := c.EnqueueMany(ctx, reqs...)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.Stop(ctx) }()
	for _, r := range refs {
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		rec, err := c.WaitFinished(wctx, r.ID)
		cancel()
		if err != nil || rec.State != job.Done {
			t.Fatalf("job %s: %v, %v", r.ID, rec, err)
		}
		n, err := c.Notes(ctx, r.ID)
		if err != nil || n.Progress == nil || n.Progress.Fraction != 1 || n.Progress.Message != "step 1000" {
			t.Fatalf("job %s progress %+v, %v; want the last report", r.ID, n.Progress, err)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	total := 0
	for id, n := range b.writes {
		if n > 2 {
			t.Errorf("job %s: %d writes for 1,000 reports within one interval; want at most 2", id, n)
		}
		total += n
	}
	t.Logf("100,000 progress reports cost %d backend writes", total)
}

// TestProgressReaderSeesItRise: a reader polling by ID sees the
// fraction rise, never fall, to 1.0, then the result.
func TestProgressReaderSeesItRise(t *testing.T) {
	b := membackend.New(membackend.Config{})
	w := worker.New(b, worker.Config{ProgressEvery: time.Millisecond, PollInterval: 10 * time.Millisecond})
	seen := make(chan float64, 100)
	task := queue.NewTask[Args, int]("test.rise", queue.TaskOptions{})
	worker.Register(w, task, func(ctx context.Context, a Args) (int, error) {
		for i := 1; i <= 10; i++ {
			want := float64(i) / 10
			if err := worker.Progress(ctx, job.Progress{Fraction: want}); err != nil {
				return 0, err
			}
			for f := range seen { // the reader saw this step
				if f >= want {
					break
				}
			}
		}
		return 42, nil
	})
	c := queue.NewClient(b, queue.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, err := task.Enqueue(ctx, c, Args{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.Stop(context.Background()) }()
	var fractions []float64
	res, err := h.WaitProgress(ctx, time.Millisecond, func(p job.Progress) {
		fractions = append(fractions, p.Fraction)
		seen <- p.Fraction
	})
	if err != nil || res != 42 {
		t.Fatalf("result %d, %v", res, err)
	}
	for i := 1; i < len(fractions); i++ {
		if fractions[i] < fractions[i-1] {
			t.Fatalf("progress fell: %v", fractions)
		}
	}
	if len(fractions) < 10 || fractions[len(fractions)-1] != 1 {
		t.Fatalf("reader saw %v; want every step up to 1", fractions)
	}
}

// TestJobLogsBounded: a handler writing 1,000,000 lines leaves the newest
// JobLogLines with the job, the rest counted as dropped, and the worker's
// heap does not grow with the lines.
func TestJobLogsBounded(t *testing.T) {
	b, err := sqlitebackend.Open(context.Background(), sqlitebackend.Config{Path: filepath.Join(t.TempDir(), "q.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.Close() }()
	w := worker.New(b, worker.Config{JobLogLines: 200, PollInterval: 10 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	task := queue.NewTask[Args, queue.None]("test.chatty", queue.TaskOptions{})
	const lines = 1_000_000
	var heapAt [2]uint64
	worker.Register(w, task, func(ctx context.Context, a Args) (queue.None, error) {
		log := worker.Logger(ctx).With("part", "export")
		for i := range lines {
			log.Info("row written", "row", i)
			if i == lines/10 || i == lines-1 {
				runtime.GC()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				heapAt[min(i/(lines/2), 1)] = ms.HeapAlloc
			}
		}
		return queue.None{}, nil
	})
	c := queue.NewClient(b, queue.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	h, err := task.Enqueue(ctx, c, Args{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.Stop(context.Background()) }()
	if _, err := h.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	n, err := h.Notes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(n.Logs) != 200 || n.LogsDropped != lines-200 {
		t.Fatalf("%d lines kept, %d dropped; want 200 and %d", len(n.Logs), n.LogsDropped, lines-200)
	}
	if last := n.Logs[199]; last.Msg != "row written" || last.Attrs != fmt.Sprintf("part=export row=%d", lines-1) || last.Level != "INFO" {
		t.Fatalf("last kept line %+v", last)
	}
	// 900,000 more lines buffered would be over 50 MB of heap.
	if grew := int64(heapAt[1]) - int64(heapAt[0]); grew > 8<<20 {
		t.Fatalf("the heap grew by %d bytes over 900,000 lines", grew)
	}
	t.Logf("heap after 100,000 lines %d bytes, after 1,000,000 %d", heapAt[0], heapAt[1])
}

// abandonCounter counts abandoned deliveries.
type abandonCounter struct {
	n    atomic.Int64
	once sync.Once
	at   chan struct{}
}

func (a *abandonCounter) Started(*job.Record) {}
func (a *abandonCounter) Finished(_ *job.Record, o worker.Outcome, _ time.Duration) {
	if o == worker.Abandoned {
		a.n.Add(1)
		a.once.Do(func() { close(a.at) })
	}
}

// TestIgnoredCancellation: worker A's handler ignores its timeout. Past
// the grace it is flagged and counted, its attempt recorded as timed out
// and its slot freed; worker B (another process's worth, on the same
// SQLite file) runs the retry while A's goroutine is still stuck, and
// what A returns at last does not overwrite B's result.
func TestIgnoredCancellation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	open := func() *sqlitebackend.Backend {
		b, err := sqlitebackend.Open(context.Background(), sqlitebackend.Config{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return b
	}
	task := queue.NewTask[Args, string]("test.stuck", queue.TaskOptions{
		Timeout: 50 * time.Millisecond,
		Retry:   &retry.Policy{Stop: retry.StopAfterAttempt(100), Wait: retry.WaitFixed(time.Millisecond)},
	})
	const grace = 100 * time.Millisecond
	obs := &abandonCounter{at: make(chan struct{})}
	unstick := make(chan struct{})
	var stuck atomic.Int64                // A's handlers started
	returned := make(chan struct{}, 1000) // and returned
	a := worker.New(open(), worker.Config{ID: "A", Concurrency: 1, CancelGrace: grace, PollInterval: 5 * time.Millisecond,
		Observer: obs, Logger: slog.New(slog.DiscardHandler)})
	worker.Register(a, task, func(ctx context.Context, _ Args) (string, error) {
		stuck.Add(1)
		defer func() { returned <- struct{}{} }()
		<-unstick // ignores ctx: the bug this guards against
		return "stale", nil
	})
	bw := worker.New(open(), worker.Config{ID: "B", PollInterval: 5 * time.Millisecond})
	worker.Register(bw, task, func(ctx context.Context, _ Args) (string, error) { return "fresh", nil })

	c := queue.NewClient(open(), queue.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h, err := task.Enqueue(ctx, c, Args{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	<-obs.at
	if a.Running() != 0 {
		t.Fatalf("A counts %d running jobs after abandoning its only one", a.Running())
	}
	if err := bw.Start(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := h.Wait(ctx)
	if err != nil || res != "fresh" {
		t.Fatalf("result %q, %v; want B's", res, err)
	}
	n, err := h.Notes(ctx)
	if err != nil || n.IgnoredCancel == nil || n.IgnoredCancel.Worker != "A" || n.IgnoredCancel.For < grace {
		t.Fatalf("notes %+v, %v; want the job flagged by A", n.IgnoredCancel, err)
	}
	if r, _ := h.Status(ctx); r.Attempts() < 1 || r.Errors[0].Error == "" {
		t.Fatalf("attempts %+v; want A's timeout recorded", r.Errors)
	}
	close(unstick) // A's goroutines return "stale" at last
	for range stuck.Load() {
		<-returned
	}
	_ = a.Stop(ctx)
	_ = bw.Stop(ctx)
	if res, err := h.Result(ctx); err != nil || res != "fresh" {
		t.Fatalf("after the stuck handlers returned: %q, %v; want B's result kept", res, err)
	}
	t.Logf("A abandoned %d deliveries; the first attempt error: %s", obs.n.Load(), func() string { r, _ := h.Status(ctx); return r.Errors[0].Error }())
}
