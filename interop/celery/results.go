package celery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

// Celery's task states, as its result backends store them.
const (
	StatePending = "PENDING"
	StateStarted = "STARTED"
	StateRetry   = "RETRY"
	StateSuccess = "SUCCESS"
	StateFailure = "FAILURE"
	StateRevoked = "REVOKED"
)

// ErrorType is the exception type a Go failure has on the Python side:
// AsyncResult.get raises an exception of this name (a class Celery makes
// up, as exc_module is left out) whose message is the Go error's text.
const ErrorType = "ConveyorError"

// meta is Celery's result record: the value of celery-task-meta-<id> and
// the body of an RPC reply.
type meta struct {
	TaskID    string          `json:"task_id"`
	Status    string          `json:"status"`
	Result    json.RawMessage `json:"result"`
	Traceback *string         `json:"traceback"`
	Children  []any           `json:"children"`
	DateDone  string          `json:"date_done,omitempty"`
}

// excInfo is how Celery's JSON result backends store an exception.
type excInfo struct {
	Type    string   `json:"exc_type"`
	Message []string `json:"exc_message"`
	Module  *string  `json:"exc_module"`
}

func metaKey(id string) string { return "celery-task-meta-" + id }

func failure(typ, module, text string) json.RawMessage {
	e := excInfo{Type: typ, Message: []string{text}}
	if module != "" {
		e.Module = &module
	}
	b, _ := json.Marshal(e)
	return b
}

// resultValue is a Complete's result as JSON: the Go codec's JSON as it
// is, none as null, and bytes that are not JSON as a string.
func resultValue(r []byte) json.RawMessage {
	switch {
	case len(r) == 0:
		return json.RawMessage("null")
	case json.Valid(r):
		return r
	}
	b, _ := json.Marshal(string(r))
	return b
}

// publishResult writes one state of a job to the result backends the
// configuration and the message ask for.
func (b *Broker) publishResult(ctx context.Context, d *delivered, status string, result json.RawMessage, traceback string) error {
	m := meta{TaskID: d.rec.ID, Status: status, Result: result, Children: []any{}}
	if traceback != "" {
		m.Traceback = &traceback
	}
	if status == StateSuccess || status == StateFailure || status == StateRevoked {
		// Celery writes a naive UTC time here.
		m.DateDone = b.cfg.Clock.Now().UTC().Format("2006-01-02T15:04:05.000000")
	}
	body, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("celery: result of %s: %w", d.rec.ID, err)
	}
	if b.cfg.Results != nil {
		key := metaKey(d.rec.ID)
		_, err := b.cfg.Results.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, key, body, b.cfg.ResultExpires)
			p.Publish(ctx, key, body) // AsyncResult.get listens here
			return nil
		})
		if err != nil {
			return fmt.Errorf("celery: store result of %s: %w", d.rec.ID, err)
		}
	}
	if b.cfg.RPCResults && d.msg.ReplyTo != "" {
		corr := d.msg.CorrelationID
		if corr == "" {
			corr = d.rec.ID
		}
		if err := b.amqp.reply(ctx, d.msg.ReplyTo, corr, body); err != nil {
			return fmt.Errorf("celery: reply result of %s: %w", d.rec.ID, err)
		}
	}
	return nil
}

// GetJob reads a job's state and result from the Redis result backend.
// Celery cannot tell a job it has never heard of from one waiting or
// running without a stored state, and neither can GetJob: both are
// Pending. Without Config.Results it returns job.ErrUnsupported.
func (b *Broker) GetJob(ctx context.Context, p backends.GetJobParams) (*job.Record, error) {
	if err := b.usable(ctx); err != nil {
		return nil, err
	}
	if b.cfg.Results == nil {
		return nil, fmt.Errorf("%w: GetJob needs Config.Results, a Redis result backend", job.ErrUnsupported)
	}
	raw, err := b.cfg.Results.Get(ctx, metaKey(p.ID)).Bytes()
	rec := &job.Record{ID: p.ID, State: job.Pending}
	switch {
	case errors.Is(err, redis.Nil):
		return rec, nil
	case err != nil:
		return nil, fmt.Errorf("celery: read result of %s: %w", p.ID, err)
	}
	var m meta
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%w: result of %s: %w", job.ErrMalformedPayload, p.ID, err)
	}
	if t, err := parseTime(m.DateDone); err == nil {
		rec.FinishedAt = t
	}
	switch m.Status {
	case StateSuccess:
		rec.State, rec.Result = job.Done, m.Result
	case StateFailure, StateRevoked:
		rec.State = job.Dead
		if m.Status == StateRevoked {
			rec.State = job.Cancelled
		}
		rec.Errors = []job.AttemptError{{Attempt: 1, At: rec.FinishedAt, Error: errorText(m), Stack: deref(m.Traceback)}}
	case StateRetry:
		rec.State = job.Retrying
		rec.Errors = []job.AttemptError{{Attempt: 1, Error: errorText(m), Stack: deref(m.Traceback)}}
	case StateStarted:
		rec.State = job.Running
	}
	return rec, nil
}

// errorText is "Type: message" of a stored exception.
func errorText(m meta) string {
	var e struct {
		Type    string `json:"exc_type"`
		Message any    `json:"exc_message"`
	}
	if json.Unmarshal(m.Result, &e) != nil || e.Type == "" {
		return string(m.Result)
	}
	msg := fmt.Sprint(e.Message)
	if l, ok := e.Message.([]any); ok && len(l) == 1 {
		msg = fmt.Sprint(l[0])
	}
	return e.Type + ": " + msg
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// ListJobs is not supported: Celery's result backend lists nothing.
func (b *Broker) ListJobs(context.Context, backends.ListJobsParams) (*backends.JobPage, error) {
	return nil, fmt.Errorf("%w: Celery's result backend cannot list jobs", job.ErrUnsupported)
}

// QueueStats is not supported: Celery's brokers keep no counts by state.
func (b *Broker) QueueStats(context.Context, backends.QueueStatsParams) ([]backends.QueueStats, error) {
	return nil, fmt.Errorf("%w: Celery's brokers keep no counts by state", job.ErrUnsupported)
}
