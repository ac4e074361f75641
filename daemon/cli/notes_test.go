package cli_test

import (
	"context"
	"strings"
	"testing"

	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

// jobs show prints a long job's progress, checkpoint and log lines.
func TestJobsShowPrintsNotes(t *testing.T) {
	ctx := context.Background()
	db, b := newDB(t)
	export := queue.NewTask[int, int]("report.export", queue.TaskOptions{})
	w := worker.New(b, worker.Config{})
	worker.Register(w, export, func(ctx context.Context, pages int) (int, error) {
		worker.Logger(ctx).Info("exporting", "pages", pages)
		if err := worker.Checkpoint(ctx, map[string]int{"page": 3}); err != nil {
			return 0, err
		}
		return pages, worker.Progress(ctx, job.Progress{Fraction: 0.75, Message: "page 3 of 4"})
	})
	h, err := export.Enqueue(ctx, queue.NewClient(b, queue.Config{}), 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WorkDue(ctx); err != nil {
		t.Fatal(err)
	}
	out := ok(t, "jobs", "show", h.ID, "--db", db)
	for _, want := range []string{"progress: 75% page 3 of 4", `"page": 3`, "INFO exporting pages=4"} {
		if !strings.Contains(out, want) {
			t.Errorf("jobs show does not print %q:\n%s", want, out)
		}
	}
}
