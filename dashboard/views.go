package dashboard

import (
	"encoding/json"
	"time"

	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/scheduler"
	"github.com/conveyorhq/conveyor/worker"
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
	// Notes are a long job's progress, checkpoint and log lines: in the
	// one job's view (GET /api/jobs/{id}), not in lists.
	Notes *NotesView `json:"notes,omitempty"`
}

// JobPage is GET /api/jobs.
type JobPage struct {
	Jobs []JobView `json:"jobs"`
	Next string    `json:"next,omitempty"` // the cursor of the next page
}

// NewJobView is a job as the dashboard's API shows it, for tools that
// print the same view (`conveyor jobs show --json`).
func NewJobView(r *job.Record) JobView {
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

// WorkerView is one live worker process in GET /api/workers.
type WorkerView struct {
	ID          string        `json:"id"`
	Host        string        `json:"host"`
	PID         int           `json:"pid"`
	Queues      []string      `json:"queues"`
	Concurrency int           `json:"concurrency"`
	Running     int           `json:"running"`
	Started     time.Time     `json:"started"`
	Heartbeat   time.Time     `json:"heartbeat"`
	Breakers    []BreakerView `json:"breakers"`
	PickupP50   float64       `json:"pickup_p50_ms"`
	PickupP99   float64       `json:"pickup_p99_ms"`
	// Fair maps each queue it serves fairly to its groups' weights
	// (empty: every group weight 1).
	Fair map[string]map[string]int `json:"fair"`
}

// BreakerView is one circuit breaker of a worker process.
type BreakerView struct {
	Name                string     `json:"name"`
	State               string     `json:"state"` // "closed", "open" or "half-open"
	OpenUntil           *time.Time `json:"open_until,omitempty"`
	ConsecutiveFailures int        `json:"consecutive_failures"`
}

// ScheduleView is one periodic entry in GET /api/schedules.
type ScheduleView struct {
	Name     string          `json:"name"`
	Schedule string          `json:"schedule"`
	Task     string          `json:"task"`
	Queue    string          `json:"queue,omitempty"` // empty: the task's
	Priority int             `json:"priority,omitempty"`
	Args     json.RawMessage `json:"args,omitempty"`
	Misfire  string          `json:"misfire"`
	Paused   bool            `json:"paused"`
	Last     *time.Time      `json:"last,omitempty"` // the latest tick handled; absent if none
	Next     *time.Time      `json:"next,omitempty"` // the next tick due
}

// workerView is w as the API shows it: the dashboard's own casing, not
// whatever tags (or none) worker.Info and its breakers carry.
func workerView(w worker.Info) WorkerView {
	v := WorkerView{ID: w.ID, Host: w.Host, PID: w.PID, Queues: w.Queues, Concurrency: w.Concurrency, Running: w.Running,
		Started: w.Started, Heartbeat: w.Heartbeat, Breakers: make([]BreakerView, len(w.Breakers)),
		PickupP50: w.PickupP50, PickupP99: w.PickupP99, Fair: w.Fair}
	if v.Queues == nil {
		v.Queues = []string{}
	}
	if v.Fair == nil {
		v.Fair = map[string]map[string]int{}
	}
	for i, b := range w.Breakers {
		v.Breakers[i] = BreakerView{Name: b.Name, State: b.State, OpenUntil: when(b.OpenUntil), ConsecutiveFailures: b.ConsecutiveFailures}
	}
	return v
}

func scheduleView(e scheduler.EntryState) ScheduleView {
	misfire := string(e.Misfire)
	if misfire == "" {
		misfire = string(scheduler.Skip)
	}
	return ScheduleView{Name: e.Name, Schedule: e.Schedule, Task: e.Task, Queue: e.Queue, Priority: e.Priority,
		Args: raw(e.Args), Misfire: misfire, Paused: e.Paused, Last: when(e.Last), Next: when(e.Next)}
}
