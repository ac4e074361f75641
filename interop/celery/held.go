package celery

import (
	"container/heap"
	"time"

	"github.com/conveyorhq/conveyor/job"
)

// item is one message this process holds unacknowledged: waiting in its
// queue's heaps, or leased to a caller.
type item struct {
	d        *delivered
	r        receipt
	queue    string
	seq      uint64
	idx      int
	lease    job.Lease
	cancel   bool // someone asked the running job to stop
	settling bool // a Complete, Retry, DeadLetter or Cancel is writing it out
}

// local is what one queue's consumer has received in this process.
type local struct {
	ready   *itemHeap // due, in readyOrder
	later   *itemHeap // not due yet, in laterOrder
	transit map[string]time.Time
	started bool
	arrived chan struct{} // closed at each arrival, then replaced
	room    chan struct{} // one token: the consumer may fetch again
}

func newLocal() *local {
	return &local{
		ready: &itemHeap{less: readyOrder}, later: &itemHeap{less: laterOrder},
		transit: map[string]time.Time{}, arrived: make(chan struct{}), room: make(chan struct{}, 1),
	}
}

// add files a received message as due or later.
func (l *local) add(it *item, now time.Time) {
	if it.d.rec.RunAt.After(now) {
		heap.Push(l.later, it)
	} else {
		heap.Push(l.ready, it)
	}
	close(l.arrived)
	l.arrived = make(chan struct{})
}

// promote moves the items that became due to the ready heap.
func (l *local) promote(now time.Time) {
	for l.later.Len() > 0 && !l.later.items[0].d.rec.RunAt.After(now) {
		heap.Push(l.ready, heap.Pop(l.later))
	}
}

// inTransit says whether messages this process published to the queue
// within wait have not arrived, pruning older ones.
func (l *local) inTransit(now time.Time, wait time.Duration) bool {
	for tag, at := range l.transit {
		if now.Sub(at) > wait {
			delete(l.transit, tag)
		}
	}
	return len(l.transit) > 0
}

func (l *local) wakeConsumer() {
	select {
	case l.room <- struct{}{}:
	default:
	}
}

// itemHeap is a heap of items in the order less gives.
type itemHeap struct {
	items []*item
	less  func(a, b *item) bool
}

func (h *itemHeap) Len() int           { return len(h.items) }
func (h *itemHeap) Less(i, j int) bool { return h.less(h.items[i], h.items[j]) }
func (h *itemHeap) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.items[i].idx, h.items[j].idx = i, j
}
func (h *itemHeap) Push(x any) { it := x.(*item); it.idx = len(h.items); h.items = append(h.items, it) }
func (h *itemHeap) Pop() any {
	it := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return it
}

// readyOrder is every backend's reserve order: priority, then run-at,
// then arrival.
func readyOrder(a, b *item) bool {
	ra, rb := a.d.rec, b.d.rec
	switch {
	case ra.Priority != rb.Priority:
		return ra.Priority > rb.Priority
	case !ra.RunAt.Equal(rb.RunAt):
		return ra.RunAt.Before(rb.RunAt)
	}
	return a.seq < b.seq
}

// laterOrder is by run-at, then arrival.
func laterOrder(a, b *item) bool {
	if ra, rb := a.d.rec.RunAt, b.d.rec.RunAt; !ra.Equal(rb) {
		return ra.Before(rb)
	}
	return a.seq < b.seq
}
