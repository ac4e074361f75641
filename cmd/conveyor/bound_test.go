package main

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/conveyorhq/conveyor/internal/demo"
	"github.com/conveyorhq/conveyor/queue"
)

// An operator changes a queue's bound without a deploy: the app's client
// obeys the stored bound, and `inspect bound` shows who set it.
func TestInspectBound(t *testing.T) {
	ctx := context.Background()
	db := filepath.Join(t.TempDir(), "bound.db")
	b, err := openBackend(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	app := queue.NewClient(b, queue.Config{Queues: []*queue.Queue{queue.NewQueue("default", queue.QueueOptions{MaxDepth: 1})}})
	if _, err := demo.Greet.Enqueue(ctx, app, demo.GreetArgs{Name: "a"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := demo.Greet.Enqueue(ctx, app, demo.GreetArgs{Name: "b"}, nil); !errors.Is(err, queue.ErrQueueFull) {
		t.Fatalf("second enqueue into a queue bounded to 1: %v", err)
	}
	var out bytes.Buffer
	if err := run(ctx, []string{"inspect", "-db", db, "bound", "default", "2"}, &out); err != nil {
		t.Fatal(err)
	}
	app = queue.NewClient(b, queue.Config{Queues: []*queue.Queue{queue.NewQueue("default", queue.QueueOptions{MaxDepth: 1})}})
	if _, err := demo.Greet.Enqueue(ctx, app, demo.GreetArgs{Name: "b"}, nil); err != nil {
		t.Fatalf("enqueue after the operator raised the bound to 2: %v", err)
	}
	out.Reset()
	if err := run(ctx, []string{"inspect", "-db", db, "bound"}, &out); err != nil {
		t.Fatal(err)
	}
	if line := lineOf(out.String(), "default"); !strings.Contains(line, "2") || !strings.Contains(line, "operator") {
		t.Fatalf("inspect bound shows %q, want the operator's 2", out.String())
	}
	if err := run(ctx, []string{"inspect", "-db", db, "bound", "default", "reset"}, &out); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := run(ctx, []string{"inspect", "-db", db, "bound"}, &out); err != nil || !strings.Contains(lineOf(out.String(), "default"), "code") {
		t.Fatalf("after reset: %q, %v; want the code's bound in force", out.String(), err)
	}
	if err := run(ctx, []string{"inspect", "-db", db, "bound", "default", "many"}, &out); err == nil {
		t.Fatal("a bound that is not a number was taken")
	}
}

func lineOf(s, prefix string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}
