package pgbackend

import (
	"context"
	"database/sql"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// querier runs the enqueue and complete statements on a pool, a pgx.Tx or
// a database/sql *sql.Tx: the caller's transaction comes in either form.
type querier interface {
	query(ctx context.Context, sql string, args ...any) (rows, error)
}

// rows is what both drivers' result sets offer.
type rows interface {
	scanner
	Next() bool
	Err() error
	Close()
}

type scanner interface{ Scan(dest ...any) error }

// pgxQuerier adapts a *pgxpool.Pool or a pgx.Tx.
type pgxQuerier struct {
	q interface {
		Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	}
}

func (p pgxQuerier) query(ctx context.Context, sql string, args ...any) (rows, error) {
	r, err := p.q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgxRows{r}, nil
}

type pgxRows struct{ pgx.Rows }

// sqlQuerier adapts a *sql.Tx on pgx's stdlib driver, which passes Go
// slices through as PostgreSQL arrays.
type sqlQuerier struct{ tx *sql.Tx }

func (s sqlQuerier) query(ctx context.Context, query string, args ...any) (rows, error) {
	r, err := s.tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{r}, nil
}

type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { _ = r.Rows.Close() }

// scanAll calls fn for every row, then closes the rows.
func scanAll(r rows, fn func(scanner) error) error {
	defer r.Close()
	for r.Next() {
		if err := fn(r); err != nil {
			return err
		}
	}
	return r.Err()
}

// drain reads and discards every row.
func drain(r rows, err error) error {
	if err != nil {
		return err
	}
	return scanAll(r, func(scanner) error { return nil })
}

// asyncQuerier runs each statement on the pool after asyncCommit, in one
// round trip and one implicit transaction, for the changes at-least-once
// delivery lets a server crash lose.
type asyncQuerier struct{ pool *pgxpool.Pool }

func (a asyncQuerier) query(ctx context.Context, sql string, args ...any) (rows, error) {
	var batch pgx.Batch
	batch.Queue(asyncCommit)
	batch.Queue(sql, args...)
	br := a.pool.SendBatch(ctx, &batch)
	if _, err := br.Exec(); err != nil {
		br.Close()
		return nil, err
	}
	r, err := br.Query()
	if err != nil {
		br.Close()
		return nil, err
	}
	return batchRows{pgxRows{r}, br}, nil
}

// batchRows closes its batch after its rows.
type batchRows struct {
	pgxRows
	br pgx.BatchResults
}

func (r batchRows) Close() {
	r.pgxRows.Close()
	_ = r.br.Close()
}
