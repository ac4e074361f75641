package queue_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/membackend"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
)

type Args struct {
	To string `json:"to"`
}

var send = queue.NewTask[Args, queue.None]("email.send", queue.TaskOptions{Queue: "email", Priority: 2})

func TestEnqueueAppliesOptions(t *testing.T) {
	b := membackend.New(membackend.Config{})
	c := queue.NewClient(b, queue.Config{})
	ctx := context.Background()
	h, err := send.Enqueue(ctx, c, Args{To: "a@example.com"}, &queue.EnqueueOptions{
		Delay: time.Hour, Headers: map[string]string{"traceparent": "t"}, Timeout: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := h.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.State != job.Scheduled || r.Queue != "email" || r.Priority != 2 || r.Headers["traceparent"] != "t" ||
		r.Timeout != time.Minute || r.MaxDeliveries != 25 || string(r.Payload) != `{"to":"a@example.com"}` {
		t.Fatalf("stored job %+v", r)
	}
	if until := time.Until(r.RunAt); until < 59*time.Minute {
		t.Fatalf("run at in %v, want an hour", until)
	}
	if _, err := h.Result(ctx); !errors.Is(err, job.ErrNotFinished) {
		t.Fatalf("Result of a scheduled job = %v", err)
	}
}

func TestBadInputFailsAtEnqueue(t *testing.T) {
	b := membackend.New(membackend.Config{})
	c := queue.NewClient(b, queue.Config{MaxPayloadBytes: 64})
	ctx := context.Background()
	unencodable := queue.NewTask[chan int, queue.None]("bad.args", queue.TaskOptions{})
	if _, err := unencodable.Enqueue(ctx, c, make(chan int), nil); err == nil || !strings.Contains(err.Error(), "encode arguments") {
		t.Fatalf("unencodable args: %v", err)
	}
	_, err := send.Enqueue(ctx, c, Args{To: strings.Repeat("x", 100)}, nil)
	if !errors.Is(err, queue.ErrPayloadTooLarge) {
		t.Fatalf("oversized payload: %v", err)
	}
	if _, err := c.EnqueueMany(ctx, send.RawRequest([]byte(`{"to": 5}`), nil)); !errors.Is(err, job.ErrMalformedPayload) {
		t.Fatalf("raw payload of the wrong type: %v", err)
	}
	// A batch with one bad request inserts nothing.
	if _, err := c.EnqueueMany(ctx, send.Request(Args{To: "ok"}, nil), send.Request(Args{To: strings.Repeat("x", 100)}, nil)); err == nil {
		t.Fatal("batch with an oversized request succeeded")
	}
	if st, _ := b.QueueStats(ctx, backends.QueueStatsParams{}); len(st) != 0 {
		t.Fatalf("bad enqueues left jobs behind: %+v", st)
	}
}

func TestUniqueByArgs(t *testing.T) {
	c := queue.NewClient(membackend.New(membackend.Config{}), queue.Config{})
	ctx := context.Background()
	report := queue.NewTask[Args, queue.None]("report", queue.TaskOptions{Unique: &queue.UniqueOptions{Window: time.Hour}})
	a, err := report.Enqueue(ctx, c, Args{To: "x"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := report.Enqueue(ctx, c, Args{To: "x"}, nil)
	if err != nil || !b.Duplicate || b.ID != a.ID {
		t.Fatalf("second enqueue = %+v, %v; want a duplicate of %s", b, err, a.ID)
	}
	other, err := report.Enqueue(ctx, c, Args{To: "y"}, nil)
	if err != nil || other.Duplicate {
		t.Fatalf("different args = %+v, %v", other, err)
	}
	byKey, err := report.Enqueue(ctx, c, Args{To: "z"}, &queue.EnqueueOptions{UniqueKey: "x-report"})
	if err != nil || byKey.Duplicate {
		t.Fatalf("explicit key = %+v, %v", byKey, err)
	}
}

func TestBoundedQueueRejects(t *testing.T) {
	c := queue.NewClient(membackend.New(membackend.Config{}), queue.Config{Queues: []*queue.Queue{queue.NewQueue("email", queue.QueueOptions{MaxDepth: 2})}})
	ctx := context.Background()
	for range 2 {
		if _, err := send.Enqueue(ctx, c, Args{}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := send.Enqueue(ctx, c, Args{}, nil); !errors.Is(err, queue.ErrQueueFull) {
		t.Fatalf("third enqueue = %v, want ErrQueueFull", err)
	}
	// Other queues are not bounded.
	other := queue.NewTask[Args, queue.None]("other", queue.TaskOptions{})
	if _, err := other.Enqueue(ctx, c, Args{}, nil); err != nil {
		t.Fatal(err)
	}
}

func TestBoundedQueueBlocksUntilRoom(t *testing.T) {
	b := membackend.New(membackend.Config{})
	c := queue.NewClient(b, queue.Config{Queues: []*queue.Queue{queue.NewQueue("email", queue.QueueOptions{MaxDepth: 1, WhenFull: queue.Block})}})
	ctx := context.Background()
	if _, err := send.Enqueue(ctx, c, Args{To: "first"}, nil); err != nil {
		t.Fatal(err)
	}
	// With no room, a blocked enqueue gives up when its context ends.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err := send.Enqueue(short, c, Args{}, nil)
	if !errors.Is(err, queue.ErrQueueFull) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("blocked enqueue past its deadline = %v", err)
	}
	// Once the first job finishes, the waiting enqueue goes through.
	var wg sync.WaitGroup
	wg.Add(1)
	var second *queue.Handle[queue.None]
	go func() {
		defer wg.Done()
		second, err = send.Enqueue(ctx, c, Args{To: "second"}, nil)
	}()
	recs, rerr := b.Reserve(ctx, backends.ReserveParams{Queue: "email", Limit: 1, Lease: time.Minute})
	if rerr != nil || len(recs) != 1 {
		t.Fatal(rerr)
	}
	if err := b.Complete(ctx, backends.CompleteParams{Lease: recs[0].Lease}); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if err != nil || second == nil {
		t.Fatalf("blocked enqueue = %v", err)
	}
}

func TestCancelPending(t *testing.T) {
	c := queue.NewClient(membackend.New(membackend.Config{}), queue.Config{})
	ctx := context.Background()
	h, err := send.Enqueue(ctx, c, Args{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := c.Cancel(ctx, h.ID); err != nil || st != job.Cancelled {
		t.Fatalf("Cancel = %s, %v", st, err)
	}
	if _, err := h.Wait(ctx); !errors.Is(err, job.ErrCancelled) {
		t.Fatalf("Wait on a cancelled job = %v", err)
	}
	if _, err := c.Job(ctx, "no-such-job"); !errors.Is(err, queue.ErrNotFound) {
		t.Fatalf("Job(unknown) = %v", err)
	}
}
