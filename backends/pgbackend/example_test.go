package pgbackend_test

import (
	"context"
	"fmt"
	"os"

	"github.com/conveyorhq/conveyor/backends/pgbackend"
	"github.com/conveyorhq/conveyor/queue"
)

// Open connects to the database a URL names and owns the pool; New takes
// a *pgxpool.Pool the app owns. The schema comes from `conveyor migrate`
// in production, or from Config.Migrate as here. The URL comes from the
// environment scripts/test sets up.
func ExampleOpen() {
	ctx := context.Background()
	b, err := pgbackend.Open(ctx, os.Getenv("CONVEYOR_POSTGRES_URL"), pgbackend.Config{Schema: "example_open", Migrate: true})
	if err != nil {
		panic(err)
	}
	defer b.Close()
	defer b.Pool().Exec(ctx, "DROP SCHEMA example_open CASCADE")
	hello := queue.NewTask[string, string]("greet.hello", queue.TaskOptions{})
	h, err := hello.Enqueue(ctx, queue.NewClient(b, queue.Config{}), "ada", nil)
	if err != nil {
		panic(err)
	}
	r, _ := h.Status(ctx)
	fmt.Println(r.Task, r.State)
	// Output: greet.hello pending
}
