package worker

import (
	"cmp"
	"container/heap"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// dryQueues are the queues whose last reserve found nothing due (or, from
// a backends.ExhaustiveReserver, fewer jobs than it asked for): the fetch
// loop skips each until it may hold due jobs again, so that a worker of
// many queues does not spend a reserve a round on every empty one (River's
// producers, one per queue, wait the same way). A queue is wet again
// when a notification names it (or every queue), when a job this worker
// scheduled there (a retry, a snooze) comes due, and at the latest
// PollInterval after it dried: jobs that come due by the clock alone (a
// scheduled job, another worker's expired lease) are found no later than
// an idle worker finds them.
type dryQueues struct {
	mu    sync.Mutex
	until map[string]time.Time // queue -> skipped until then
	due   map[string]*dueTimes // queue -> when the jobs this worker scheduled there come due
	// seen counts the wettings of each queue, all those of every queue:
	// a reserve that found nothing marks its queue dry only if neither
	// moved meanwhile, else a notification that came during the reserve
	// would be lost until the poll.
	seen map[string]uint64
	all  uint64
}

// maxDue bounds the due times kept per queue; a job scheduled past it is
// found by the poll, at most PollInterval late.
const maxDue = 4096

// stamp is q's count of wettings, to pass to dry.
func (d *dryQueues) stamp(q string) uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.seen[q] + d.all
}

// dry marks q dry after a reserve begun at start found nothing: until
// until, or until the next job this worker scheduled there comes due if
// sooner; not at all if q was wetted since stamp.
func (d *dryQueues) dry(q string, stamp uint64, start, until time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.seen[q]+d.all != stamp {
		return
	}
	if dt := d.due[q]; dt != nil {
		// Those due when the reserve began were there for it to find.
		for dt.Len() > 0 && !(*dt)[0].After(start) {
			heap.Pop(dt)
		}
		if dt.Len() == 0 {
			delete(d.due, q)
		} else if next := (*dt)[0]; next.Before(until) {
			until = next
		}
	}
	if d.until == nil {
		d.until = map[string]time.Time{}
	}
	d.until[q] = until
}

// wet makes q worth a reserve again; "" means every queue.
func (d *dryQueues) wet(q string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if q == "" {
		d.all++
		clear(d.until)
		return
	}
	d.wetLocked(q)
}

func (d *dryQueues) wetLocked(q string) {
	d.bump(q)
	delete(d.until, q)
}

// bump counts a wetting of q, so that a reserve under way does not dry it.
func (d *dryQueues) bump(q string) {
	if d.seen == nil {
		d.seen = map[string]uint64{}
	}
	d.seen[q]++
}

// dueAt says a job of q this worker scheduled comes due at at: a dry q
// is skipped no later.
func (d *dryQueues) dueAt(q string, at time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	if !at.After(now) {
		d.wetLocked(q)
		return
	}
	d.bump(q) // a reserve under way may have missed it
	if d.due == nil {
		d.due = map[string]*dueTimes{}
	}
	dt := d.due[q]
	if dt == nil {
		dt = &dueTimes{}
		d.due[q] = dt
	}
	for dt.Len() > 0 && !(*dt)[0].After(now) { // come due: a busy queue may not dry for long
		heap.Pop(dt)
	}
	if dt.Len() < maxDue {
		heap.Push(dt, at)
	}
	if u, ok := d.until[q]; ok && at.Before(u) {
		d.until[q] = at
	}
}

// wetOf returns the queues of qs not dry at now, in their order.
func (d *dryQueues) wetOf(qs []QueueConfig, now time.Time) []QueueConfig {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.until) == 0 {
		return qs
	}
	out := make([]QueueConfig, 0, len(qs))
	for _, q := range qs {
		u, ok := d.until[q.Name]
		if ok && now.Before(u) {
			continue
		}
		if ok {
			delete(d.until, q.Name)
		}
		out = append(out, q)
	}
	return out
}

// nextWake is how long from now until a dry queue is wet again or a job
// this worker scheduled comes due, at most max: how long an idle fetch
// loop may sleep.
func (d *dryQueues) nextWake(now time.Time, max time.Duration) time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	// Times passed are left out: the round just run saw them, and a queue
	// it skipped (no free slot) is fetched from when a slot frees.
	next := now.Add(max)
	for _, u := range d.until {
		if u.After(now) && u.Before(next) {
			next = u
		}
	}
	for _, dt := range d.due {
		if at := (*dt)[0]; at.After(now) && at.Before(next) {
			next = at
		}
	}
	return next.Sub(now)
}

// dueTimes is a min-heap of times (container/heap).
type dueTimes []time.Time

func (h dueTimes) Len() int           { return len(h) }
func (h dueTimes) Less(i, j int) bool { return h[i].Before(h[j]) }
func (h dueTimes) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueTimes) Push(x any)        { *h = append(*h, x.(time.Time)) }
func (h *dueTimes) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// queueOrder returns qs in config order (strict) or in a random order
// weighted by QueueConfig.Weight: the queue first in line is drawn with
// probability its weight over the total, then the next among the rest,
// and so on. Each queue's place is an exponential draw of rate its weight,
// the smallest first (Efraimidis and Spirakis), which is that order in
// O(n log n) rather than a draw per place.
func queueOrder(qs []QueueConfig, strict bool) []QueueConfig {
	if strict || len(qs) < 2 {
		return qs
	}
	type placed struct {
		key float64
		at  int // in qs
	}
	ps := make([]placed, len(qs))
	for i, q := range qs {
		ps[i] = placed{rand.ExpFloat64() / float64(max(q.Weight, 1)), i}
	}
	slices.SortFunc(ps, func(a, b placed) int { return cmp.Compare(a.key, b.key) })
	out := make([]QueueConfig, len(ps))
	for i, p := range ps {
		out[i] = qs[p.at]
	}
	return out
}
