package flow_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/conveyorhq/conveyor/backends/membackend"
	"github.com/conveyorhq/conveyor/flow"
	"github.com/conveyorhq/conveyor/job"
)

// A gate admits three deliveries a minute per tenant and holds the fourth
// back. A worker does this before each handler runs; a task declares the
// limit in queue.TaskOptions.RateLimit.
func ExampleGate_Admit() {
	g, err := flow.NewGate(membackend.New(membackend.Config{}), nil)
	if err != nil {
		panic(err)
	}
	lim := flow.Limits{Rates: []flow.RateLimit{{Limit: 3, Per: time.Minute, Key: flow.ByJobKey}}}
	for i := range 4 {
		rec := &job.Record{ID: fmt.Sprint(i), Task: "shopify.sync", Headers: map[string]string{flow.KeyHeader: "store-1"}}
		_, err := g.Admit(context.Background(), rec, rec.Task, lim)
		var hb *flow.HeldBackError
		switch {
		case errors.As(err, &hb):
			fmt.Printf("job %d held back by %s for %s\n", i, hb.Limit, hb.Key)
		case err != nil:
			panic(err)
		default:
			fmt.Printf("job %d runs\n", i)
		}
	}
	// Output:
	// job 0 runs
	// job 1 runs
	// job 2 runs
	// job 3 held back by shopify.sync for store-1
}

// An override in the form the daemon's config (limits = [...]) and
// `conveyor inspect limits` take; flow.SetOverride stores it for every
// worker.
func ExampleParseOverride() {
	for _, s := range []string{"rate:queue:email=100/1m:20", "rate:api=5/s", "concurrency:shopify.sync=3", "rate:api=five"} {
		o, err := flow.ParseOverride(s)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Printf("%s limit %q: %d per %s, burst %d (%s)\n", o.Kind, o.Name, o.Limit, o.Per, o.Burst, o)
	}
	// Output:
	// rate limit "queue:email": 100 per 1m0s, burst 20 (rate:queue:email=100/1m0s:20)
	// rate limit "api": 5 per 1s, burst 0 (rate:api=5/1s)
	// concurrency limit "shopify.sync": 3 per 0s, burst 0 (concurrency:shopify.sync=3)
	// conveyor: invalid request: override "rate:api=five": LIMIT is not a whole number (want KIND:NAME=LIMIT[/PER[:BURST]], e.g. rate:queue:email=100/1m)
}
