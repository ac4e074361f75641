package notify

import (
	"context"
	"sync"

	"github.com/conveyorhq/conveyor/backends"
)

// Hub fans events out to listeners. Sends never block: a slow listener
// misses events, which the Notifier contract allows.
type Hub struct {
	mu        sync.Mutex
	listeners map[*listener]struct{}
}

type listener struct {
	queues map[string]bool // nil: all
	kinds  map[backends.EventKind]bool
	ch     chan backends.Event
}

// Listen implements backends.Notifier.
func (h *Hub) Listen(ctx context.Context, p backends.ListenParams) (<-chan backends.Event, error) {
	l := &listener{ch: make(chan backends.Event, 64)}
	if len(p.Kinds) > 0 {
		l.kinds = map[backends.EventKind]bool{backends.Changed: true}
		for _, k := range p.Kinds {
			l.kinds[k] = true
		}
	}
	if len(p.Queues) > 0 {
		l.queues = map[string]bool{}
		for _, q := range p.Queues {
			l.queues[q] = true
		}
	}
	h.mu.Lock()
	if h.listeners == nil {
		h.listeners = map[*listener]struct{}{}
	}
	h.listeners[l] = struct{}{}
	h.mu.Unlock()
	go func() {
		<-ctx.Done()
		h.mu.Lock()
		delete(h.listeners, l)
		close(l.ch)
		h.mu.Unlock()
	}()
	return l.ch, nil
}

// Publish sends ev to every listener interested in its queue.
func (h *Hub) Publish(ev backends.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for l := range h.listeners {
		if l.queues != nil && ev.Kind != backends.Changed && !l.queues[ev.Queue] {
			continue
		}
		if l.kinds != nil && !l.kinds[ev.Kind] {
			continue
		}
		select {
		case l.ch <- ev:
		default:
		}
	}
}
