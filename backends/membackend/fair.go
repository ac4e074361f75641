package membackend

import (
	"cmp"
	"container/heap"
	"context"
	"slices"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

var _ backends.FairReserver = (*Backend)(nil)

// fairState holds a queue's ready jobs a second time, by group: a heap
// per group, in Reserve's order, and the ring position of each group
// (when it was last served). A ready item is in both the queue's heap
// and its group's; delivering it through either bumps the entry's
// version, so the other copy is skipped as stale when it comes up.
type fairState struct {
	groups map[string]*fairGroup
	served uint64 // the last serving number handed out
	limit  int    // the queue heap's length that makes compact look at it
}

type fairGroup struct {
	name   string
	ready  readyHeap
	served uint64 // 0: never served
	turn   int    // jobs taken in the group's current turn, below its weight
	limit  int
}

// fileReady files a ready item in the queue's heap and its group's.
func (q *queueState) fileReady(it item) {
	heap.Push(&q.ready, it)
	compact(&q.ready, &q.fair.limit)
	g := q.fair.group(it.e.grp)
	heap.Push(&g.ready, it)
	compact(&g.ready, &g.limit)
}

func (f *fairState) group(name string) *fairGroup {
	if f.groups == nil {
		f.groups = map[string]*fairGroup{}
	}
	g := f.groups[name]
	if g == nil {
		g = &fairGroup{name: name}
		f.groups[name] = g
	}
	return g
}

// compact drops a heap's stale items once they are most of it: each
// ready job leaves a stale copy in the heap it was not delivered from,
// which would otherwise stay there as long as only one kind of reserve
// runs. It looks again once the heap has doubled since, so a push costs
// O(log n) amortized.
func compact(h *readyHeap, limit *int) {
	if h.Len() < max(*limit, 1024) {
		return
	}
	live := slices.DeleteFunc(*h, func(it item) bool { return !it.live() }) // zeroes the tail
	*h = live
	heap.Init(h)
	*limit = 2 * len(live)
}

// head returns the group's best live ready entry, dropping stale items
// on the way, or nil.
func (g *fairGroup) head() *entry {
	for g.ready.Len() > 0 {
		if it := g.ready[0]; it.live() {
			return it.e
		}
		heap.Pop(&g.ready)
	}
	return nil
}

// ReserveFair implements backends.FairReserver: rounds over the groups
// with a ready job, least recently served first, each giving jobs until
// its turn (its weight) is complete, when it goes to the back.
func (b *Backend) ReserveFair(ctx context.Context, p backends.ReserveParams) ([]*job.Record, error) {
	return b.reserve(ctx, p, fairPick(p))
}

// fairPick returns the picker of one ReserveFair call: each call of it
// hands out the next job in the rounds, or nil.
func fairPick(p backends.ReserveParams) func(q *queueState) *entry {
	var ring []*fairGroup // this round's groups still to serve
	return func(q *queueState) *entry {
		for {
			for len(ring) > 0 {
				g := ring[0]
				e := g.head()
				if e == nil {
					ring = ring[1:]
					continue
				}
				heap.Pop(&g.ready)
				q.fair.served++
				if g.turn++; g.turn >= p.Weight(g.name) {
					g.turn, g.served = 0, q.fair.served
					ring = ring[1:]
				}
				return e
			}
			if ring = q.fair.ready(); len(ring) == 0 {
				return nil
			}
		}
	}
}

// ready returns the groups with a ready job in ring order: least recently
// served first, groups never served first of all, by name.
func (f *fairState) ready() []*fairGroup {
	var ring []*fairGroup
	for _, g := range f.groups {
		if g.head() != nil {
			ring = append(ring, g)
		}
	}
	slices.SortFunc(ring, func(a, b *fairGroup) int {
		return cmp.Or(cmp.Compare(a.served, b.served), cmp.Compare(a.name, b.name))
	})
	return ring
}

// pruneGroups forgets the queue's idle groups, which
// backends.FairReserver allows: no job ready, delayed or running, and not
// served in the ring's last round (as many serving numbers as there are
// groups), so that ready() does not visit every group the queue ever had.
// A group that comes back joins as never served. The caller holds b.mu.
func (q *queueState) pruneGroups() {
	f := &q.fair
	if len(f.groups) < 2 || f.served <= uint64(len(f.groups)) {
		return
	}
	cut := f.served - uint64(len(f.groups))
	busy := map[string]bool{}
	for _, h := range []timeHeap{q.later, q.running} {
		for _, it := range h {
			if it.live() {
				busy[it.e.grp] = true
			}
		}
	}
	for name, g := range f.groups {
		if name != "" && g.served < cut && !busy[name] && g.head() == nil {
			delete(f.groups, name)
		}
	}
}
