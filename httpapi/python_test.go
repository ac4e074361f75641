package httpapi_test

import (
	"context"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends/sqlitebackend"
	"github.com/conveyorhq/conveyor/httpapi"
	"github.com/conveyorhq/conveyor/internal/demo"
	"github.com/conveyorhq/conveyor/internal/testenv"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

// The README's Python example, run as it is with Debian's python3 and
// requests, against a live API and a worker: it enqueues, long-polls and
// prints the Go handler's result.
func TestPythonExample(t *testing.T) {
	python := testenv.Python(t)
	ctx := context.Background()
	b, err := sqlitebackend.Open(ctx, sqlitebackend.Config{Path: filepath.Join(t.TempDir(), "py.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c := queue.NewClient(b, queue.Config{})
	h, err := httpapi.New(httpapi.Config{Client: c, Tasks: demo.Tasks, BearerToken: "py-token"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	w := worker.New(b, worker.Config{PollInterval: 10 * time.Millisecond})
	demo.Register(w, nil)
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.Stop(ctx) }()

	out, err := exec.Command(python, filepath.Join("..", "examples", "python", "producer.py"), srv.URL, "py-token").CombinedOutput()
	if err != nil {
		t.Fatalf("producer.py: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "ada") {
		t.Fatalf("producer.py printed %q, want the greeting for ada", out)
	}
	r, err := c.Job(ctx, "greet-ada-1")
	if err != nil || r.Task != demo.Greet.Name() {
		t.Fatalf("the job Python enqueued: %+v, %v", r, err)
	}
}
