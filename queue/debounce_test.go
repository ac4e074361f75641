package queue_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/membackend"
	"github.com/conveyorhq/conveyor/queue"
)

// plain is a backend with only the core contract, as a broker without
// Debouncer is.
type plain struct{ backends.Backend }

func TestDebounceRefusals(t *testing.T) {
	ctx := context.Background()
	task := queue.NewTask[int, queue.None]("deb.refusals", queue.TaskOptions{})
	deb := func(o queue.EnqueueOptions) *queue.EnqueueOptions {
		o.Debounce = &queue.Debounce{Key: "k", Window: time.Minute}
		return &o
	}
	c := queue.NewClient(membackend.New(membackend.Config{}), queue.Config{})
	for name, opts := range map[string]*queue.EnqueueOptions{
		"no key":     {Debounce: &queue.Debounce{Window: time.Minute}},
		"no window":  {Debounce: &queue.Debounce{Key: "k"}},
		"unique key": deb(queue.EnqueueOptions{UniqueKey: "u"}),
		"run at":     deb(queue.EnqueueOptions{Delay: time.Second}),
	} {
		if _, err := task.Enqueue(ctx, c, 1, opts); !errors.Is(err, queue.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if _, err := c.EnqueueMany(ctx, task.Request(1, deb(queue.EnqueueOptions{})), task.Request(2, nil)); !errors.Is(err, queue.ErrInvalid) {
		t.Errorf("a debounced request in a batch: %v, want ErrInvalid", err)
	}
	noDeb := queue.NewClient(plain{membackend.New(membackend.Config{})}, queue.Config{})
	if _, err := task.Enqueue(ctx, noDeb, 1, deb(queue.EnqueueOptions{})); !errors.Is(err, queue.ErrUnsupported) {
		t.Errorf("on a backend without Debouncer: %v, want ErrUnsupported", err)
	}
	h, err := task.Enqueue(ctx, c, 1, deb(queue.EnqueueOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	h2, err := task.Enqueue(ctx, c, 2, deb(queue.EnqueueOptions{}))
	if err != nil || h2.ID != h.ID || !h2.Duplicate {
		t.Fatalf("second enqueue = %+v, %v; want job %s replaced", h2, err, h.ID)
	}
	r, err := c.Job(ctx, h.ID)
	if err != nil || string(r.Payload) != "2" || r.UniqueKey != "" {
		t.Fatalf("job = %+v, %v; want the second arguments", r, err)
	}
}
