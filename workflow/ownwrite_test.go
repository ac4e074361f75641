package workflow

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/membackend"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
)

// retriedWrites is a backend whose client retried a state write after
// losing its reply (go-redis does on a dropped connection): the first
// write of each workflow's state is applied, and the answer is the
// conflict the retry met with it.
type retriedWrites struct {
	*membackend.Backend
	armed atomic.Bool
}

func (b *retriedWrites) PutKV(ctx context.Context, p backends.PutKVParams) (int64, error) {
	v, err := b.Backend.PutKV(ctx, p)
	if err == nil && strings.HasPrefix(p.Key, keyPrefix) && b.armed.CompareAndSwap(true, false) {
		return 0, job.ErrConflict
	}
	return v, err
}

// A conflict on a state write may be the writer's own write, applied and
// retried: the spec the stored state names is kept, and the workflow runs
// (found by the chord chaos test, internal/chaos, on a restarted server).
func TestConflictWithOwnWriteKeepsTheSpec(t *testing.T) {
	ctx := context.Background()
	b := &retriedWrites{Backend: membackend.New(membackend.Config{})}
	c := queue.NewClient(b, queue.Config{})

	b.armed.Store(true)
	if _, err := Enqueue(ctx, c, chainOfTwo(), &Options{ID: "w1"}); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	if in, err := Status(ctx, c, "w1"); err != nil || in.State != Running {
		t.Fatalf("after Enqueue met its own write: status %+v, %v; want running", in, err)
	}

	if _, err := Enqueue(ctx, c, chainOfTwo(), &Options{ID: "w2"}); err != nil {
		t.Fatal(err)
	}
	b.armed.Store(true)
	if err := Add(ctx, c, "w2", Task("c", step, nArgs{3}, nil), nil); err != nil {
		t.Fatalf("Add: %v", err)
	}
	in, err := Status(ctx, c, "w2")
	if err != nil || len(in.Steps) != 3 {
		t.Fatalf("after Add met its own write: status %+v, %v; want 3 steps", in, err)
	}

}
