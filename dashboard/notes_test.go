package dashboard_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/conveyorhq/conveyor/dashboard"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

// A long job's notes (progress, checkpoint, kept log lines) are part of
// the one job's view, as the job page shows them.
func TestJobViewCarriesNotes(t *testing.T) {
	ctx := context.Background()
	b := openSQLite(t)
	c := queue.NewClient(b, queue.Config{})
	export := queue.NewTask[int, int]("report.export", queue.TaskOptions{})
	w := worker.New(b, worker.Config{})
	worker.Register(w, export, func(ctx context.Context, pages int) (int, error) {
		worker.Logger(ctx).Info("exporting", "pages", pages)
		if err := worker.Checkpoint(ctx, map[string]int{"page": 2}); err != nil {
			return 0, err
		}
		return pages, worker.Progress(ctx, job.Progress{Fraction: 0.5, Message: "page 2 of 4"})
	})
	h, err := export.Enqueue(ctx, c, 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WorkDue(ctx); err != nil {
		t.Fatal(err)
	}
	srv := serve(t, dashboard.Config{Backend: b})
	var v dashboard.JobView
	call(t, srv, "GET", "/api/jobs/"+h.ID, "", 200, &v)
	n := v.Notes
	if n == nil || n.Progress == nil || n.Progress.Fraction != 0.5 || n.Progress.Message != "page 2 of 4" {
		t.Fatalf("notes = %+v", n)
	}
	var cp map[string]int
	if err := json.Unmarshal(n.Checkpoint, &cp); err != nil || cp["page"] != 2 {
		t.Fatalf("checkpoint %s: %v", n.Checkpoint, err)
	}
	if len(n.Logs) != 1 || n.Logs[0].Msg != "exporting" {
		t.Fatalf("logs = %+v", n.Logs)
	}
}
