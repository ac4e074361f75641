package flow_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends/backendtest"
	"github.com/conveyorhq/conveyor/backends/membackend"
	"github.com/conveyorhq/conveyor/backends/sqlitebackend"
	"github.com/conveyorhq/conveyor/flow"
	"github.com/conveyorhq/conveyor/job"
)

// admitted runs recs through g under lim and returns the IDs admitted and
// the tickets they hold.
func admitted(t *testing.T, g *flow.Gate, lim flow.Limits, recs ...*job.Record) ([]string, []flow.Ticket) {
	t.Helper()
	var ids []string
	var tickets []flow.Ticket
	for i, v := range g.AdmitBatch(context.Background(), recs, func(*job.Record) (flow.Limits, string) { return lim, "t" }) {
		var hb *flow.HeldBackError
		switch {
		case v.Err == nil:
			ids = append(ids, recs[i].ID)
			tickets = append(tickets, v.Ticket)
		case !errors.As(v.Err, &hb):
			t.Fatalf("%s: %v", recs[i].ID, v.Err)
		}
	}
	return ids, tickets
}

// A gate reports each declared limit with the slots its deliveries hold,
// the tokens they took in the last interval and the jobs it held back
// whose wait has not ended.
func TestStatesCountUseAndHeldBack(t *testing.T) {
	clock := &backendtest.Clock{}
	g, err := flow.NewGate(membackend.New(membackend.Config{Clock: clock}), clock)
	if err != nil {
		t.Fatal(err)
	}
	lim := flow.Limits{
		Concurrency: &flow.ConcurrencyLimit{Limit: 2, Backoff: time.Minute},
		Rates:       []flow.RateLimit{{Name: "api", Limit: 10, Per: time.Hour}},
	}
	lease := clock.Now().Add(time.Hour)
	var recs []*job.Record
	for i := range 5 {
		recs = append(recs, delivery(fmt.Sprint("a", i), "a", lease))
	}
	ids, tickets := admitted(t, g, lim, recs...)
	if len(ids) != 2 {
		t.Fatalf("admitted %v; want 2 (the slots of key a)", ids)
	}
	states := g.States([]flow.Limits{lim}, []string{"t"})
	want := `[{api rate 10 1h0m0s 0 false false 2 0 0 0} {t concurrency 2 0s 0 true false 2 3 3 0}]`
	if got := fmt.Sprint(states); got != want {
		t.Fatalf("states\n%s, want\n%s", got, want)
	}
	if err := g.Release(context.Background(), tickets[:1]); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Minute) // the held-back jobs' wait is over; the hour's tokens still count
	states = g.States([]flow.Limits{lim}, []string{"t"})
	if s := states[1]; s.InUse != 1 || s.HeldBack != 0 || s.HeldBackTotal != 3 {
		t.Fatalf("after a release and the backoff: %+v; want 1 slot, none waiting, 3 held back in all", s)
	}
	if s := states[0]; s.InUse != 2 {
		t.Fatalf("rate limit within its hour: %+v; want 2 tokens taken", s)
	}
	clock.Advance(2 * time.Hour)
	if s := g.States([]flow.Limits{lim}, []string{"t"})[0]; s.InUse != 0 {
		t.Fatalf("rate limit two hours later: %+v; want none taken in the last hour", s)
	}
}

// An override set on the backend changes a limit's figures on the gates
// that read it, and only the limit of its kind and name; removed, the
// declared figures hold again.
func TestOverrideChangesALimitAtRunTime(t *testing.T) {
	ctx := context.Background()
	clock := &backendtest.Clock{}
	b := membackend.New(membackend.Config{Clock: clock})
	g, err := flow.NewGate(b, clock)
	if err != nil {
		t.Fatal(err)
	}
	lim := flow.Limits{Concurrency: &flow.ConcurrencyLimit{Limit: 1}}
	lease := clock.Now().Add(time.Hour)
	if ids, _ := admitted(t, g, lim, delivery("a1", "a", lease), delivery("a2", "a", lease)); len(ids) != 1 {
		t.Fatalf("declared limit 1: admitted %v", ids)
	}
	if err := flow.SetOverride(ctx, b, flow.Override{Kind: flow.KindConcurrency, Name: "t", Limit: 3}); err != nil {
		t.Fatal(err)
	}
	// A rate override of the same name changes nothing here.
	if err := flow.SetOverride(ctx, b, flow.Override{Kind: flow.KindRate, Name: "t", Limit: 1, Per: time.Hour}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(flow.OverrideRefresh)
	if ids, _ := admitted(t, g, lim, delivery("a2", "a", lease), delivery("a3", "a", lease), delivery("a4", "a", lease)); fmt.Sprint(ids) != "[a2 a3]" {
		t.Fatalf("overridden to 3 with one slot held: admitted %v, want [a2 a3]", ids)
	}
	s := g.States([]flow.Limits{lim}, []string{"t"})
	if len(s) != 1 || s[0].Limit != 3 || !s[0].Overridden || s[0].InUse != 3 {
		t.Fatalf("states %+v; want the override's limit 3 in force, 3 slots used", s)
	}
	ovs, err := flow.Overrides(ctx, b)
	if err != nil || len(ovs) != 2 {
		t.Fatalf("overrides %+v, %v", ovs, err)
	}
	if err := flow.RemoveOverride(ctx, b, flow.KindConcurrency, "t"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(flow.OverrideRefresh)
	if ids, _ := admitted(t, g, lim, delivery("b1", "b", lease), delivery("b2", "b", lease)); len(ids) != 1 {
		t.Fatalf("override removed: admitted %v; want the declared 1 of key b", ids)
	}
	err = flow.SetOverride(ctx, b, flow.Override{Kind: flow.KindConcurrency, Name: "t", Limit: 2, Per: time.Second})
	if !errors.Is(err, job.ErrInvalid) {
		t.Fatalf("a concurrency override with an interval: %v; want ErrInvalid", err)
	}
}

// A rate override lowered mid-run holds at once: the bucket keeps what it
// holds, capped by the new size.
func TestRateOverrideOnSQLite(t *testing.T) {
	ctx := context.Background()
	b, err := sqlitebackend.Open(ctx, sqlitebackend.Config{Path: filepath.Join(t.TempDir(), "flow.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	clock := &backendtest.Clock{}
	g, err := flow.NewGate(b, clock)
	if err != nil {
		t.Fatal(err)
	}
	lim := flow.Limits{Rates: []flow.RateLimit{{Name: "api", Limit: 100, Per: time.Hour}}}
	lease := clock.Now().Add(time.Hour)
	batch := func(prefix string, n int) []*job.Record {
		var out []*job.Record
		for i := range n {
			out = append(out, delivery(fmt.Sprint(prefix, i), "", lease))
		}
		return out
	}
	if ids, _ := admitted(t, g, lim, batch("a", 5)...); len(ids) != 5 {
		t.Fatalf("under 100 an hour: admitted %v", ids)
	}
	if err := flow.SetOverride(ctx, b, flow.Override{Kind: flow.KindRate, Name: "api", Limit: 2}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(flow.OverrideRefresh) // a second at 2 an hour adds no whole token
	if ids, _ := admitted(t, g, lim, batch("b", 5)...); len(ids) != 2 {
		t.Fatalf("overridden to 2 an hour (burst 2): admitted %v, want 2", ids)
	}
	s := g.States([]flow.Limits{lim}, []string{"t"})
	if want := `[{api rate 2 1h0m0s 0 false true 7 3 3 0}]`; fmt.Sprint(s) != want {
		t.Fatalf("states %v, want %s", s, want)
	}
}
