package backends

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/conveyorhq/conveyor/job"
)

// Annotator keeps a long job's notes (job.Notes: progress, checkpoint,
// log lines) with the job, written under the job's lease and read by job
// ID. Every write is fenced by the lease: one from a lease that no longer
// holds the job (it expired and the job was reserved again, or the job
// finished) fails with job.ErrLeaseLost and changes nothing, so a stuck
// worker's late writes never overwrite the retry's. Notes survive retries
// and re-deliveries and go when the job is pruned or deleted.
//
// Fallback when absent: the worker keeps the notes in the backend's
// KVStore under NotesKey(id) (see AnnotateKV for what its fencing does
// and does not guarantee); without a KVStore either, worker.Progress,
// worker.Checkpoint and the readers return job.ErrUnsupported.
type Annotator interface {
	// Annotate applies p to the notes of the job p.Lease holds, as
	// AnnotateParams.Apply describes, atomically with the lease check.
	Annotate(ctx context.Context, p AnnotateParams) error
	// Notes returns a job's notes: empty ones for a job that has none,
	// an error wrapping job.ErrNotFound for an unknown job.
	Notes(ctx context.Context, p NotesParams) (job.Notes, error)
}

// AnnotateParams is the input of Annotator.Annotate. Every field but
// Lease is optional; a zero field leaves that part of the notes as it is.
type AnnotateParams struct {
	Lease    job.Lease
	Progress *job.Progress // nil: unchanged
	// Checkpoint replaces the stored checkpoint; nil: unchanged.
	Checkpoint []byte
	// Logs are appended, then the oldest lines are dropped (and counted
	// in LogsDropped) until at most KeepLogs lines of at most
	// KeepLogBytes bytes (LogLine.Size) are left.
	Logs         []job.LogLine
	KeepLogs     int // 0: DefaultKeepLogs
	KeepLogBytes int // 0: DefaultKeepLogBytes
	// LogsDropped counts lines the writer dropped before sending them.
	LogsDropped   int
	IgnoredCancel *job.IgnoredCancel // nil: unchanged
}

// NotesParams is the input of Annotator.Notes.
type NotesParams struct {
	JobID string
}

// The bounds on a job's kept log lines when AnnotateParams gives none.
const (
	DefaultKeepLogs     = 1000
	DefaultKeepLogBytes = 256 << 10
)

// Apply changes n as Annotate does, at time now. Backends that store the
// notes as one encoded value (every backend in this repository) call it
// between reading and writing them under the lease check.
func (p AnnotateParams) Apply(n *job.Notes, now time.Time) {
	if p.Progress != nil {
		pr := *p.Progress
		pr.Output = append([]byte(nil), pr.Output...)
		n.Progress = &pr
	}
	if p.Checkpoint != nil {
		n.Checkpoint = append([]byte(nil), p.Checkpoint...)
		n.CheckpointAt = now
	}
	if p.IgnoredCancel != nil {
		ic := *p.IgnoredCancel
		n.IgnoredCancel = &ic
	}
	n.LogsDropped += p.LogsDropped
	n.Logs = append(n.Logs, p.Logs...)
	keep, keepBytes := p.KeepLogs, p.KeepLogBytes
	if keep <= 0 {
		keep = DefaultKeepLogs
	}
	if keepBytes <= 0 {
		keepBytes = DefaultKeepLogBytes
	}
	size := 0
	first := len(n.Logs) // the oldest line kept
	for first > 0 && len(n.Logs)-first < keep && size+n.Logs[first-1].Size() <= keepBytes {
		first--
		size += n.Logs[first].Size()
	}
	if first > 0 {
		n.LogsDropped += first
		n.Logs = append([]job.LogLine(nil), n.Logs[first:]...)
	}
	n.UpdatedAt = now
}

// EncodeNotes and DecodeNotes are the stored form of job.Notes (JSON), the
// same in every backend that keeps them as one value. An empty stored
// value decodes to empty notes.
func EncodeNotes(n job.Notes) ([]byte, error) {
	b, err := json.Marshal(n)
	if err != nil {
		return nil, fmt.Errorf("encode job notes: %w", err)
	}
	return b, nil
}

// DecodeNotes: see EncodeNotes.
func DecodeNotes(b []byte) (job.Notes, error) {
	var n job.Notes
	if len(b) == 0 {
		return n, nil
	}
	if err := json.Unmarshal(b, &n); err != nil {
		return n, fmt.Errorf("decode job notes: %w", err)
	}
	return n, nil
}

// NotesKey is the KVStore key of a job's notes in the fallback.
func NotesKey(jobID string) string { return "job-notes/" + jobID }

// kvNotesFor is how long the fallback keeps a job's notes after their last
// write: the KV store cannot follow the job's own retention, so they are
// kept as long as a dead letter is by default.
const kvNotesFor = DefaultKeepDead

// kvNotes is the fallback's stored value: the notes and which delivery
// wrote them last.
type kvNotes struct {
	Delivery int       `json:"delivery"`
	Token    string    `json:"token"`
	Notes    job.Notes `json:"notes"`
}

// AnnotateKV is the fallback for a backend without an Annotator: it applies
// p to the notes kept in kv under NotesKey, by compare-and-set on the key's
// version, with the writer's delivery number (job.Record.Deliveries of the
// lease holder) and lease token stored beside them.
//
// What that guarantees: a write from an earlier delivery than the one
// stored fails with job.ErrLeaseLost, so once a retry or a re-delivery
// has written (worker.LastCheckpoint writes a claim when it reads), a stuck
// or partitioned earlier holder can no longer overwrite its notes, and no
// two writers interleave a read-modify-write. What it does not: the KV
// store cannot see the job's lease, so a stale holder's write that comes
// before the new delivery's first write lands (and is then overwritten or
// read as the latest checkpoint); and a delivery given back (a snooze, a
// release at shutdown) is counted again by the next one, so the two share
// a number: the worker itself refuses writes from a delivery it has
// finished or abandoned, which covers its own late goroutines. Notes
// expire kvNotesFor (7 days) after their last write.
func AnnotateKV(ctx context.Context, kv KVStore, delivery int, p AnnotateParams, now time.Time) error {
	return updateKV(ctx, kv, p.Lease, delivery, now, func(n *job.Notes) { p.Apply(n, now) })
}

// ClaimKV marks the fallback's notes of lease's job as written by delivery,
// without changing them, so that earlier deliveries' writes fail from now
// on. It returns the notes.
func ClaimKV(ctx context.Context, kv KVStore, lease job.Lease, delivery int, now time.Time) (job.Notes, error) {
	var out job.Notes
	err := updateKV(ctx, kv, lease, delivery, now, func(n *job.Notes) { out = *n })
	return out, err
}

func updateKV(ctx context.Context, kv KVStore, lease job.Lease, delivery int, now time.Time, fn func(*job.Notes)) error {
	key := NotesKey(lease.JobID)
	for range 8 { // conflicts come only from the holder's own concurrent writes
		var cur kvNotes
		var ver int64
		got, err := kv.GetKV(ctx, GetKVParams{Key: key, Now: now})
		switch {
		case errors.Is(err, job.ErrNotFound):
		case err != nil:
			return fmt.Errorf("read job notes: %w", err)
		default:
			if err := json.Unmarshal(got.Value, &cur); err != nil {
				return fmt.Errorf("decode job notes of %s: %w", lease.JobID, err)
			}
			ver = got.Version
			if cur.Delivery > delivery {
				return fmt.Errorf("%w: job %s notes were written by delivery %d, this is delivery %d",
					job.ErrLeaseLost, lease.JobID, cur.Delivery, delivery)
			}
		}
		fn(&cur.Notes)
		cur.Delivery, cur.Token = delivery, lease.Token
		val, err := json.Marshal(cur)
		if err != nil {
			return fmt.Errorf("encode job notes: %w", err)
		}
		_, err = kv.PutKV(ctx, PutKVParams{Key: key, Value: val, IfVersion: ver, ExpiresAt: now.Add(kvNotesFor), Now: now})
		if errors.Is(err, job.ErrConflict) {
			continue
		}
		if err != nil {
			return fmt.Errorf("write job notes: %w", err)
		}
		return nil
	}
	return fmt.Errorf("write job notes of %s: %w: kept changing", lease.JobID, job.ErrConflict)
}

// NotesKV reads the fallback's notes of a job: empty notes when it has
// none (the KV store cannot tell an unknown job from one without notes).
func NotesKV(ctx context.Context, kv KVStore, jobID string, now time.Time) (job.Notes, error) {
	got, err := kv.GetKV(ctx, GetKVParams{Key: NotesKey(jobID), Now: now})
	if errors.Is(err, job.ErrNotFound) {
		return job.Notes{}, nil
	}
	if err != nil {
		return job.Notes{}, fmt.Errorf("read job notes: %w", err)
	}
	var cur kvNotes
	if err := json.Unmarshal(got.Value, &cur); err != nil {
		return job.Notes{}, fmt.Errorf("decode job notes of %s: %w", jobID, err)
	}
	return cur.Notes, nil
}
