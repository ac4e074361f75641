package dashboard

import (
	"encoding/json"
	"time"

	"github.com/conveyorhq/conveyor/job"
)

// NotesView is what a long job's handler left with the job (job.Notes), as
// the job page and `conveyor jobs show` show it: the checkpoint and a
// progress's partial output as JSON, the ignored cancellation's length in
// seconds.
type NotesView struct {
	Progress      *ProgressView      `json:"progress,omitempty"`
	Checkpoint    json.RawMessage    `json:"checkpoint,omitempty"`
	CheckpointAt  *time.Time         `json:"checkpoint_at,omitempty"`
	Logs          []job.LogLine      `json:"logs,omitempty"`
	LogsDropped   int                `json:"logs_dropped,omitempty"`
	IgnoredCancel *IgnoredCancelView `json:"ignored_cancel,omitempty"`
	UpdatedAt     *time.Time         `json:"updated_at,omitempty"`
}

// ProgressView is a job.Progress.
type ProgressView struct {
	Fraction float64         `json:"fraction"`
	Message  string          `json:"message,omitempty"`
	Output   json.RawMessage `json:"output,omitempty"`
	At       *time.Time      `json:"at,omitempty"`
}

// IgnoredCancelView is a job.IgnoredCancel.
type IgnoredCancelView struct {
	At      time.Time `json:"at"`
	Cause   string    `json:"cause"`
	Seconds float64   `json:"seconds"`
	Worker  string    `json:"worker"`
}

// NewNotesView converts n; nil when the job has no notes.
func NewNotesView(n job.Notes) *NotesView {
	if n.Progress == nil && n.Checkpoint == nil && len(n.Logs) == 0 && n.LogsDropped == 0 && n.IgnoredCancel == nil {
		return nil
	}
	v := &NotesView{
		Checkpoint: raw(n.Checkpoint), CheckpointAt: when(n.CheckpointAt), Logs: n.Logs,
		LogsDropped: n.LogsDropped, UpdatedAt: when(n.UpdatedAt),
	}
	if p := n.Progress; p != nil {
		v.Progress = &ProgressView{Fraction: p.Fraction, Message: p.Message, Output: raw(p.Output), At: when(p.At)}
	}
	if ic := n.IgnoredCancel; ic != nil {
		v.IgnoredCancel = &IgnoredCancelView{At: ic.At, Cause: ic.Cause, Seconds: ic.For.Seconds(), Worker: ic.Worker}
	}
	return v
}
