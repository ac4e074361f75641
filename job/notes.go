package job

import "time"

// Notes is what a long job's handler leaves with its job while it runs:
// how far it got, where to resume, what it logged. It outlives the
// delivery that wrote it: a retry, a re-delivery after a crash and a
// resume after a drain read the same Notes, and a reader (the web app,
// the dashboard, the CLI) finds it by job ID until the job is pruned.
type Notes struct {
	// Progress is the latest progress report, nil before the first.
	Progress *Progress `json:"progress,omitempty"`
	// Checkpoint is the latest checkpoint, opaque bytes (JSON from
	// worker.Checkpoint); nil before the first.
	Checkpoint []byte `json:"checkpoint,omitempty"`
	// CheckpointAt is when Checkpoint was written.
	CheckpointAt time.Time `json:"checkpoint_at,omitzero"`
	// Logs are the job's kept log lines, oldest first, at most the bounds
	// the writer gave (a count and bytes); older lines were dropped.
	Logs []LogLine `json:"logs,omitempty"`
	// LogsDropped counts the lines dropped to keep within those bounds,
	// by the worker before sending them or by the backend after.
	LogsDropped int `json:"logs_dropped,omitempty"`
	// IgnoredCancel is set when a delivery's handler ran on past its
	// cancellation (a timeout, a cancel request, a lost lease, a
	// shutdown) for longer than the worker's grace: the worker abandoned
	// it and the job runs again elsewhere. The latest such event.
	IgnoredCancel *IgnoredCancel `json:"ignored_cancel,omitempty"`
	// UpdatedAt is when the notes last changed.
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// Progress is how far a running job is.
type Progress struct {
	// Fraction done, from 0 to 1.
	Fraction float64 `json:"fraction"`
	// Message says what the job is doing, for a human ("page 3 of 10").
	Message string `json:"message,omitempty"`
	// Output is an optional partial result (JSON), for a reader that
	// shows results as they come.
	Output []byte `json:"output,omitempty"`
	// At is when the handler reported it.
	At time.Time `json:"at,omitzero"`
}

// LogLine is one line a handler logged through its job's logger.
type LogLine struct {
	At    time.Time `json:"at"`
	Level string    `json:"level"` // slog's level name: DEBUG, INFO, WARN, ERROR
	Msg   string    `json:"msg"`
	// Attrs are the line's attributes in slog's text form (k=v k2="v 2").
	Attrs string `json:"attrs,omitempty"`
}

// Size is the line's weight against a byte bound: its text.
func (l LogLine) Size() int { return len(l.Level) + len(l.Msg) + len(l.Attrs) }

// IgnoredCancel records a handler that ignored its cancellation.
type IgnoredCancel struct {
	At     time.Time     `json:"at"`     // when the worker abandoned it
	Cause  string        `json:"cause"`  // why its context was cancelled
	For    time.Duration `json:"for"`    // how long it had ignored it by then
	Worker string        `json:"worker"` // the worker that abandoned it
}
