package worker_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/conveyorhq/conveyor/backends/membackend"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/retry"
	"github.com/conveyorhq/conveyor/worker"
)

type Order struct {
	ID    int  `json:"id"`
	Valid bool `json:"valid"`
}

var errInvalid = errors.New("invalid order")

var ShipOrder = queue.NewTask[Order, string]("orders.ship", queue.TaskOptions{})

func Example() {
	b := membackend.New(membackend.Config{})
	w := worker.New(b, worker.Config{})
	worker.Register(w, ShipOrder, func(ctx context.Context, o Order) (string, error) {
		if !o.Valid {
			return "", retry.Permanent(errInvalid) // no retries: straight to dead letter
		}
		return fmt.Sprintf("shipped order %d", o.ID), nil
	})

	ctx := context.Background()
	client := queue.NewClient(b, queue.Config{})
	good, _ := ShipOrder.Enqueue(ctx, client, Order{ID: 1, Valid: true}, nil)
	bad, _ := ShipOrder.Enqueue(ctx, client, Order{ID: 2}, nil)

	// WorkDue runs what is due in this goroutine; a daemon calls Start.
	n, _ := w.WorkDue(ctx)
	fmt.Println("ran", n)
	res, err := good.Result(ctx)
	fmt.Println(res, err)
	_, err = bad.Result(ctx)
	r, _ := bad.Status(ctx)
	fmt.Println(errors.Is(err, job.ErrDeadLettered), r.State, r.LastError().Error)
	// Output:
	// ran 2
	// shipped order 1 <nil>
	// true dead permanent: invalid order
}

var RefundOrder = queue.NewTask[Order, queue.None]("orders.refund", queue.TaskOptions{})

// In a rolling deploy the new code enqueues a task the old workers have no
// handler for. An old worker gives the job back for a new one, without
// using an attempt, instead of dead-lettering it.
func ExampleConfig_unknownTask() {
	b := membackend.New(membackend.Config{})
	ctx := context.Background()
	client := queue.NewClient(b, queue.Config{})
	h, _ := RefundOrder.Enqueue(ctx, client, Order{ID: 3}, nil) // the new code

	old := worker.New(b, worker.Config{
		UnknownTaskDelay:  5 * time.Second, // the defaults: offered again in 5-7.5s,
		UnknownTaskWindow: 24 * time.Hour,  // dead-lettered if no worker took it within a day
		Logger:            slog.New(slog.DiscardHandler),
	})
	worker.Register(old, ShipOrder, func(ctx context.Context, o Order) (string, error) { return "shipped", nil })
	n, _ := old.WorkDue(ctx)
	r, _ := h.Status(ctx)
	fmt.Println("ran", n, "-", r.State, "attempts", r.Attempts(), "deliveries", r.Deliveries)
	// Output:
	// ran 1 - scheduled attempts 0 deliveries 0
}
