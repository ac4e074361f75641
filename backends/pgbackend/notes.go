package pgbackend

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/internal/record"
	"github.com/conveyorhq/conveyor/job"
)

var _ backends.Annotator = (*Backend)(nil)

// Annotate implements backends.Annotator in one transaction: the job's row
// is checked for the lease and held FOR SHARE, so no Complete, Retry or
// Reserve changes it until the notes (table job_notes, migration 5) are
// written.
func (b *Backend) Annotate(ctx context.Context, p backends.AnnotateParams) error {
	if err := b.gate.Check(ctx); err != nil {
		return err
	}
	now := b.cfg.Clock.Now()
	s := b.q.schema
	err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		var stored []byte
		var held bool
		err := tx.QueryRow(ctx, `WITH held AS (
				SELECT id FROM `+s+`.jobs WHERE id = $1 AND state = 'running' AND lease_token = $2 FOR SHARE)
			SELECT EXISTS (SELECT 1 FROM held), (SELECT notes FROM `+s+`.job_notes WHERE id = $1 FOR UPDATE)`,
			p.Lease.JobID, p.Lease.Token).Scan(&held, &stored)
		if err != nil {
			return err
		}
		if !held {
			return record.LeaseLost(p.Lease)
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
		_, err = tx.Exec(ctx, `INSERT INTO `+s+`.job_notes (id, notes) VALUES ($1, $2)
			ON CONFLICT (id) DO UPDATE SET notes = excluded.notes`, p.Lease.JobID, string(enc))
		return err
	})
	if err != nil && !errors.Is(err, job.ErrLeaseLost) {
		return fmt.Errorf("pgbackend: annotate %s: %w", p.Lease.JobID, err)
	}
	return err
}

// Notes implements backends.Annotator.
func (b *Backend) Notes(ctx context.Context, p backends.NotesParams) (job.Notes, error) {
	if err := b.gate.Check(ctx); err != nil {
		return job.Notes{}, err
	}
	s := b.q.schema
	var stored []byte
	err := b.pool.QueryRow(ctx, `SELECT n.notes FROM `+s+`.jobs j LEFT JOIN `+s+`.job_notes n ON n.id = j.id WHERE j.id = $1`,
		p.JobID).Scan(&stored)
	if errors.Is(err, pgx.ErrNoRows) {
		return job.Notes{}, record.NotFound(p.JobID)
	}
	if err != nil {
		return job.Notes{}, fmt.Errorf("pgbackend: notes of %s: %w", p.JobID, err)
	}
	return backends.DecodeNotes(stored)
}
