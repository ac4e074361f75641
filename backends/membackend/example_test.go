package membackend_test

import (
	"context"
	"fmt"

	"github.com/conveyorhq/conveyor/backends/membackend"
	"github.com/conveyorhq/conveyor/queue"
)

// The memory backend needs nothing and keeps nothing past the process:
// for tests, examples and the demo.
func ExampleNew() {
	b := membackend.New(membackend.Config{})
	defer b.Close()
	hello := queue.NewTask[string, string]("greet.hello", queue.TaskOptions{})
	h, err := hello.Enqueue(context.Background(), queue.NewClient(b, queue.Config{}), "ada", nil)
	if err != nil {
		panic(err)
	}
	r, _ := h.Status(context.Background())
	fmt.Println(r.Task, r.State)
	// Output: greet.hello pending
}
