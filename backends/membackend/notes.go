package membackend

import (
	"context"
	"slices"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/internal/record"
	"github.com/conveyorhq/conveyor/job"
)

var _ backends.Annotator = (*Backend)(nil)

// Annotate implements backends.Annotator. The notes live in the job's
// entry, so they go when the job is pruned or deleted.
func (b *Backend) Annotate(ctx context.Context, p backends.AnnotateParams) error {
	if err := b.gate.Check(ctx); err != nil {
		return err
	}
	now := b.cfg.Clock.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	e, err := b.leased(p.Lease)
	if err != nil {
		return err
	}
	if e.notes == nil {
		e.notes = &job.Notes{}
	}
	p.Apply(e.notes, now)
	return nil
}

// Notes implements backends.Annotator.
func (b *Backend) Notes(ctx context.Context, p backends.NotesParams) (job.Notes, error) {
	if err := b.gate.Check(ctx); err != nil {
		return job.Notes{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.jobs[p.JobID]
	if e == nil {
		return job.Notes{}, record.NotFound(p.JobID)
	}
	if e.notes == nil {
		return job.Notes{}, nil
	}
	return cloneNotes(*e.notes), nil
}

// cloneNotes copies n deep: Apply changes the stored notes in place.
func cloneNotes(n job.Notes) job.Notes {
	if n.Progress != nil {
		p := *n.Progress
		p.Output = slices.Clone(p.Output)
		n.Progress = &p
	}
	if n.IgnoredCancel != nil {
		ic := *n.IgnoredCancel
		n.IgnoredCancel = &ic
	}
	n.Checkpoint = slices.Clone(n.Checkpoint)
	n.Logs = slices.Clone(n.Logs)
	return n
}
