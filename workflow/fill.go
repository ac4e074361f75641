package workflow

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/conveyorhq/conveyor/queue"
)

// A start of more than enqueueBatch first steps (a 10,000-member group)
// does not hold its workers back until every job is in: startSteps
// enqueues the first batch while the record is Starting, as every start
// does, writes the record Running and Filling with every first step
// marked enqueued, and only then enqueues the rest, batch by batch
// (fill), so that workers run the first members while the rest go in.
//
// What stays all or nothing: a refusal of the first batch refuses the
// whole workflow and leaves nothing stored. A later batch could be
// refused only for what the first meets too (the largest payload goes in
// the first), except a queue bound, which each batch meets anew: a start
// into a queue with a bound is not filled. Should a later batch be
// refused all the same (a bound set meanwhile), its steps end as steps
// refused at run time do: dead with the reason, or blocked again for the
// next advance if the queue was full. A start that dies midway leaves the
// record Filling; past StartGrace the reconciler enqueues its missing
// steps again (refill), those whose jobs exist being duplicates by ID.

// pendingStep is a first step of one of a start's records, by position.
type pendingStep struct {
	wf int // in the start's records
	st *stepRecord
}

func requests(rs []*record, ps []pendingStep) []queue.Request {
	reqs := make([]queue.Request, len(ps))
	for i, p := range ps {
		reqs[i] = request(rs[p.wf].ID, p.st)
	}
	return reqs
}

// fillable reports whether first steps ps may be enqueued in batches: no
// queue of theirs has a bound.
func (s *store) fillable(ctx context.Context, ps []pendingStep) bool {
	seen := map[string]bool{}
	for _, p := range ps {
		q := or(p.st.Spec.Queue, queue.DefaultQueue)
		if !seen[q] && s.c.QueueOptions(ctx, q).MaxDepth > 0 {
			return false
		}
		seen[q] = true
	}
	return true
}

// largestFirst moves the step with the largest payload to the front, into
// the first batch: if a size limit refuses any, it refuses that one, and
// the whole workflow with it.
func largestFirst(ps []pendingStep) {
	big := 0
	for i, p := range ps {
		if len(p.st.Spec.Payload) > len(ps[big].st.Spec.Payload) {
			big = i
		}
	}
	p := ps[big]
	copy(ps[1:big+1], ps[:big])
	ps[0] = p
}

// fill enqueues rest, the first steps past the first batch of the records
// rs marks Filling, enqueueBatch a call, then clears Filling. A batch the
// backend refuses is enqueued again a step at a time (enqueueSteps), and
// the record then gets what became of each. An error that leaves a
// batch's outcome open stops the fill: the record stays Filling, for the
// reconciler's refill.
func (s *store) fill(ctx context.Context, rs []*record, rest []pendingStep) error {
	now := s.now()
	var apart []pendingStep // not enqueued after all: dead, or blocked again
	for part := range slices.Chunk(rest, enqueueBatch) {
		_, err := s.c.EnqueueMany(ctx, requests(rs, part)...)
		if err == nil {
			continue
		}
		if !refused(err) {
			return fmt.Errorf("%s: %w", about(rs), &queue.OutcomeUnknownError{IDs: idsOf(rs), Err: err})
		}
		for wf := range rs {
			var steps []*stepRecord
			for _, p := range part {
				if p.wf == wf {
					p.st.State, p.st.HasJob, p.st.Enqueued = StepBlocked, false, time.Time{}
					steps = append(steps, p.st)
				}
			}
			if len(steps) == 0 {
				continue
			}
			if _, err := s.enqueueSteps(ctx, rs[wf], steps, now, false); err != nil && !refused(err) {
				return fmt.Errorf("workflow %s: %w", rs[wf].ID, &queue.OutcomeUnknownError{IDs: []string{rs[wf].ID}, Err: err})
			}
		}
		for _, p := range part {
			if p.st.State != StepEnqueued {
				apart = append(apart, p)
			}
		}
	}
	var errs []error
	for wf, mine := range rs {
		if !mine.Filling {
			continue
		}
		if err := s.filled(ctx, mine.ID, apart, wf); err != nil {
			errs = append(errs, fmt.Errorf("workflow %s: %w", mine.ID, err))
		}
	}
	return errors.Join(errs...)
}

// filled clears workflow id's Filling, with what became of the steps of
// apart that are its (rs position wf), then cancels what it enqueued if a
// Cancel came meanwhile (which could not cancel jobs not yet in), and
// advances it if a step ended other than enqueued.
func (s *store) filled(ctx context.Context, id string, apart []pendingStep, wf int) error {
	moved := false
	r, err := s.update(ctx, id, func(r *record) (bool, error) {
		if !r.Filling || r.State.Final() {
			// Refilled by the reconciler, or finished already (its last
			// members ran before this write): a final record's flag is
			// never read, and its expiry is the engine's to write.
			return false, nil
		}
		r.Filling = false
		for _, p := range apart {
			if st := r.step(p.st.Name); p.wf == wf && st != nil && st.State == StepEnqueued {
				st.State, st.HasJob, st.Enqueued, st.Finished, st.Reason = p.st.State, p.st.HasJob, p.st.Enqueued, p.st.Finished, p.st.Reason
				moved = true
			}
		}
		return true, nil
	})
	switch {
	case err != nil:
		return err
	case r.CancelRequested:
		return s.cancelJobs(ctx, r)
	case moved:
		// The record holds the steps set apart: an advance that cannot
		// enqueue the blocked ones (their queue still full) leaves them
		// to a later one, the reconciler's at the latest. The workflow
		// is stored either way, which is what Enqueue reports.
		_, _ = s.advance(ctx, id, nil)
	}
	return nil
}

// refill completes the fill of r, whose Enqueue stopped before it cleared
// Filling: every first step the record holds as enqueued is enqueued
// again (those whose jobs exist are duplicates by ID).
func (s *store) refill(ctx context.Context, r *record) error {
	var rest []pendingStep
	for _, st := range r.Steps {
		if len(st.Deps) == 0 && st.State == StepEnqueued {
			rest = append(rest, pendingStep{st: st})
		}
	}
	return s.fill(ctx, []*record{r}, rest)
}
