package httpapi

import (
	"encoding/json"
	"time"

	"github.com/conveyorhq/conveyor/job"
)

// enqueueRequest is one job to enqueue, as POST /v1/jobs takes it.
// Durations are Go duration strings ("30s", "1h").
type enqueueRequest struct {
	Task         string            `json:"task"`
	Args         json.RawMessage   `json:"args"`
	ID           string            `json:"id,omitempty"`
	Queue        string            `json:"queue,omitempty"`
	Priority     int               `json:"priority,omitempty"`
	Delay        string            `json:"delay,omitempty"`
	RunAt        time.Time         `json:"run_at,omitzero"`
	UniqueKey    string            `json:"unique_key,omitempty"`
	UniqueWindow string            `json:"unique_window,omitempty"`
	Timeout      string            `json:"timeout,omitempty"`
	Headers      map[string]string `json:"headers,omitempty"`
}

type batchRequest struct {
	Jobs []enqueueRequest `json:"jobs"`
}

// enqueued is what an enqueue answers per job.
type enqueued struct {
	ID        string `json:"id"`
	Duplicate bool   `json:"duplicate"`
}

type batchResponse struct {
	Jobs []enqueued `json:"jobs"`
}

// jobView is a job's record as the API shows it.
type jobView struct {
	ID            string            `json:"id"`
	Task          string            `json:"task"`
	Queue         string            `json:"queue"`
	State         job.State         `json:"state"`
	Priority      int               `json:"priority"`
	Deliveries    int               `json:"deliveries"`
	MaxDeliveries int               `json:"max_deliveries"`
	Headers       map[string]string `json:"headers"`
	Errors        []attemptView     `json:"errors"`
	Result        json.RawMessage   `json:"result"`
	ResultBase64  []byte            `json:"result_base64,omitempty"`
	CreatedAt     time.Time         `json:"created_at"`
	RunAt         time.Time         `json:"run_at"`
	StartedAt     *time.Time        `json:"started_at"`
	FinishedAt    *time.Time        `json:"finished_at"`
}

type attemptView struct {
	Attempt int       `json:"attempt"`
	At      time.Time `json:"at"`
	Error   string    `json:"error"`
}

type cancelResponse struct {
	ID    string    `json:"id"`
	State job.State `json:"state"`
}

type errorView struct {
	Error string `json:"error"`
}

func viewOf(r *job.Record) jobView {
	v := jobView{
		ID: r.ID, Task: r.Task, Queue: r.Queue, State: r.State, Priority: r.Priority,
		Deliveries: r.Deliveries, MaxDeliveries: r.MaxDeliveries, Headers: r.Headers,
		Errors: make([]attemptView, len(r.Errors)), CreatedAt: r.CreatedAt, RunAt: r.RunAt,
		StartedAt: timeOrNil(r.StartedAt), FinishedAt: timeOrNil(r.FinishedAt),
	}
	if v.Headers == nil {
		v.Headers = map[string]string{}
	}
	for i, e := range r.Errors {
		v.Errors[i] = attemptView{Attempt: e.Attempt, At: e.At, Error: e.Error}
	}
	switch {
	case len(r.Result) == 0:
		v.Result = json.RawMessage("null")
	case json.Valid(r.Result):
		v.Result = r.Result
	default: // a task with a codec of its own: its bytes as they are
		v.Result, v.ResultBase64 = json.RawMessage("null"), r.Result
	}
	return v
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
