package demo

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/retry"
	"github.com/conveyorhq/conveyor/worker"
)

// GreetArgs are the arguments of Greet.
type GreetArgs struct {
	Name string `json:"name"`
}

// GreetResult is Greet's result.
type GreetResult struct {
	Greeting string `json:"greeting"`
}

// FlakyArgs are the arguments of Flaky.
type FlakyArgs struct {
	FailTimes int `json:"fail_times"`
}

// ChargeArgs are the arguments of Charge.
type ChargeArgs struct {
	Cents int    `json:"cents"`
	Card  string `json:"card"`
}

// SleepArgs are the arguments of Sleep.
type SleepArgs struct {
	Millis int `json:"millis"`
}

// quickRetry keeps the demo short: 100ms, 200ms, 400ms ... for 5 attempts.
var quickRetry = &retry.Policy{
	Stop: retry.StopAfterAttempt(5),
	Wait: retry.WaitSum(retry.WaitExponential(100*time.Millisecond, time.Second), retry.WaitRandom(0, 50*time.Millisecond)),
}

// The demo tasks.
var (
	// Greet always succeeds after a short pause and returns a result.
	Greet = queue.NewTask[GreetArgs, GreetResult]("demo.greet", queue.TaskOptions{})
	// Flaky fails its first FailTimes attempts, then succeeds.
	Flaky = queue.NewTask[FlakyArgs, queue.None]("demo.flaky", queue.TaskOptions{Retry: quickRetry})
	// Charge calls a payment API guarded by the "payments" breaker. A card
	// of "declined" is a permanent error: dead letter without retries.
	Charge = queue.NewTask[ChargeArgs, queue.None]("demo.charge", queue.TaskOptions{
		Queue: "payments", Breaker: "payments", Retry: quickRetry,
	})
	// Sleep sleeps, minding its context: for shutdown and crash tests.
	Sleep = queue.NewTask[SleepArgs, queue.None]("demo.sleep", queue.TaskOptions{Retry: quickRetry})
)

// Tasks lists the demo tasks, for enqueueing by name.
var Tasks = []queue.Definition{Greet, Flaky, Charge, Sleep}

// Queues are the queues the demo tasks use.
var Queues = []worker.QueueConfig{{Name: queue.DefaultQueue, Weight: 3}, {Name: "payments"}}

// ErrDeclined is the permanent failure of a declined card.
var ErrDeclined = errors.New("card declined")

// PaymentAPI simulates a downstream that is down until it is healed.
type PaymentAPI struct{ up atomic.Bool }

// Heal brings the API back.
func (p *PaymentAPI) Heal() { p.up.Store(true) }

func (p *PaymentAPI) charge(ctx context.Context, a ChargeArgs) error {
	if a.Card == "declined" {
		return retry.Permanent(ErrDeclined)
	}
	if !p.up.Load() {
		return errors.New("payments API: 503 service unavailable")
	}
	return sleep(ctx, 20*time.Millisecond)
}

// Register registers every demo task on w. api may be nil for a healthy
// payment API.
func Register(w *worker.Worker, api *PaymentAPI) {
	if api == nil {
		api = &PaymentAPI{}
		api.Heal()
	}
	worker.Register(w, Greet, func(ctx context.Context, a GreetArgs) (GreetResult, error) {
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return GreetResult{}, err
		}
		return GreetResult{Greeting: "hello, " + a.Name}, nil
	})
	worker.Register(w, Flaky, func(ctx context.Context, a FlakyArgs) (queue.None, error) {
		j, _ := worker.JobFromContext(ctx)
		if j.Attempts() < a.FailTimes {
			return queue.None{}, fmt.Errorf("flaky: failing attempt %d of %d on purpose", j.Attempts()+1, a.FailTimes)
		}
		return queue.None{}, nil
	})
	worker.Register(w, Charge, func(ctx context.Context, a ChargeArgs) (queue.None, error) {
		return queue.None{}, api.charge(ctx, a)
	})
	worker.Register(w, Sleep, func(ctx context.Context, a SleepArgs) (queue.None, error) {
		return queue.None{}, sleep(ctx, time.Duration(a.Millis)*time.Millisecond)
	})
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
