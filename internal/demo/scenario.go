package demo

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

// Breakers is the demo's breaker configuration: trip fast, probe after 1s.
var Breakers = map[string]worker.BreakerConfig{"payments": {ConsecutiveFailures: 3, OpenFor: time.Second}}

// Scenario sizes one demo run.
type Scenario struct {
	Greetings int           // jobs that just succeed
	Flaky     int           // jobs that fail twice, then succeed
	Charges   int           // jobs behind the payments breaker
	Outage    time.Duration // how long the payment API is down
}

// Run plays the scenario on b: a worker, a mix of jobs, a poison message and
// a payment outage, printing a progress line to out until every job has
// finished, then a summary. b must be an Inspector.
func Run(ctx context.Context, b backends.Backend, sc Scenario, out io.Writer) error {
	in, ok := b.(backends.Inspector)
	if !ok {
		return fmt.Errorf("demo: %w: the demo needs an inspectable backend", job.ErrUnsupported)
	}
	api := &PaymentAPI{}
	// The progress line and the summary say what happens; the worker's own
	// logs would break the line.
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	w := worker.New(b, worker.Config{Concurrency: 8, Queues: Queues, Breakers: Breakers, Logger: quiet})
	Register(w, api)
	if err := w.Start(ctx); err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = w.Stop(sctx)
	}()

	c := queue.NewClient(b, queue.Config{})
	var reqs []queue.Request
	for i := range sc.Greetings {
		reqs = append(reqs, Greet.Request(GreetArgs{Name: fmt.Sprint("guest ", i+1)}, nil))
	}
	for range sc.Flaky {
		reqs = append(reqs, Flaky.Request(FlakyArgs{FailTimes: 2}, nil))
	}
	for i := range sc.Charges {
		reqs = append(reqs, Charge.Request(ChargeArgs{Cents: 100 * (i + 1), Card: "4242"}, nil))
	}
	reqs = append(reqs, Charge.Request(ChargeArgs{Cents: 999, Card: "declined"}, nil))
	if _, err := c.EnqueueMany(ctx, reqs...); err != nil {
		return err
	}
	// A poison message: a payload no handler can decode, as a buggy
	// producer might send. The client would refuse it, so it goes in
	// through the backend directly.
	if _, err := b.Enqueue(ctx, backends.EnqueueParams{Jobs: []*backends.JobInsert{{
		ID: fmt.Sprint("demo-poison-", time.Now().UnixNano()), Queue: queue.DefaultQueue, Task: Greet.Name(), Payload: []byte(`{"name": 42}`),
	}}}); err != nil {
		return err
	}
	total := len(reqs) + 1
	fmt.Fprintf(out, "enqueued %d jobs: %d greetings, %d flaky, %d charges behind the payments breaker, 1 declined card, 1 poison message\n",
		total, sc.Greetings, sc.Flaky, sc.Charges)
	fmt.Fprintf(out, "the payment API is down for %s\n", sc.Outage)

	start := time.Now()
	healed := false
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		if !healed && time.Since(start) >= sc.Outage {
			api.Heal()
			healed = true
		}
		counts, err := count(ctx, in)
		if err != nil {
			return err
		}
		finished := counts[job.Done] + counts[job.Dead] + counts[job.Cancelled]
		fmt.Fprintf(out, "\r%5.1fs  %s  %s   ", time.Since(start).Seconds(), progressBar(finished, total), line(counts, w.Breakers()))
		if finished >= total {
			fmt.Fprintln(out)
			return summary(ctx, in, out, counts)
		}
		select {
		case <-ctx.Done():
			fmt.Fprintln(out)
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func count(ctx context.Context, in backends.Inspector) (map[job.State]int, error) {
	stats, err := in.QueueStats(ctx, backends.QueueStatsParams{})
	if err != nil {
		return nil, err
	}
	total := map[job.State]int{}
	for _, s := range stats {
		for st, n := range s.Counts {
			total[st] += n
		}
	}
	return total, nil
}

func progressBar(done, total int) string {
	const width = 20
	n := done * width / max(total, 1)
	return fmt.Sprintf("[%s%s] %d/%d", strings.Repeat("#", n), strings.Repeat(".", width-n), done, total)
}

func line(c map[job.State]int, brk []worker.BreakerState) string {
	var b strings.Builder
	for _, st := range job.States() {
		fmt.Fprintf(&b, "%s %d  ", st, c[st])
	}
	for _, s := range brk {
		fmt.Fprintf(&b, "| breaker %s: %s", s.Name, s.State)
	}
	return b.String()
}

func summary(ctx context.Context, in backends.Inspector, out io.Writer, counts map[job.State]int) error {
	fmt.Fprintf(out, "all jobs finished: %d done, %d dead\n", counts[job.Done], counts[job.Dead])
	page, err := in.ListJobs(ctx, backends.ListJobsParams{State: job.Dead, Limit: 10})
	if err != nil {
		return err
	}
	for _, r := range page.Jobs {
		fmt.Fprintf(out, "  dead letter %s (%s) after %d attempt(s): %s\n", r.ID, r.Task, r.Attempts(), r.LastError().Error)
	}
	return nil
}
