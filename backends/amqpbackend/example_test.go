package amqpbackend_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/conveyorhq/conveyor/backends/amqpbackend"
	"github.com/conveyorhq/conveyor/backends/sqlitebackend"
	"github.com/conveyorhq/conveyor/queue"
)

// The broker carries the jobs; a job-state store (any backend's KVStore:
// SQLite here, PostgreSQL or Redis in production) keeps what a broker
// cannot: status by ID, cancel, unique keys, exact bounds. New opens the
// broker alone. The URL comes from the environment scripts/test sets up.
func ExampleOpenStored() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "conveyor-example")
	defer os.RemoveAll(dir)
	store, err := sqlitebackend.Open(ctx, sqlitebackend.Config{Path: filepath.Join(dir, "state.db")})
	if err != nil {
		panic(err)
	}
	defer store.Close()
	b, err := amqpbackend.OpenStored(ctx, amqpbackend.Config{
		URL: os.Getenv("CONVEYOR_RABBITMQ_URL"), Store: store,
		Prefix: testPrefix, // the names of this package's tests, which TestMain deletes
	})
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
