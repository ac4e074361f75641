package cli_test

import (
	"context"
	"fmt"
	"os"

	"github.com/conveyorhq/conveyor/daemon"
	"github.com/conveyorhq/conveyor/daemon/cli"
	"github.com/conveyorhq/conveyor/internal/demo"
	"github.com/conveyorhq/conveyor/worker"
)

// An app's binary is the whole command line around its own tasks: its
// main is cli.Main with a signal context, and `shop worker`, `shop enqueue`,
// `shop jobs list` know the app's tasks. Here a mistyped command.
func Example() {
	shop := daemon.App{
		Name:     "shop",
		Tasks:    demo.Tasks, // the app's own queue.Task definitions
		Register: func(w *worker.Worker) error { demo.Register(w, nil); return nil },
	}
	code := cli.Main(context.Background(), shop, []string{"jobs", "lsit"}, os.Stdout, os.Stdout)
	fmt.Println("exit", code)
	// Output:
	// shop: unknown command "lsit" for "shop jobs"; did you mean list?
	// (see shop -h)
	// exit 2
}

// Every reading command prints JSON with --json; memory: is a backend of
// its own, empty.
func ExampleMain_json() {
	code := cli.Main(context.Background(), daemon.App{Tasks: demo.Tasks}, []string{"jobs", "list", "--db", "memory:", "--json"}, os.Stdout, os.Stderr)
	fmt.Println("exit", code)
	// Output:
	// {
	//   "jobs": []
	// }
	// exit 0
}
