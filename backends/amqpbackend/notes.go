package amqpbackend

import (
	"context"
	"errors"
	"fmt"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/internal/record"
	"github.com/conveyorhq/conveyor/job"
)

var _ backends.Annotator = (*StoredBackend)(nil)

// notesKey is a job's notes in the store, beside its record.
func (s store) notesKey(id string) string { return s.prefix + "/notes/" + id }

// holds reports whether this process holds jl's delivery: only the
// process a delivery was handed to can write its job's notes.
func (b *Backend) holds(jl job.Lease) bool {
	b.leaseMu.Lock()
	defer b.leaseMu.Unlock()
	l := b.leases[jl.Token]
	return l != nil && l.doc.ID == jl.JobID
}

// Annotate implements backends.Annotator with the store. A write is
// fenced twice: this process must hold the delivery (its lease table), and
// the store's record must name the lease, checked just before the notes
// key is written by compare-and-set. The window between the two is the
// store's round trip; the broker alone (Backend) keeps no notes. The key
// expires with the longer retention after its last write, and a job whose
// record is gone has no notes to read.
func (b *StoredBackend) Annotate(ctx context.Context, p backends.AnnotateParams) error {
	if err := b.gate.Check(ctx); err != nil {
		return err
	}
	if !b.holds(p.Lease) {
		return record.LeaseLost(p.Lease)
	}
	st := b.st
	for range 8 { // a conflict is the holder's own concurrent write
		d, _, err := st.get(ctx, p.Lease.JobID)
		if errors.Is(err, job.ErrNotFound) {
			return record.LeaseLost(p.Lease)
		}
		if err != nil {
			return err
		}
		if d.State != job.Running || d.Lease.Token != p.Lease.Token {
			return record.LeaseLost(p.Lease)
		}
		var n job.Notes
		var ver int64
		kv, err := st.kv.GetKV(ctx, backends.GetKVParams{Key: st.notesKey(p.Lease.JobID)})
		switch {
		case errors.Is(err, job.ErrNotFound):
		case err != nil:
			return fmt.Errorf("amqpbackend: notes of %s: %w", p.Lease.JobID, err)
		default:
			if n, err = backends.DecodeNotes(kv.Value); err != nil {
				return fmt.Errorf("amqpbackend: notes of %s: %w", p.Lease.JobID, err)
			}
			ver = kv.Version
		}
		now := b.cfg.Clock.Now()
		p.Apply(&n, now)
		enc, err := backends.EncodeNotes(n)
		if err != nil {
			return err
		}
		put := backends.PutKVParams{Key: st.notesKey(p.Lease.JobID), Value: enc, IfVersion: ver}
		if keep := max(st.keepDone, st.keepDead); keep >= 0 {
			put.ExpiresAt = now.Add(keep)
		}
		_, err = st.kv.PutKV(ctx, put)
		if errors.Is(err, job.ErrConflict) {
			continue
		}
		if err != nil {
			return fmt.Errorf("amqpbackend: annotate %s: %w", p.Lease.JobID, err)
		}
		return nil
	}
	return fmt.Errorf("amqpbackend: annotate %s: %w: the notes kept changing", p.Lease.JobID, job.ErrConflict)
}

// Notes implements backends.Annotator.
func (b *StoredBackend) Notes(ctx context.Context, p backends.NotesParams) (job.Notes, error) {
	if err := b.gate.Check(ctx); err != nil {
		return job.Notes{}, err
	}
	if _, _, err := b.st.get(ctx, p.JobID); err != nil {
		return job.Notes{}, err
	}
	kv, err := b.st.kv.GetKV(ctx, backends.GetKVParams{Key: b.st.notesKey(p.JobID)})
	if errors.Is(err, job.ErrNotFound) {
		return job.Notes{}, nil
	}
	if err != nil {
		return job.Notes{}, fmt.Errorf("amqpbackend: notes of %s: %w", p.JobID, err)
	}
	return backends.DecodeNotes(kv.Value)
}
