package scheduler_test

import (
	"context"
	"fmt"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/membackend"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/scheduler"
)

type reportArgs struct {
	Kind string `json:"kind"`
}

var report = queue.NewTask[reportArgs, queue.None]("reports.send", queue.TaskOptions{})

func Example() {
	ctx := context.Background()
	b := membackend.New(membackend.Config{})
	clock := &fakeClock{t: time.Date(2026, 1, 5, 8, 59, 0, 0, time.UTC)}
	s, err := scheduler.New(queue.NewClient(b, queue.Config{}), scheduler.Config{
		Tasks: []queue.Definition{report},
		Clock: clock, // omit for the system clock
	})
	if err != nil {
		panic(err)
	}
	entry, _ := scheduler.NewEntry("morning-report", "0 9 * * 1-5", report, reportArgs{Kind: "daily"})
	if err := s.Register(entry); err != nil {
		panic(err)
	}
	// In a service: s.Start(ctx) and, at shutdown, s.Stop(ctx).
	for range 3 {
		_ = s.RunOnce(ctx)
		clock.Add(time.Minute)
	}
	page, _ := b.ListJobs(ctx, backends.ListJobsParams{State: "pending"})
	for _, j := range page.Jobs {
		fmt.Println(j.Task, string(j.Payload), j.Headers["scheduler-tick"])
	}
	states, _ := s.List(ctx)
	fmt.Println("next:", states[0].Next.Format(time.RFC3339))
	// Output:
	// reports.send {"kind":"daily"} 2026-01-05T09:00:00Z
	// next: 2026-01-06T09:00:00Z
}

// fakeClock stands in for the system clock so that the example's output
// does not depend on when it runs.
type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time      { return c.t }
func (c *fakeClock) Add(d time.Duration) { c.t = c.t.Add(d) }
