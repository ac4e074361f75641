package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
)

func (a *api) enqueueOne(w http.ResponseWriter, r *http.Request) {
	var req enqueueRequest
	if !a.decode(w, r, &req) {
		return
	}
	refs, ok := a.enqueue(w, r, []enqueueRequest{req})
	if ok {
		writeJSON(w, http.StatusCreated, refs[0])
	}
}

func (a *api) enqueueBatch(w http.ResponseWriter, r *http.Request) {
	var req batchRequest
	if !a.decode(w, r, &req) {
		return
	}
	if len(req.Jobs) == 0 {
		writeError(w, http.StatusBadRequest, errors.New("jobs: empty batch"))
		return
	}
	refs, ok := a.enqueue(w, r, req.Jobs)
	if ok {
		writeJSON(w, http.StatusCreated, batchResponse{Jobs: refs})
	}
}

// enqueue stores the jobs, all or none, and answers for itself when it
// cannot: ok is false once it has written an error.
func (a *api) enqueue(w http.ResponseWriter, r *http.Request, jobs []enqueueRequest) ([]enqueued, bool) {
	reqs := make([]queue.Request, len(jobs))
	for i, j := range jobs {
		field := func(name string) string {
			if len(jobs) == 1 && r.URL.Path == "/v1/jobs" {
				return name
			}
			return fmt.Sprintf("jobs[%d].%s", i, name)
		}
		t, ok := a.tasks[j.Task]
		switch {
		case j.Task == "":
			writeError(w, http.StatusBadRequest, fmt.Errorf("%s: required", field("task")))
			return nil, false
		case !ok:
			writeError(w, http.StatusBadRequest, fmt.Errorf("%s: unknown task %q", field("task"), j.Task))
			return nil, false
		case len(j.Args) == 0:
			j.Args = json.RawMessage("null")
		}
		var durs [3]time.Duration
		for k, d := range []struct{ name, s string }{{"delay", j.Delay}, {"unique_window", j.UniqueWindow}, {"timeout", j.Timeout}} {
			if d.s == "" {
				continue
			}
			v, err := time.ParseDuration(d.s)
			if err != nil || v < 0 {
				writeError(w, http.StatusBadRequest, fmt.Errorf("%s: %q is not a duration such as 30s or 1h", field(d.name), d.s))
				return nil, false
			}
			durs[k] = v
		}
		req := t.RawRequest(j.Args, &queue.EnqueueOptions{
			ID: j.ID, Queue: j.Queue, Priority: j.Priority, Delay: durs[0], RunAt: j.RunAt,
			UniqueKey: j.UniqueKey, UniqueWindow: durs[1], Timeout: durs[2], Headers: j.Headers,
		})
		if err := req.Err(); err != nil {
			name := "args"
			if !errors.Is(err, job.ErrMalformedPayload) {
				name = "id"
			}
			writeError(w, http.StatusBadRequest, fmt.Errorf("%s: %w", field(name), err))
			return nil, false
		}
		reqs[i] = req
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.FullWait)
	defer cancel()
	refs, err := a.cfg.Client.EnqueueMany(ctx, reqs...)
	if err != nil {
		a.fail(w, err)
		return nil, false
	}
	out := make([]enqueued, len(refs))
	for i, ref := range refs {
		out[i] = enqueued{ID: ref.ID, Duplicate: ref.Duplicate}
	}
	return out, true
}

func (a *api) get(w http.ResponseWriter, r *http.Request) {
	rec, err := a.cfg.Client.Job(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, viewOf(rec))
}

// wait answers 200 with the record once the job has finished, or 202 with
// it as it stands when the timeout (default 30s, at most MaxWait) passes
// first, so a client loops on 202.
func (a *api) wait(w http.ResponseWriter, r *http.Request) {
	timeout := 30 * time.Second
	if s := r.URL.Query().Get("timeout"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			writeError(w, http.StatusBadRequest, fmt.Errorf("timeout: %q is not a duration such as 30s", s))
			return
		}
		timeout = d
	}
	timeout = min(timeout, a.cfg.MaxWait)
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	id := r.PathValue("id")
	rec, err := a.cfg.Client.WaitFinished(ctx, id)
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, viewOf(rec))
	case errors.Is(err, context.DeadlineExceeded) && r.Context().Err() == nil:
		if rec, err = a.cfg.Client.Job(r.Context(), id); err != nil {
			a.fail(w, err)
			return
		}
		writeJSON(w, http.StatusAccepted, viewOf(rec))
	default:
		a.fail(w, err)
	}
}

func (a *api) cancel(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	st, err := a.cfg.Client.Cancel(r.Context(), id)
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, cancelResponse{ID: id, State: st})
}

// decode reads one JSON value into v, refusing unknown fields and naming
// the field of a type error; ok is false once it has answered 400 or 413.
func (a *api) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, a.cfg.MaxBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("more than one JSON value")
	}
	if err == nil {
		return true
	}
	var (
		tooBig *http.MaxBytesError
		typ    *json.UnmarshalTypeError
		syn    *json.SyntaxError
	)
	switch {
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Errorf("body: larger than %d bytes", tooBig.Limit))
	case errors.As(err, &typ):
		writeError(w, http.StatusBadRequest, fmt.Errorf("%s: want a %s, got a JSON %s", typ.Field, typ.Type, typ.Value))
	case errors.As(err, &syn):
		writeError(w, http.StatusBadRequest, fmt.Errorf("body: malformed JSON at byte %d: %w", syn.Offset, err))
	case errors.Is(err, io.ErrUnexpectedEOF):
		writeError(w, http.StatusBadRequest, errors.New("body: malformed JSON: it ends too soon"))
	case errors.Is(err, io.EOF):
		writeError(w, http.StatusBadRequest, errors.New("body: empty, want a JSON object"))
	default: // an unknown field says which itself
		writeError(w, http.StatusBadRequest, fmt.Errorf("body: %w", err))
	}
	return false
}

// fail answers a client or backend error with its status.
func (a *api) fail(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, job.ErrQueueFull):
		w.Header().Set("Retry-After", strconv.Itoa(1))
		writeError(w, http.StatusTooManyRequests, err)
	case errors.Is(err, job.ErrNotFound):
		writeError(w, http.StatusNotFound, err)
	case errors.Is(err, job.ErrInvalid), errors.Is(err, job.ErrPayloadTooLarge):
		writeError(w, http.StatusBadRequest, err)
	case errors.Is(err, job.ErrFinished):
		writeError(w, http.StatusConflict, err)
	case errors.Is(err, job.ErrUnsupported):
		writeError(w, http.StatusNotImplemented, err)
	case errors.Is(err, job.ErrOutcomeUnknown):
		// The client retries with the same job ID: the backend makes it
		// idempotent, so it cannot make a second job.
		writeError(w, http.StatusServiceUnavailable, err)
	default:
		a.cfg.Logger.Error("httpapi: backend error", "err", err)
		writeError(w, http.StatusServiceUnavailable, err)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, errorView{Error: err.Error()})
}
