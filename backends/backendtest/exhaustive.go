package backendtest

import (
	"fmt"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

// testExhaustive: a reserve comes back short of its limit only when no
// other job was due, so a worker may take a short reserve for an empty
// queue (backends.ExhaustiveReserver).
func testExhaustive(h *harness) {
	exhaustiveShort(h)
	exhaustivePoison(h, func(q string, limit int) []*job.Record { return h.reserve(q, limit, longLease) })
	if sr, ok := h.b.(backends.SlotReserver); ok && !h.s.SlotRulesUnsupported {
		// A rule for another task: the reserve looks at its jobs as slots
		// do, and holds none back.
		rule := backends.SlotRule{Task: "bt.other", Name: "exhaustive", Limit: 1, Backoff: longLease}
		exhaustivePoison(h, func(q string, limit int) []*job.Record {
			res := h.reserveSlots(sr, q, limit, longLease, rule)
			if len(res.HeldBack) != 0 {
				h.t.Fatalf("ReserveSlots held back %d jobs under a rule for another task", len(res.HeldBack))
			}
			return res.Jobs
		})
	}
	exhaustiveMany(h)
}

// exhaustiveShort: fewer jobs due than asked for come back all at once.
func exhaustiveShort(h *harness) {
	q := h.queue("exhaustive-short")
	h.enqueue(h.ins(q, "a"), h.ins(q, "b"), h.ins(q, "c"))
	expectPayloads(h, "a reserve of 10 with 3 due", h.reserve(q, 10, longLease), "a b c")
}

// exhaustivePoison: a job dead-lettered by the reserve, as having used its
// deliveries, does not take the place of a due job behind it.
func exhaustivePoison(h *harness, reserve func(q string, limit int) []*job.Record) {
	q := h.queue("exhaustive-poison")
	poison := h.ins(q, "poison")
	poison.MaxDeliveries, poison.Priority = 1, 10 // first in the reserve order
	h.enqueue(poison)
	expectPayloads(h, "the poison job's one delivery", h.reserve(q, 1, shortLease), "poison")
	h.pass(shortLease) // its lease ends: due, with no delivery left
	h.enqueue(h.ins(q, "a"), h.ins(q, "b"))
	expectPayloads(h, "a reserve of 2 behind a dead-lettered job", reserve(q, 2), "a b")
	h.expectState(poison.ID, job.Dead)
}

// exhaustiveMany: a limit larger than what one script run or statement of
// a backend takes is still filled, and never passed.
func exhaustiveMany(h *harness) {
	q := h.queue("exhaustive-many")
	jobs := make([]*backends.JobInsert, 1100)
	for i := range jobs {
		jobs[i] = h.ins(q, fmt.Sprint(i))
	}
	h.enqueue(jobs...)
	if got := h.reserve(q, 1050, longLease); len(got) != 1050 {
		h.t.Fatalf("a reserve of 1050 with 1100 due returned %d", len(got))
	}
	if got := h.reserve(q, 100, longLease); len(got) != 50 {
		h.t.Fatalf("a reserve of 100 with 50 due returned %d", len(got))
	}
}
