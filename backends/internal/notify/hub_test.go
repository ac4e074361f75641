package notify

import (
	"context"
	"testing"

	"github.com/conveyorhq/conveyor/backends"
)

// A listener that asks for some kinds gets those and Changed, and nothing
// else; one that asks for none gets every kind.
func TestListenKinds(t *testing.T) {
	var h Hub
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	some, _ := h.Listen(ctx, backends.ListenParams{Kinds: []backends.EventKind{backends.JobsAvailable}})
	all, _ := h.Listen(ctx, backends.ListenParams{})
	sent := []backends.Event{{Kind: backends.JobFinished, Queue: "q", JobID: "1"}, {Kind: backends.JobsAvailable, Queue: "q"}, {Kind: backends.Changed}}
	for _, ev := range sent {
		h.Publish(ev)
	}
	for _, want := range []backends.EventKind{backends.JobsAvailable, backends.Changed} {
		if ev := <-some; ev.Kind != want {
			t.Fatalf("filtered listener got %+v, want kind %d", ev, want)
		}
	}
	for _, ev := range sent {
		if got := <-all; got != ev {
			t.Fatalf("unfiltered listener got %+v, want %+v", got, ev)
		}
	}
	select {
	case ev := <-some:
		t.Fatalf("filtered listener got %+v after the events it asked for", ev)
	default:
	}
}
