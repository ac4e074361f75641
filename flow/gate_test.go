package flow_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/backendtest"
	"github.com/conveyorhq/conveyor/backends/membackend"
	"github.com/conveyorhq/conveyor/flow"
	"github.com/conveyorhq/conveyor/job"
)

func delivery(id, key string, lease time.Time) *job.Record {
	return &job.Record{ID: id, Task: "t", Headers: map[string]string{flow.KeyHeader: key},
		Lease: job.Lease{JobID: id, Token: "tok-" + id, ExpiresAt: lease}}
}

// A delivery refused by a bucket gives back the slot it took first, so a
// rate-limited job does not also block its key.
func TestAdmitGivesTheSlotBackWhenABucketIsEmpty(t *testing.T) {
	clock := &backendtest.Clock{}
	g, err := flow.NewGate(membackend.New(membackend.Config{Clock: clock}), clock)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	lim := flow.Limits{
		Rates:       []flow.RateLimit{{Limit: 1, Per: time.Minute}},
		Concurrency: &flow.ConcurrencyLimit{Limit: 1},
	}
	lease := clock.Now().Add(time.Minute)
	first, err := g.Admit(ctx, delivery("a", "k", lease), "t", lim)
	if err != nil {
		t.Fatalf("first delivery: %v", err)
	}
	first.Release(ctx)
	_, err = g.Admit(ctx, delivery("b", "k", lease), "t", lim)
	var hb *flow.HeldBackError
	if !errors.As(err, &hb) || hb.Limit != "t" {
		t.Fatalf("second delivery within the minute: %v; want held back by the bucket", err)
	}
	if d := hb.Until.Sub(clock.Now()); d <= 0 || d > 2*time.Minute {
		t.Fatalf("held back for %s; want the next token (under a minute away) plus under a minute's spread", d)
	}
	slots, err := g.Limiter().SlotsInUse(ctx, backends.SlotsParams{Key: "conc/t/k", Now: clock.Now()})
	if err != nil || len(slots) != 0 {
		t.Fatalf("slots in use %v, %v; the refused delivery should hold none", slots, err)
	}
	clock.Advance(time.Minute)
	if _, err := g.Admit(ctx, delivery("b", "k", clock.Now().Add(time.Minute)), "t", lim); err != nil {
		t.Fatalf("a minute later: %v", err)
	}
}

// A slot renewed by the heartbeat outlives the first lease; one not
// renewed frees the key when the lease ends.
func TestSlotsEndWithTheLease(t *testing.T) {
	clock := &backendtest.Clock{}
	g, err := flow.NewGate(membackend.New(membackend.Config{Clock: clock}), clock)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	lim := flow.Limits{Concurrency: &flow.ConcurrencyLimit{Limit: 1}}
	tk, err := g.Admit(ctx, delivery("a", "k", clock.Now().Add(10*time.Second)), "t", lim)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Renew(ctx, []flow.Ticket{tk}, clock.Now().Add(30*time.Second)); err != nil {
		t.Fatal(err)
	}
	clock.Advance(20 * time.Second) // past the first lease, within the renewed one
	var hb *flow.HeldBackError
	if _, err := g.Admit(ctx, delivery("b", "k", clock.Now().Add(10*time.Second)), "t", lim); !errors.As(err, &hb) {
		t.Fatalf("while a's renewed slot lives: %v; want held back", err)
	}
	clock.Advance(20 * time.Second) // a's holder died without releasing
	if _, err := g.Admit(ctx, delivery("b", "k", clock.Now().Add(10*time.Second)), "t", lim); err != nil {
		t.Fatalf("after a's lease ended: %v", err)
	}
}

func TestExpired(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r := &job.Record{Headers: map[string]string{flow.ExpiresHeader: flow.FormatExpiry(at)}}
	if err := flow.Expired(r, at); err != nil {
		t.Fatalf("at its expiry: %v; a job may still start then", err)
	}
	err := flow.Expired(r, at.Add(time.Nanosecond))
	if !errors.Is(err, flow.ErrExpired) || err.Error() != "expired: not started by 2026-01-02T03:04:05Z" {
		t.Fatalf("after its expiry: %v", err)
	}
	if err := flow.Expired(&job.Record{Headers: map[string]string{flow.ExpiresHeader: "soon"}}, at); err != nil {
		t.Fatalf("a header that does not parse: %v; want no expiry", err)
	}
}

// A reserve's deliveries are admitted together: in order, while the slot
// set and the bucket have room, each shared by the deliveries of its key.
func TestAdmitBatch(t *testing.T) {
	clock := &backendtest.Clock{}
	g, err := flow.NewGate(membackend.New(membackend.Config{Clock: clock}), clock)
	if err != nil {
		t.Fatal(err)
	}
	lease := clock.Now().Add(time.Minute)
	recs := []*job.Record{
		delivery("a1", "a", lease), delivery("a2", "a", lease), delivery("a3", "a", lease),
		delivery("b1", "b", lease), delivery("b2", "b", lease), delivery("b3", "b", lease),
	}
	lim := flow.Limits{
		Concurrency: &flow.ConcurrencyLimit{Limit: 2},
		Rates:       []flow.RateLimit{{Limit: 3, Per: time.Hour}},
	}
	vs := g.AdmitBatch(context.Background(), recs, func(*job.Record) (flow.Limits, string) { return lim, "t" })
	var got []string
	for i, v := range vs {
		var hb *flow.HeldBackError
		switch {
		case v.Err == nil:
			got = append(got, recs[i].ID)
		case !errors.As(v.Err, &hb):
			t.Fatalf("%s: %v", recs[i].ID, v.Err)
		}
	}
	// a3 and b3 have no slot; of a1, a2, b1, b2 the bucket of 3 takes the
	// first three.
	if want := "[a1 a2 b1]"; fmt.Sprint(got) != want {
		t.Fatalf("admitted %v, want %s", got, want)
	}
	// b2 took a slot, then found the bucket empty: it gave the slot back.
	slots, err := g.Limiter().SlotsInUse(context.Background(), backends.SlotsParams{Key: "conc/t/b", Now: clock.Now()})
	if err != nil || len(slots) != 1 {
		t.Fatalf("key b's slots %v, %v; want b1's only", slots, err)
	}
}

// Only a limit per job key goes to the reserve: Key nil or ByJobKey, not
// another KeyFunc; the rule carries the defaults and the override.
func TestSlotRuleOnlyPerJobKey(t *testing.T) {
	b := membackend.New(membackend.Config{})
	g, err := flow.NewGate(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	byTask := func(r *job.Record) string { return r.Task }
	for _, tc := range []struct {
		key  flow.KeyFunc
		want bool
	}{{nil, true}, {flow.ByJobKey, true}, {byTask, false}} {
		r, ok := g.SlotRule(ctx, "t", &flow.ConcurrencyLimit{Limit: 3, Key: tc.key})
		if ok != tc.want {
			t.Fatalf("SlotRule with key %p: %v, want %v", tc.key, ok, tc.want)
		}
		if ok && r != (backends.SlotRule{Task: "t", Name: "t", Limit: 3, Backoff: time.Second}) {
			t.Fatalf("rule %+v", r)
		}
	}
	if err := flow.SetOverride(ctx, b, flow.Override{Kind: flow.KindConcurrency, Name: "t", Limit: 7}); err != nil {
		t.Fatal(err)
	}
	g, _ = flow.NewGate(b, nil)
	if r, _ := g.SlotRule(ctx, "t", &flow.ConcurrencyLimit{Limit: 3}); r.Limit != 7 {
		t.Fatalf("rule with an override of 7: %+v", r)
	}
}
