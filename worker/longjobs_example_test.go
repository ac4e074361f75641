package worker_test

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/conveyorhq/conveyor/backends/membackend"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/retry"
	"github.com/conveyorhq/conveyor/worker"
)

type ExportArgs struct {
	Pages int `json:"pages"`
}

var ExportReport = queue.NewTask[ExportArgs, int]("reports.export", queue.TaskOptions{})

// A handler reports how far it is; the web app reads it by job ID.
func ExampleProgress() {
	b := membackend.New(membackend.Config{})
	w := worker.New(b, worker.Config{})
	worker.Register(w, ExportReport, func(ctx context.Context, a ExportArgs) (int, error) {
		for p := 1; p <= a.Pages; p++ {
			// Cheap in a loop: at most one backend write per ProgressEvery.
			msg := fmt.Sprintf("page %d of %d", p, a.Pages)
			if err := worker.Progress(ctx, job.Progress{Fraction: float64(p) / float64(a.Pages), Message: msg}); err != nil {
				return 0, err
			}
		}
		return a.Pages, nil
	})
	ctx := context.Background()
	client := queue.NewClient(b, queue.Config{})
	h, _ := ExportReport.Enqueue(ctx, client, ExportArgs{Pages: 4}, nil)
	_, _ = w.WorkDue(ctx)
	p, _ := h.Progress(ctx) // the web app's view, by job ID
	fmt.Println(p.Fraction, p.Message)
	// Output: 1 page 4 of 4
}

type Cursor struct {
	Row int `json:"row"`
}

// Import retries at once, so that WorkDue below runs both attempts.
var Import = queue.NewTask[ExportArgs, int]("data.import", queue.TaskOptions{
	Retry: &retry.Policy{Stop: retry.StopAfterAttempt(3), Wait: retry.WaitFixed(0)},
})

// A checkpoint survives the failed attempt: the retry continues from it.
func ExampleCheckpoint() {
	b := membackend.New(membackend.Config{})
	w := worker.New(b, worker.Config{Logger: slog.New(slog.DiscardHandler)})
	worker.Register(w, Import, func(ctx context.Context, a ExportArgs) (int, error) {
		c, ok, err := worker.LastCheckpoint[Cursor](ctx)
		if err != nil {
			return 0, err
		}
		fmt.Println("resuming:", ok, "from row", c.Row)
		for c.Row < 300 {
			c.Row += 100 // ... import rows c.Row-100 to c.Row
			if err := worker.Checkpoint(ctx, c); err != nil {
				return 0, err
			}
			if c.Row == 200 && !ok {
				return 0, fmt.Errorf("the database went away") // the first attempt fails here
			}
		}
		return c.Row, nil
	})
	ctx := context.Background()
	client := queue.NewClient(b, queue.Config{})
	h, _ := Import.Enqueue(ctx, client, ExportArgs{}, nil)
	n, _ := w.WorkDue(ctx) // the first attempt fails after row 200, the retry resumes
	rows, _ := h.Result(ctx)
	r, _ := h.Status(ctx)
	fmt.Println("ran", n, "imported", rows, "attempts failed", r.Attempts())
	// Output:
	// resuming: false from row 0
	// resuming: true from row 200
	// ran 2 imported 300 attempts failed 1
}

var Reindex = queue.NewTask[ExportArgs, int]("search.reindex", queue.TaskOptions{})

// Iterate checkpoints the cursor after each batch; a drain stops it
// after the current one, and the job resumes elsewhere from there.
func ExampleIterate() {
	b := membackend.New(membackend.Config{})
	w := worker.New(b, worker.Config{})
	worker.Register(w, Reindex, func(ctx context.Context, a ExportArgs) (int, error) {
		err := worker.Iterate(ctx, func(ctx context.Context, page int) (int, bool, error) {
			fmt.Println("reindexing page", page) // one batch: page's documents
			next := page + 1
			return next, next == a.Pages, nil
		})
		return a.Pages, err
	})
	ctx := context.Background()
	client := queue.NewClient(b, queue.Config{})
	h, _ := Reindex.Enqueue(ctx, client, ExportArgs{Pages: 3}, nil)
	_, _ = w.WorkDue(ctx)
	n, _ := h.Notes(ctx)
	fmt.Println("checkpoint", string(n.Checkpoint))
	// Output:
	// reindexing page 0
	// reindexing page 1
	// reindexing page 2
	// checkpoint 3
}
