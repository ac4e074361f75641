package backendtest

import (
	"errors"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

// Tx is a transaction of the kind a backend's EnqueueTx takes, begun by
// Suite.BeginTx on the backend's own database.
type Tx struct {
	// Tx is what EnqueueTx receives: a *sql.Tx, a pgx.Tx.
	Tx       any
	Commit   func() error
	Rollback func() error
}

// testTxEnqueuer: jobs enqueued in the caller's transaction exist if and
// only if it commits, in the order enqueued, however many calls made them.
func testTxEnqueuer(h *harness) {
	if h.s.BeginTx == nil {
		h.t.Fatalf("%T implements backends.TxEnqueuer: set Suite.BeginTx", h.b)
	}
	te := h.b.(backends.TxEnqueuer)
	q := h.queue("tx")
	enqueueTx := func(tx Tx, ins ...*backends.JobInsert) {
		h.t.Helper()
		if _, err := te.EnqueueTx(h.ctx, tx.Tx, backends.EnqueueParams{Jobs: ins}); err != nil {
			_ = tx.Rollback()
			h.t.Fatalf("EnqueueTx: %v", err)
		}
	}

	rolledBack := h.ins(q, "rolled back")
	tx := h.s.BeginTx(h.t, h.b)
	enqueueTx(tx, rolledBack)
	must(h.t, tx.Rollback())
	h.expectEmpty(q)
	if in, ok := h.b.(backends.Inspector); ok {
		_, err := in.GetJob(h.ctx, backends.GetJobParams{ID: rolledBack.ID})
		expectErr(h.t, err, job.ErrNotFound)
	}

	first, second := h.ins(q, "first"), h.ins(q, "second")
	tx = h.s.BeginTx(h.t, h.b)
	enqueueTx(tx, first)
	enqueueTx(tx, second)
	must(h.t, tx.Commit())
	recs := h.reserve(q, 10, longLease)
	if len(recs) != 2 || recs[0].ID != first.ID || recs[1].ID != second.ID {
		h.t.Fatalf("after commit reserved %d jobs, want first and second in order", len(recs))
	}
	for _, r := range recs {
		h.complete(r, nil)
	}

	if _, err := te.EnqueueTx(h.ctx, "not a transaction", backends.EnqueueParams{Jobs: []*backends.JobInsert{h.ins(q, "x")}}); !errors.Is(err, job.ErrInvalid) {
		h.t.Fatalf("EnqueueTx(a string) = %v, want ErrInvalid", err)
	}
}
