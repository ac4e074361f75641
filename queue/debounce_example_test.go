package queue_test

import (
	"context"
	"fmt"
	"time"

	"github.com/conveyorhq/conveyor/backends/membackend"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

// Three edits of one document in quick succession make one re-index, run
// with the last revision once the document has been quiet for the window.
func ExampleDebounce() {
	b := membackend.New(membackend.Config{})
	reindex := queue.NewTask[string, string]("search.reindex", queue.TaskOptions{Queue: "search"})
	client := queue.NewClient(b, queue.Config{})
	ctx := context.Background()

	opts := &queue.EnqueueOptions{Debounce: &queue.Debounce{Key: "doc-42", Window: 100 * time.Millisecond, MaxWait: 5 * time.Second}}
	var first *queue.Handle[string]
	for _, rev := range []string{"rev1", "rev2", "rev3"} {
		h, err := reindex.Enqueue(ctx, client, rev, opts)
		if err != nil {
			panic(err)
		}
		if first == nil {
			first = h
		}
		fmt.Println(rev, "same job:", h.ID == first.ID, "replaced:", h.Duplicate)
	}

	w := worker.New(b, worker.Config{Queues: []worker.QueueConfig{{Name: "search"}}})
	worker.Register(w, reindex, func(_ context.Context, rev string) (string, error) { return "indexed " + rev, nil })
	if err := w.Start(ctx); err != nil {
		panic(err)
	}
	defer func() { _ = w.Stop(ctx) }()
	fmt.Println(first.Wait(ctx))
	// Output:
	// rev1 same job: true replaced: false
	// rev2 same job: true replaced: true
	// rev3 same job: true replaced: true
	// indexed rev3 <nil>
}
