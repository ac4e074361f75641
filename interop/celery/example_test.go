package celery_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/redis/go-redis/v9"

	"github.com/conveyorhq/conveyor/interop/celery"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

type ChargeKwargs struct {
	Cents    int    `json:"cents"`
	Currency string `json:"currency"`
}

// A handler's view of what a Python client sent with
// app.send_task("billing.charge", args=[7], kwargs={"cents": 250, "currency": "EUR"}).
func ExampleCall() {
	var c celery.Call[ChargeKwargs]
	if err := json.Unmarshal([]byte(`{"args":[7],"kwargs":{"cents":250,"currency":"EUR"}}`), &c); err != nil {
		panic(err)
	}
	var user int
	if err := c.Args.Decode(0, &user); err != nil {
		panic(err)
	}
	fmt.Println(user, c.Kwargs.Cents, c.Kwargs.Currency)
	// Output: 7 250 EUR
}

// A Go worker on Celery's default queue of a Redis broker, its results in
// the same Redis, where the Python side's AsyncResult.get finds them.
func ExampleNew() {
	ctx := context.Background()
	b, err := celery.New(ctx, celery.Config{Redis: redis.NewClient(&redis.Options{Addr: os.Getenv("CONVEYOR_REDIS_ADDR"), DB: 7})})
	if err != nil {
		panic(err)
	}
	defer b.Close()
	charge := queue.NewTask[celery.Call[ChargeKwargs], string]("billing.charge", queue.TaskOptions{Queue: "celery"})
	w := worker.New(b, worker.Config{Queues: []worker.QueueConfig{{Name: "celery"}}})
	worker.Register(w, charge, func(ctx context.Context, c celery.Call[ChargeKwargs]) (string, error) {
		return fmt.Sprintf("charged %d %s", c.Kwargs.Cents, c.Kwargs.Currency), nil
	})
	// w.Start(ctx) ... w.Stop(drainCtx)

	// And the other way: a Go client sends to a Celery worker's task.
	c := queue.NewClient(b, queue.Config{})
	add := queue.NewTask[[]int, int]("tasks.add", queue.TaskOptions{Queue: "celery"})
	_ = func() (int, error) {
		h, err := add.Enqueue(ctx, c, []int{2, 3}, nil) // args=[2, 3]
		if err != nil {
			return 0, err
		}
		return h.Wait(ctx) // 5, from celery-task-meta-<id>
	}
}
