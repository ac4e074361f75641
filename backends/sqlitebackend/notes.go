package sqlitebackend

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/internal/record"
	"github.com/conveyorhq/conveyor/job"
)

var _ backends.Annotator = (*Backend)(nil)

// Annotate implements backends.Annotator: the lease check, the read and
// the write of the job's notes row in one write transaction. The row is
// deleted with the job (a trigger in schema.sql).
func (b *Backend) Annotate(ctx context.Context, p backends.AnnotateParams) error {
	if err := b.gate.Check(ctx); err != nil {
		return err
	}
	now := b.cfg.Clock.Now()
	err := b.write(ctx, func(tx *sql.Tx) error {
		var held int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM conveyor_jobs WHERE id = ? AND state = 'running' AND lease_token = ?`,
			p.Lease.JobID, p.Lease.Token).Scan(&held)
		if errors.Is(err, sql.ErrNoRows) {
			return record.LeaseLost(p.Lease)
		}
		if err != nil {
			return err
		}
		var stored []byte
		err = tx.QueryRowContext(ctx, `SELECT notes FROM conveyor_job_notes WHERE id = ?`, p.Lease.JobID).Scan(&stored)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		n, err := backends.DecodeNotes(stored)
		if err != nil {
			return err
		}
		p.Apply(&n, now)
		enc, err := backends.EncodeNotes(n)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO conveyor_job_notes (id, notes) VALUES (?, ?)
			ON CONFLICT (id) DO UPDATE SET notes = excluded.notes`, p.Lease.JobID, enc)
		return err
	})
	if err != nil && !errors.Is(err, job.ErrLeaseLost) {
		return fmt.Errorf("sqlitebackend: annotate %s: %w", p.Lease.JobID, err)
	}
	return err
}

// Notes implements backends.Annotator.
func (b *Backend) Notes(ctx context.Context, p backends.NotesParams) (job.Notes, error) {
	if err := b.gate.Check(ctx); err != nil {
		return job.Notes{}, err
	}
	var stored []byte
	err := b.ro.QueryRowContext(ctx, `SELECT n.notes FROM conveyor_jobs j LEFT JOIN conveyor_job_notes n ON n.id = j.id WHERE j.id = ?`,
		p.JobID).Scan(&stored)
	if errors.Is(err, sql.ErrNoRows) {
		return job.Notes{}, record.NotFound(p.JobID)
	}
	if err != nil {
		return job.Notes{}, fmt.Errorf("sqlitebackend: notes of %s: %w", p.JobID, err)
	}
	return backends.DecodeNotes(stored)
}
