package pgbackend

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

// EnqueueTx implements backends.TxEnqueuer: the jobs are inserted in the
// caller's transaction, a pgx.Tx or a *sql.Tx opened through pgx's stdlib
// driver on the same database, and exist if and only if it commits.
// Workers are woken when it commits (NOTIFY is transactional).
func (b *Backend) EnqueueTx(ctx context.Context, tx any, p backends.EnqueueParams) ([]backends.EnqueueResult, error) {
	if res, err := b.gate.Enqueue(ctx, p); res != nil || err != nil {
		return res, err
	}
	switch t := tx.(type) {
	case pgx.Tx:
		return b.enqueue(ctx, pgxQuerier{t}, p)
	case *sql.Tx:
		return b.enqueue(ctx, sqlQuerier{t}, p)
	}
	return nil, fmt.Errorf("%w: pgbackend.EnqueueTx needs a pgx.Tx or a *sql.Tx, got %T", job.ErrInvalid, tx)
}

// CompleteTx completes the job l holds inside the caller's transaction, so
// the job is done if and only if the handler's own writes commit. Call it
// from the handler with the lease of worker.JobFromContext(ctx); the
// worker's own completion afterwards finds the job completed under that
// lease and succeeds without changing it.
func (b *Backend) CompleteTx(ctx context.Context, tx pgx.Tx, l job.Lease, result []byte) error {
	if err := b.gate.Check(ctx); err != nil {
		return err
	}
	errs, err := completeMany(ctx, pgxQuerier{tx}, b.q.completeTx,
		backends.CompleteManyParams{Jobs: []backends.CompleteParams{{Lease: l, Result: result}}}, b.cfg.Clock.Now())
	if err != nil {
		return err
	}
	return errs[0]
}
