package queue_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/sqlitebackend"
	"github.com/conveyorhq/conveyor/queue"
)

// fill enqueues until the queue refuses, and returns how many it took.
func fill(t *testing.T, c *queue.Client, task *queue.Task[Args, queue.None]) int {
	t.Helper()
	for n := 0; n < 100; n++ {
		if _, err := task.Enqueue(context.Background(), c, Args{}, nil); errors.Is(err, queue.ErrQueueFull) {
			return n
		} else if err != nil {
			t.Fatal(err)
		}
	}
	t.Fatal("the queue took 100 jobs: no bound")
	return 0
}

// A queue's bound is defined once in code and stored in the backend: every
// client obeys it, also one that does not define the queue (the CLI, an
// old deploy); an operator's bound wins over the code's, also over a later
// deploy's, until cleared.
func TestQueueDefinedOnceStoredInTheBackend(t *testing.T) {
	ctx := context.Background()
	b, err := sqlitebackend.Open(ctx, sqlitebackend.Config{Path: filepath.Join(t.TempDir(), "q.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	reports := queue.NewQueue("reports", queue.QueueOptions{MaxDepth: 2})
	task := queue.NewTask[Args, queue.None]("reports.build", queue.TaskOptions{Queue: reports.Name()})
	web := queue.NewClient(b, queue.Config{Queues: []*queue.Queue{reports}})
	if n := fill(t, web, task); n != 2 {
		t.Fatalf("the defining client took %d jobs, want its bound of 2", n)
	}
	other := queue.NewClient(b, queue.Config{}) // defines no queue
	if n := fill(t, other, task); n != 0 {
		t.Fatalf("a client that does not define the queue took %d more jobs past the stored bound", n)
	}

	if err := other.SetQueue(ctx, "reports", &queue.QueueOptions{MaxDepth: 5}); err != nil {
		t.Fatal(err)
	}
	if n := fill(t, other, task); n != 3 {
		t.Fatalf("after the operator raised the bound to 5, %d more jobs went in, want 3", n)
	}
	// A new deploy defines the queue anew: its bound is stored as the
	// code's, the operator's still holds.
	deploy := queue.NewClient(b, queue.Config{Queues: []*queue.Queue{queue.NewQueue("reports", queue.QueueOptions{MaxDepth: 7})}})
	if n := fill(t, deploy, task); n != 0 {
		t.Fatalf("a new deploy's client took %d jobs past the operator's bound", n)
	}
	st, err := deploy.QueueSettings(ctx, "reports")
	if err != nil || len(st) != 1 || st[0].Code.MaxDepth != 7 || st[0].Operator == nil || st[0].Effective().MaxDepth != 5 {
		t.Fatalf("stored settings = %+v, %v; want the code's 7 and the operator's 5 in force", st, err)
	}
	if got := deploy.QueueOptions(ctx, "reports").MaxDepth; got != 5 {
		t.Fatalf("QueueOptions gives a bound of %d; want the operator's 5", got)
	}
	if err := deploy.SetQueue(ctx, "reports", nil); err != nil {
		t.Fatal(err)
	}
	if got := deploy.QueueOptions(ctx, "reports").MaxDepth; got != 7 {
		t.Fatalf("with the operator's bound cleared, QueueOptions gives %d; want the code's 7", got)
	}
	if n := fill(t, deploy, task); n != 2 {
		t.Fatalf("with the operator's bound cleared, %d more jobs went in, want 2 (the code's 7)", n)
	}
	all, err := other.QueueSettings(ctx, "")
	if err != nil || len(all) != 1 || all[0].Queue != "reports" {
		t.Fatalf("all settings = %+v, %v", all, err)
	}
	if err := other.SetQueue(ctx, "reports", &queue.QueueOptions{MaxDepth: -1}); !errors.Is(err, queue.ErrInvalid) {
		t.Fatalf("a negative bound: %v, want ErrInvalid", err)
	}
}

// noKV hides the backend's KVStore: the code's definition is all there is.
type noKV struct{ backends.Backend }

func TestQueueWithoutStoredSettingsUsesTheCode(t *testing.T) {
	b, err := sqlitebackend.Open(context.Background(), sqlitebackend.Config{Path: filepath.Join(t.TempDir(), "q.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	q := queue.NewQueue("plain", queue.QueueOptions{MaxDepth: 1})
	task := queue.NewTask[Args, queue.None]("plain.job", queue.TaskOptions{Queue: q.Name()})
	c := queue.NewClient(noKV{b}, queue.Config{Queues: []*queue.Queue{q}})
	if n := fill(t, c, task); n != 1 {
		t.Fatalf("took %d jobs, want the code's bound of 1", n)
	}
	if _, err := c.QueueSettings(context.Background(), ""); !errors.Is(err, queue.ErrUnsupported) {
		t.Fatalf("QueueSettings without a KVStore = %v, want ErrUnsupported", err)
	}
}
