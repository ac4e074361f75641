package workflow

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/membackend"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

// Workflows that finish in one round of advances (written together, on a
// backends.KVBatcher) lose their open markers, and their records and
// specs get their expiries, each spec a minute after its record.
func TestFinishedWorkflowsExpireWithTheirSpecs(t *testing.T) {
	ctx := context.Background()
	b := membackend.New(membackend.Config{})
	c := queue.NewClient(b, queue.Config{})
	e, err := NewEngine(c, Config{})
	if err != nil {
		t.Fatal(err)
	}
	w := worker.New(b, e.Install(worker.Config{
		Queues: []worker.QueueConfig{{Name: "wf"}}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}))
	worker.Register(w, step, func(_ context.Context, a nArgs) (int, error) { return a.N, nil })
	var reqs []Request
	for i := range 5 {
		reqs = append(reqs, Request{Root: chainOfTwo(), Options: &Options{ID: fmt.Sprint("f", i)}})
	}
	if _, err := EnqueueMany(ctx, c, reqs...); err != nil {
		t.Fatal(err)
	}
	if _, err := e.WorkDue(ctx, w); err != nil {
		t.Fatal(err)
	}
	if ids := open(t, c); len(ids) != 0 {
		t.Fatalf("finished workflows %v are still marked open", ids)
	}
	kvs, err := b.ListKV(ctx, backends.ListKVParams{Prefix: "workflow"})
	if err != nil {
		t.Fatal(err)
	}
	expires := map[string]time.Time{}
	for _, kv := range kvs {
		expires[kv.Key] = kv.ExpiresAt
	}
	for _, r := range reqs {
		id := r.Options.ID
		in, err := Status(ctx, c, id)
		if err != nil || in.State != Done {
			t.Fatalf("workflow %s: %+v, %v; want done", id, in, err)
		}
		state := expires[key(id)]
		if want := in.Finished.Add(DefaultKeepFinished); !state.Equal(want) {
			t.Fatalf("workflow %s's record expires at %v; want %v", id, state, want)
		}
		var specs []time.Time
		for k, at := range expires {
			if strings.HasPrefix(k, specPrefix+id+"/") {
				specs = append(specs, at)
			}
		}
		if len(specs) != 1 || !specs[0].Equal(state.Add(time.Minute)) {
			t.Fatalf("workflow %s's specs expire at %v; want one, at %v", id, specs, state.Add(time.Minute))
		}
	}
}
