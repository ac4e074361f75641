package backendtest

import (
	"bytes"
	"fmt"
	"maps"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

// within reports whether t lies in [from, to], widened by precision.
func within(t, from, to time.Time, precision time.Duration) bool {
	return !t.Before(from.Add(-precision)) && !t.After(to.Add(precision))
}

// recordDiff lists every field of got that differs from want. Times in
// want are compared to precision; CreatedAt and StartedAt, which the
// backend sets, must lie in [from, to]; a set Lease token must not be
// empty (its value is the backend's).
func recordDiff(want, got *job.Record, from, to time.Time, precision time.Duration) []string {
	var d []string
	add := func(field string, w, g any) { d = append(d, fmt.Sprintf("%s = %v, want %v", field, g, w)) }
	if got.ID != want.ID {
		add("ID", want.ID, got.ID)
	}
	if got.Queue != want.Queue {
		add("Queue", want.Queue, got.Queue)
	}
	if got.Task != want.Task {
		add("Task", want.Task, got.Task)
	}
	if !bytes.Equal(got.Payload, want.Payload) {
		add("Payload", string(want.Payload), string(got.Payload))
	}
	if len(got.Headers)+len(want.Headers) > 0 && !maps.Equal(got.Headers, want.Headers) {
		add("Headers", want.Headers, got.Headers)
	}
	if got.Priority != want.Priority {
		add("Priority", want.Priority, got.Priority)
	}
	if got.State != want.State {
		add("State", want.State, got.State)
	}
	if !within(got.RunAt, want.RunAt, want.RunAt, precision) {
		add("RunAt", want.RunAt, got.RunAt)
	}
	if !within(got.CreatedAt, from, to, precision) {
		add("CreatedAt", fmt.Sprintf("in [%v, %v]", from, to), got.CreatedAt)
	}
	if want.StartedAt.IsZero() != got.StartedAt.IsZero() || (!got.StartedAt.IsZero() && !within(got.StartedAt, from, to, precision)) {
		add("StartedAt", want.StartedAt, got.StartedAt)
	}
	if want.FinishedAt.IsZero() != got.FinishedAt.IsZero() || (!got.FinishedAt.IsZero() && !within(got.FinishedAt, from, to, precision)) {
		add("FinishedAt", want.FinishedAt, got.FinishedAt)
	}
	if got.Deliveries != want.Deliveries {
		add("Deliveries", want.Deliveries, got.Deliveries)
	}
	if got.MaxDeliveries != want.MaxDeliveries {
		add("MaxDeliveries", want.MaxDeliveries, got.MaxDeliveries)
	}
	if got.Timeout != want.Timeout {
		add("Timeout", want.Timeout, got.Timeout)
	}
	if got.RetryPolicy != want.RetryPolicy {
		add("RetryPolicy", want.RetryPolicy, got.RetryPolicy)
	}
	if got.UniqueKey != want.UniqueKey {
		add("UniqueKey", want.UniqueKey, got.UniqueKey)
	}
	if want.UniqueUntil.IsZero() != got.UniqueUntil.IsZero() || !within(got.UniqueUntil, want.UniqueUntil, want.UniqueUntil, precision) {
		add("UniqueUntil", want.UniqueUntil, got.UniqueUntil)
	}
	if len(got.Errors) != len(want.Errors) {
		add("Errors", want.Errors, got.Errors)
	} else {
		for i, w := range want.Errors {
			g := got.Errors[i]
			if g.Attempt != w.Attempt || g.Error != w.Error || g.Stack != w.Stack || !within(g.At, w.At, w.At, precision) {
				add(fmt.Sprintf("Errors[%d]", i), w, g)
			}
		}
	}
	if !bytes.Equal(got.Result, want.Result) {
		add("Result", string(want.Result), string(got.Result))
	}
	if (want.Lease.Token == "") != (got.Lease.Token == "") || got.Lease.JobID != want.Lease.JobID {
		add("Lease", want.Lease, got.Lease)
	}
	if got.CancelRequested != want.CancelRequested {
		add("CancelRequested", want.CancelRequested, got.CancelRequested)
	}
	return d
}

// expectRecord fails the test if got differs from want in any field.
func (h *harness) expectRecord(what string, want, got *job.Record, from time.Time) {
	h.t.Helper()
	if d := recordDiff(want, got, from, h.now(), h.s.TimePrecision); len(d) > 0 {
		h.t.Fatalf("%s: the record differs:\n  %v", what, d)
	}
}

// testWholeRecord follows one job with every field set through enqueue,
// a failed attempt, a second delivery and dead letter, and compares the
// whole record each time: what a backend forgets or makes up shows here,
// not only the fields a case happens to look at.
func testWholeRecord(h *harness) {
	q := h.queue("record")
	from := h.now()
	ins := &backends.JobInsert{
		ID: h.newID(), Queue: q, Task: "bt.record", Payload: []byte(`{"n":1}`),
		Headers: map[string]string{"traceparent": "00-abc-def-01", "tenant": "t7"}, Priority: 4,
		RunAt: from.Add(-time.Minute).Truncate(time.Millisecond), MaxDeliveries: 9, Timeout: 7 * time.Second,
		RetryPolicy: "slow", UniqueKey: "bt-" + h.ns + "-record",
		UniqueUntil: from.Add(time.Hour).Truncate(time.Millisecond),
	}
	in, lookups := h.b.(backends.Inspector)
	if !lookups { // a broker alone keeps no unique keys (see RunStateless)
		ins.UniqueKey, ins.UniqueUntil = "", time.Time{}
	}
	h.enqueue(ins)
	want := &job.Record{
		ID: ins.ID, Queue: q, Task: ins.Task, Payload: ins.Payload, Headers: ins.Headers, Priority: 4,
		State: job.Running, RunAt: ins.RunAt, StartedAt: from, Deliveries: 1, MaxDeliveries: 9,
		Timeout: 7 * time.Second, RetryPolicy: "slow", UniqueKey: ins.UniqueKey, UniqueUntil: ins.UniqueUntil,
		Lease: job.Lease{JobID: ins.ID, Token: "set"},
	}
	r := h.reserveOne(q, longLease)
	h.expectRecord("first delivery", want, r, from)
	if lookups {
		got, err := in.GetJob(h.ctx, backends.GetJobParams{ID: ins.ID})
		must(h.t, err)
		h.expectRecord("GetJob while running", want, got, from)
	}

	failed := job.AttemptError{Attempt: 1, At: h.now().Truncate(time.Millisecond), Error: "downstream said 503", Stack: "goroutine 7 [running]:\nmain.f()"}
	retryAt := h.now().Truncate(time.Millisecond)
	must(h.t, h.b.Retry(h.ctx, backends.RetryParams{Lease: r.Lease, At: retryAt, Error: &failed}))
	r2 := h.eventuallyReserve(q, longLease)
	want.RunAt, want.Deliveries, want.Errors = retryAt, 2, []job.AttemptError{failed}
	h.expectRecord("second delivery", want, r2, from)

	dead := job.AttemptError{Attempt: 2, At: h.now().Truncate(time.Millisecond), Error: "permanent: card declined"}
	must(h.t, h.b.DeadLetter(h.ctx, backends.DeadLetterParams{Lease: r2.Lease, Error: dead}))
	if !lookups {
		return
	}
	got, err := in.GetJob(h.ctx, backends.GetJobParams{ID: ins.ID})
	must(h.t, err)
	want.State, want.FinishedAt, want.Errors = job.Dead, from, append(want.Errors, dead)
	want.Lease = job.Lease{}
	h.expectRecord("GetJob once dead", want, got, from)
}
