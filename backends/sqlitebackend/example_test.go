package sqlitebackend_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/conveyorhq/conveyor/backends/sqlitebackend"
	"github.com/conveyorhq/conveyor/queue"
)

// The default backend: one file, created if absent, shared by every
// process of one machine that opens it (a web app and its workers).
func ExampleOpen() {
	dir, _ := os.MkdirTemp("", "conveyor-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	b, err := sqlitebackend.Open(ctx, sqlitebackend.Config{Path: filepath.Join(dir, "app.db")})
	if err != nil {
		panic(err)
	}
	defer b.Close()
	hello := queue.NewTask[string, string]("greet.hello", queue.TaskOptions{})
	h, err := hello.Enqueue(ctx, queue.NewClient(b, queue.Config{}), "ada", nil)
	if err != nil {
		panic(err)
	}
	r, _ := h.Status(ctx)
	fmt.Println(r.Task, r.State)
	// Output: greet.hello pending
}
