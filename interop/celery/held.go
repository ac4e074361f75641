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
	ready   readyHeap // due: priority, then run-at, then arrival
	later   laterHeap // not due yet: by run-at
	transit map[string]time.Time
	started bool
	arrived chan struct{} // closed at each arrival, then replaced
	room    chan struct{} // one token: the consumer may fetch again
}

func newLocal() *local {
	return &local{transit: map[string]time.Time{}, arrived: make(chan struct{}), room: make(chan struct{}, 1)}
}

// add files a received message as due or later.
func (l *local) add(it *item, now time.Time) {
	if it.d.rec.RunAt.After(now) {
		heap.Push(&l.later, it)
	} else {
		heap.Push(&l.ready, it)
	}
	close(l.arrived)
	l.arrived = make(chan struct{})
}

// promote moves the items that became due to the ready heap.
func (l *local) promote(now time.Time) {
	for l.later.Len() > 0 && !l.later[0].d.rec.RunAt.After(now) {
		heap.Push(&l.ready, heap.Pop(&l.later))
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

type readyHeap []*item

func (h readyHeap) Len() int { return len(h) }
func (h readyHeap) Less(i, j int) bool {
	a, b := h[i].d.rec, h[j].d.rec
	switch {
	case a.Priority != b.Priority:
		return a.Priority > b.Priority
	case !a.RunAt.Equal(b.RunAt):
		return a.RunAt.Before(b.RunAt)
	}
	return h[i].seq < h[j].seq
}
func (h readyHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i]; h[i].idx = i; h[j].idx = j }
func (h *readyHeap) Push(x any)   { it := x.(*item); it.idx = len(*h); *h = append(*h, it) }
func (h *readyHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

type laterHeap []*item

func (h laterHeap) Len() int { return len(h) }
func (h laterHeap) Less(i, j int) bool {
	if a, b := h[i].d.rec.RunAt, h[j].d.rec.RunAt; !a.Equal(b) {
		return a.Before(b)
	}
	return h[i].seq < h[j].seq
}
func (h laterHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i]; h[i].idx = i; h[j].idx = j }
func (h *laterHeap) Push(x any)   { it := x.(*item); it.idx = len(*h); *h = append(*h, it) }
func (h *laterHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}
