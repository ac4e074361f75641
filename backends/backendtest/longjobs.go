package backendtest

import (
	"fmt"
	"slices"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

// testAnnotator checks backends.Annotator: notes written under the lease,
// read by ID, kept across a failed attempt and a re-delivery, bounded logs,
// and every write from a lease that no longer holds the job refused.
func testAnnotator(h *harness) {
	an := h.b.(backends.Annotator)
	q := h.queue("notes")
	h.enqueue(h.ins(q, "long"))
	first := h.reserveOne(q, shortLease)
	id := first.ID

	n, err := an.Notes(h.ctx, backends.NotesParams{JobID: id})
	must(h.t, err)
	if n.Progress != nil || n.Checkpoint != nil || len(n.Logs) != 0 {
		h.t.Fatalf("notes of a fresh job = %+v, want none", n)
	}
	_, err = an.Notes(h.ctx, backends.NotesParams{JobID: h.newID()})
	expectErr(h.t, err, job.ErrNotFound)

	line := func(i int) job.LogLine {
		return job.LogLine{At: h.now(), Level: "INFO", Msg: fmt.Sprintf("line %d", i), Attrs: "batch=" + fmt.Sprint(i)}
	}
	must(h.t, an.Annotate(h.ctx, backends.AnnotateParams{
		Lease:      first.Lease,
		Progress:   &job.Progress{Fraction: 0.25, Message: "a quarter", Output: []byte(`{"rows":25}`)},
		Checkpoint: []byte(`{"cursor":25}`),
		Logs:       []job.LogLine{line(1), line(2)},
		KeepLogs:   3,
	}))
	// Progress alone leaves the checkpoint; logs past the bound drop the
	// oldest and count them, with the lines the writer dropped itself.
	must(h.t, an.Annotate(h.ctx, backends.AnnotateParams{
		Lease: first.Lease, Progress: &job.Progress{Fraction: 0.5}, Logs: []job.LogLine{line(3), line(4), line(5)},
		KeepLogs: 3, LogsDropped: 10,
	}))
	n, err = an.Notes(h.ctx, backends.NotesParams{JobID: id})
	must(h.t, err)
	switch {
	case n.Progress == nil || n.Progress.Fraction != 0.5 || n.Progress.Message != "" || n.Progress.Output != nil:
		h.t.Fatalf("progress %+v, want the second report alone", n.Progress)
	case string(n.Checkpoint) != `{"cursor":25}` || n.CheckpointAt.IsZero():
		h.t.Fatalf("checkpoint %q at %v, want the first one kept", n.Checkpoint, n.CheckpointAt)
	case !slices.Equal(msgs(n.Logs), []string{"line 3", "line 4", "line 5"}):
		h.t.Fatalf("logs %v, want the newest 3", msgs(n.Logs))
	case n.LogsDropped != 12:
		h.t.Fatalf("logs dropped %d, want 2 by the backend and 10 by the writer", n.LogsDropped)
	case n.Logs[0].Attrs != "batch=3" || n.Logs[0].Level != "INFO" || n.Logs[0].At.IsZero():
		h.t.Fatalf("log line lost fields: %+v", n.Logs[0])
	}
	// The byte bound: two lines of 11 bytes fit in 25, three do not.
	must(h.t, an.Annotate(h.ctx, backends.AnnotateParams{
		Lease: first.Lease, Logs: []job.LogLine{{Level: "WARN", Msg: "1234567"}, {Level: "WARN", Msg: "abcdefg"}},
		KeepLogBytes: 25,
	}))
	if n, err = an.Notes(h.ctx, backends.NotesParams{JobID: id}); err != nil || len(n.Logs) != 2 || n.LogsDropped != 15 {
		h.t.Fatalf("after a byte bound: %d lines, %d dropped, %v; want 2 and 15", len(n.Logs), n.LogsDropped, err)
	}

	// A failed attempt keeps the notes for the retry.
	must(h.t, h.b.Retry(h.ctx, backends.RetryParams{Lease: first.Lease, At: h.now(), Error: &job.AttemptError{Attempt: 1, Error: "boom"}}))
	expectErr(h.t, an.Annotate(h.ctx, backends.AnnotateParams{Lease: first.Lease, Checkpoint: []byte(`"late"`)}), job.ErrLeaseLost)
	second := h.eventuallyReserve(q, shortLease)
	if n, err = an.Notes(h.ctx, backends.NotesParams{JobID: id}); err != nil || string(n.Checkpoint) != `{"cursor":25}` {
		h.t.Fatalf("after a retry the checkpoint is %q, %v; want the first delivery's", n.Checkpoint, err)
	}
	must(h.t, an.Annotate(h.ctx, backends.AnnotateParams{Lease: second.Lease, Checkpoint: []byte(`{"cursor":50}`)}))

	// The second delivery's lease expires and a third takes the job: the
	// stuck second holder's writes are refused, the third's land.
	h.pass(shortLease)
	third := h.eventuallyReserve(q, longLease)
	if third.ID != id {
		h.t.Fatalf("reserved %s, want %s again", third.ID, id)
	}
	expectErr(h.t, an.Annotate(h.ctx, backends.AnnotateParams{Lease: second.Lease, Checkpoint: []byte(`"stale"`)}), job.ErrLeaseLost)
	forged := third.Lease
	forged.Token += "-forged"
	expectErr(h.t, an.Annotate(h.ctx, backends.AnnotateParams{Lease: forged, Checkpoint: []byte(`"forged"`)}), job.ErrLeaseLost)
	ic := &job.IgnoredCancel{At: h.now(), Cause: "timeout", For: 5 * time.Second, Worker: "bt"}
	must(h.t, an.Annotate(h.ctx, backends.AnnotateParams{Lease: third.Lease, Progress: &job.Progress{Fraction: 1}, IgnoredCancel: ic}))

	// Finished, the job keeps its notes for readers and takes no writes.
	h.complete(third, []byte("ok"))
	expectErr(h.t, an.Annotate(h.ctx, backends.AnnotateParams{Lease: third.Lease, Progress: &job.Progress{Fraction: 0}}), job.ErrLeaseLost)
	n, err = an.Notes(h.ctx, backends.NotesParams{JobID: id})
	must(h.t, err)
	switch {
	case string(n.Checkpoint) != `{"cursor":50}`:
		h.t.Fatalf("final checkpoint %q, want the second delivery's", n.Checkpoint)
	case n.Progress == nil || n.Progress.Fraction != 1:
		h.t.Fatalf("final progress %+v, want 1", n.Progress)
	case n.IgnoredCancel == nil || n.IgnoredCancel.Cause != "timeout" || n.IgnoredCancel.For != 5*time.Second:
		h.t.Fatalf("ignored cancel %+v", n.IgnoredCancel)
	case n.UpdatedAt.IsZero():
		h.t.Fatal("notes without an update time")
	}
}

func msgs(lines []job.LogLine) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l.Msg
	}
	return out
}

// testAnnotateKV checks the fallback for backends without an Annotator
// (backends.AnnotateKV over the backend's KVStore): notes kept across
// deliveries, and once a later delivery wrote or claimed them, an earlier
// one's writes refused.
func testAnnotateKV(h *harness) {
	kv := h.b.(backends.KVStore)
	id := h.newID()
	first := job.Lease{JobID: id, Token: "t1"}
	second := job.Lease{JobID: id, Token: "t2"}
	now := h.now()
	must(h.t, backends.AnnotateKV(h.ctx, kv, 1, backends.AnnotateParams{
		Lease: first, Progress: &job.Progress{Fraction: 0.3}, Checkpoint: []byte(`{"page":3}`),
		Logs: []job.LogLine{{Level: "INFO", Msg: "a"}, {Level: "INFO", Msg: "b"}}, KeepLogs: 1,
	}, now))
	n, err := backends.ClaimKV(h.ctx, kv, second, 2, now) // the re-delivery reads its checkpoint
	must(h.t, err)
	if string(n.Checkpoint) != `{"page":3}` || n.Progress == nil || n.Progress.Fraction != 0.3 || len(n.Logs) != 1 || n.LogsDropped != 1 {
		h.t.Fatalf("claimed notes %+v", n)
	}
	expectErr(h.t, backends.AnnotateKV(h.ctx, kv, 1, backends.AnnotateParams{Lease: first, Checkpoint: []byte(`"stale"`)}, now), job.ErrLeaseLost)
	must(h.t, backends.AnnotateKV(h.ctx, kv, 2, backends.AnnotateParams{Lease: second, Checkpoint: []byte(`{"page":4}`)}, now))
	n, err = backends.NotesKV(h.ctx, kv, id, now)
	must(h.t, err)
	if string(n.Checkpoint) != `{"page":4}` || n.Progress == nil || n.Progress.Fraction != 0.3 {
		h.t.Fatalf("notes %+v; want the second delivery's checkpoint and the first's progress", n)
	}
	if n, err := backends.NotesKV(h.ctx, kv, h.newID(), now); err != nil || n.Checkpoint != nil {
		h.t.Fatalf("notes of a job without any = %+v, %v", n, err)
	}
}
