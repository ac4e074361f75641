package worker_test

import (
	"context"
	"errors"
	"fmt"

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
	b := membackend.New()
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
