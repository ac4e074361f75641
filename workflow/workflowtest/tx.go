package workflowtest

import (
	"errors"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/backendtest"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/workflow"
)

// BeginTx begins a transaction on b in the form b's EnqueueTx takes.
type BeginTx func(t *testing.T, b backends.Backend) (tx any, commit, rollback func() error)

// RunTx runs the transactional cases on a backends.TxEnqueuer (Prepare,
// then Prepared.EnqueueTx, as SQLite needs): a workflow
// enqueued in a transaction that commits runs whole; one whose
// transaction rolls back never runs, and its record is deleted after the
// engine's TxGrace.
func RunTx(t *testing.T, open Opener, begin BeginTx) {
	t.Run("CommittedTxRuns", func(t *testing.T) {
		t.Parallel()
		en := newEnv(t, open)
		ref := en.enqueueTx(begin, true)
		en.drain()
		var got int
		if en.waitFor(ref.ID, &got); got != 3 {
			t.Fatalf("b = %d; want 3", got)
		}
	})
	t.Run("RolledBackTxNeverRuns", func(t *testing.T) {
		t.Parallel()
		clock := &backendtest.Clock{}
		en := newEnvAt(t, open, clock)
		ref := en.enqueueTx(begin, false)
		en.drain()
		if _, err := en.e.Reconcile(en.ctx); err != nil {
			t.Fatal(err)
		}
		en.wantStates(ref.ID, workflow.Starting, "a:blocked", "b:blocked")
		clock.Advance(2 * time.Hour) // past the default TxGrace of 1h
		if _, err := en.e.Reconcile(en.ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := workflow.Status(en.ctx, en.c, ref.ID); !errors.Is(err, job.ErrNotFound) {
			t.Fatalf("Status after TxGrace returned %v; want ErrNotFound", err)
		}
		if ran := en.ranSteps(); len(ran) != 0 {
			t.Fatalf("steps of a rolled-back workflow ran: %v", ran)
		}
	})
}

// enqueueTx prepares the chain a -> b, enqueues it in a transaction and
// commits or rolls back.
func (en *env) enqueueTx(begin BeginTx, commit bool) workflow.Ref {
	en.t.Helper()
	p, err := workflow.Prepare(en.ctx, en.c, workflow.Chain(s("a", 1), s("b", 2)), nil)
	if err != nil {
		en.t.Fatal(err)
	}
	tx, commitTx, rollback := begin(en.t, en.b)
	ref, err := p.EnqueueTx(en.ctx, tx)
	if err != nil {
		en.t.Fatal(err)
	}
	end := rollback
	if commit {
		end = commitTx
	}
	if err := end(); err != nil {
		en.t.Fatal(err)
	}
	return ref
}
