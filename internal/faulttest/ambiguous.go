package faulttest

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
)

type markArgs struct{ Mark string }

// AmbiguousEnqueue checks what a client reports when an enqueue reached
// the server but its reply was lost. b talks to the server through px.
//
// While the server stays unreachable, the enqueue fails with
// queue.ErrOutcomeUnknown naming the job's ID, and the job is found once
// the server is back; enqueueing again with that ID (EnqueueOptions.ID)
// returns the stored job instead of making a second one. When the server
// answers again at once, the client's own retry finds the job its first
// attempt stored and reports it as enqueued, not as a duplicate.
func AmbiguousEnqueue(t *testing.T, b backends.Backend, px *Proxy, q string) {
	ctx := context.Background()
	task := queue.NewTask[markArgs, queue.None]("ambiguous.job", queue.TaskOptions{Queue: q})
	c := queue.NewClient(b, queue.Config{})

	px.CutReplyTo("mark-stays-down", true)
	_, err := task.Enqueue(ctx, c, markArgs{Mark: "mark-stays-down"}, &queue.EnqueueOptions{ID: "ambiguous-1"})
	var oue *queue.OutcomeUnknownError
	if !errors.Is(err, queue.ErrOutcomeUnknown) || !errors.As(err, &oue) || !slices.Equal(oue.IDs, []string{"ambiguous-1"}) {
		t.Fatalf("enqueue whose reply was lost: err = %v, want ErrOutcomeUnknown naming ambiguous-1", err)
	}
	px.Heal()
	if rec, err := c.Job(ctx, "ambiguous-1"); err != nil || rec.State != job.Pending {
		t.Fatalf("the job whose reply was lost: %+v, %v; want it stored and pending", rec, err)
	}
	h, err := task.Enqueue(ctx, c, markArgs{Mark: "again"}, &queue.EnqueueOptions{ID: "ambiguous-1"})
	if err != nil || !h.Duplicate || h.ID != "ambiguous-1" {
		t.Fatalf("enqueue again with the same ID = %+v, %v; want the stored job as a duplicate", h, err)
	}

	px.CutReplyTo("mark-comes-back", false)
	h, err = task.Enqueue(ctx, c, markArgs{Mark: "mark-comes-back"}, nil)
	if err != nil || h.Duplicate {
		t.Fatalf("enqueue retried after a lost reply = %+v, %v; want enqueued, not a duplicate", h, err)
	}
	if st := pendingIn(t, b, q); st != 2 {
		t.Fatalf("%d jobs pending in %s, want 2: a lost reply made a second job", st, q)
	}
}

func pendingIn(t *testing.T, b backends.Backend, q string) int {
	t.Helper()
	in, ok := b.(backends.Inspector)
	if !ok {
		t.Fatalf("%T cannot count jobs", b)
	}
	st, err := in.QueueStats(context.Background(), backends.QueueStatsParams{Queue: q})
	if err != nil || len(st) != 1 {
		t.Fatalf("QueueStats(%s) = %v, %v", q, st, err)
	}
	return st[0].Counts[job.Pending]
}
