package membackend

import "container/heap"

// Heap items point at an entry and remember the entry's version when pushed:
// any state change bumps the version, so stale items are skipped when popped
// instead of being searched for and removed.
type item struct {
	e   *entry
	ver uint64
}

func (it item) live() bool { return it.e.ver == it.ver }

// readyHeap orders due jobs: highest priority, then oldest run-at, then
// enqueue order.
type readyHeap []item

func (h readyHeap) Len() int { return len(h) }
func (h readyHeap) Less(i, j int) bool {
	a, b := h[i].e, h[j].e
	if a.rec.Priority != b.rec.Priority {
		return a.rec.Priority > b.rec.Priority
	}
	if !a.rec.RunAt.Equal(b.rec.RunAt) {
		return a.rec.RunAt.Before(b.rec.RunAt)
	}
	return a.seq < b.seq
}
func (h readyHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *readyHeap) Push(x any)   { *h = append(*h, x.(item)) }
func (h *readyHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

// timeHeap orders items by a time: run-at for waiting jobs, lease expiry for
// running ones. The time is captured at push, as the entry may change.
type timedItem struct {
	item
	at int64 // unix nanoseconds
}

type timeHeap []timedItem

func (h timeHeap) Len() int           { return len(h) }
func (h timeHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h timeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timeHeap) Push(x any)        { *h = append(*h, x.(timedItem)) }
func (h *timeHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

// popDue pops every live item whose time is at or before now.
func (h *timeHeap) popDue(now int64, f func(*entry)) {
	for h.Len() > 0 && (*h)[0].at <= now {
		it := heap.Pop(h).(timedItem)
		if it.live() {
			f(it.e)
		}
	}
}
