package workflow

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/membackend"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/worker"
)

// undone is a memory backend whose job id reads as running for its first
// reads, as after a store undid the job's end (a failover, a Redis restart
// under everysec) while the engine had already acted on it.
type undone struct {
	*membackend.Backend
	id    string
	reads atomic.Int64 // left to answer running
}

func (u *undone) GetJob(ctx context.Context, p backends.GetJobParams) (*job.Record, error) {
	rec, err := u.Backend.GetJob(ctx, p)
	if err == nil && p.ID == u.id && u.reads.Add(-1) >= 0 {
		again := *rec
		again.State = job.Running
		return &again, nil
	}
	return rec, err
}

// A callback that finds a member running though the record has it done
// waits for it (a snooze, no attempt used) and then gets every result,
// instead of being dead-lettered for it.
func TestCallbackWaitsForAMemberWhoseEndWasUndone(t *testing.T) {
	const id = "undone"
	b := &undone{Backend: membackend.New(membackend.Config{}), id: JobID(id, "m2")}
	b.reads.Store(1)
	c, e, w := rigOn(t, b) // its engine never reconciles: only the callback reads m2's job
	worker.Register(w, step, func(_ context.Context, a nArgs) (int, error) { return a.N, nil })
	registerSum(w)
	ctx := running(t, e, w)

	root := Chord(Task("sum", sumStep, nArgs{}, nil), Task("m1", step, nArgs{1}, nil), Task("m2", step, nArgs{2}, nil))
	if _, err := Enqueue(ctx, c, root, &Options{ID: id}); err != nil {
		t.Fatal(err)
	}
	outs, err := Wait(ctx, c, id)
	if err != nil {
		t.Fatal(err)
	}
	var got int
	if err := outs[0].Decode(&got); err != nil || got != 3 {
		t.Fatalf("sum = %d (%v); want 3", got, err)
	}
	if b.reads.Load() >= 0 {
		t.Fatal("the callback never read m2 as running")
	}
	rec, err := c.Job(ctx, JobID(id, "sum"))
	if err != nil {
		t.Fatal(err)
	}
	if rec.Attempts() != 0 {
		t.Fatalf("callback: %d failed attempts (%v); want a snooze, which uses none", rec.Attempts(), rec.Errors)
	}
}
