package dashboard

import (
	"encoding/json"
	"time"

	"github.com/conveyorhq/conveyor/job"
)

// QueueView is one queue in GET /api/queues.
type QueueView struct {
	Queue  string            `json:"queue"`
	Paused bool              `json:"paused"`
	Depth  int               `json:"depth"`           // unfinished jobs, the figure MaxDepth bounds
	Bound  int               `json:"bound,omitempty"` // the queue's MaxDepth, as stored in the backend
	Counts map[job.State]int `json:"counts"`
}

// JobView is a job as the API shows it. Args and Result are the stored
// JSON when they are JSON, else a string of the bytes.
type JobView struct {
	ID              string             `json:"id"`
	Queue           string             `json:"queue"`
	Task            string             `json:"task"`
	State           job.State          `json:"state"`
	Priority        int                `json:"priority"`
	Args            json.RawMessage    `json:"args,omitempty"`
	Headers         map[string]string  `json:"headers,omitempty"`
	Deliveries      int                `json:"deliveries"`
	MaxDeliveries   int                `json:"max_deliveries,omitempty"`
	Attempts        []job.AttemptError `json:"attempts,omitempty"`
	Result          json.RawMessage    `json:"result,omitempty"`
	CreatedAt       time.Time          `json:"created_at"`
	RunAt           time.Time          `json:"run_at"`
	StartedAt       *time.Time         `json:"started_at,omitempty"`
	FinishedAt      *time.Time         `json:"finished_at,omitempty"`
	LeaseExpiresAt  *time.Time         `json:"lease_expires_at,omitempty"`
	CancelRequested bool               `json:"cancel_requested,omitempty"`
}

// JobPage is GET /api/jobs.
type JobPage struct {
	Jobs []JobView `json:"jobs"`
	Next string    `json:"next,omitempty"` // the cursor of the next page
}

func view(r *job.Record) JobView {
	v := JobView{
		ID: r.ID, Queue: r.Queue, Task: r.Task, State: r.State, Priority: r.Priority,
		Args: raw(r.Payload), Headers: r.Headers, Deliveries: r.Deliveries, MaxDeliveries: r.MaxDeliveries,
		Attempts: r.Errors, Result: raw(r.Result), CreatedAt: r.CreatedAt, RunAt: r.RunAt,
		StartedAt: when(r.StartedAt), FinishedAt: when(r.FinishedAt), CancelRequested: r.CancelRequested,
	}
	if r.State == job.Running {
		v.LeaseExpiresAt = when(r.Lease.ExpiresAt)
	}
	return v
}

// raw returns b as JSON: itself if it is JSON, else a JSON string.
func raw(b []byte) json.RawMessage {
	if len(b) == 0 {
		return nil
	}
	if json.Valid(b) {
		return b
	}
	s, _ := json.Marshal(string(b))
	return s
}

func when(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
