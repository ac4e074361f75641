package dashboard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/scheduler"
	"github.com/conveyorhq/conveyor/worker"
)

type api struct {
	cfg  Config
	hist history
}

// QueueView is one queue in GET /api/queues.
type QueueView struct {
	Queue  string            `json:"queue"`
	Paused bool              `json:"paused"`
	Depth  int               `json:"depth"`           // unfinished jobs, the figure MaxDepth bounds
	Bound  int               `json:"bound,omitempty"` // the queue's MaxDepth, from Config.Bounds
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

func (a *api) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz round-trips through the backend: counts if it can inspect, else
// a reserve of nothing-due from a queue nobody uses.
func (a *api) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.ReadyTimeout)
	defer cancel()
	var err error
	if in, ok := a.cfg.Backend.(backends.Inspector); ok {
		_, err = in.QueueStats(ctx, backends.QueueStatsParams{Queue: "conveyor.readyz"})
	} else {
		_, err = a.cfg.Backend.Reserve(ctx, backends.ReserveParams{Queue: "conveyor.readyz", Limit: 1, Lease: time.Second})
	}
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, fmt.Errorf("backend: %w", err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (a *api) queues(w http.ResponseWriter, r *http.Request) {
	in, ok := inspector(w, a.cfg.Backend)
	if !ok {
		return
	}
	stats, err := in.QueueStats(r.Context(), backends.QueueStatsParams{})
	if err != nil {
		a.fail(w, err)
		return
	}
	a.hist.sample(stats, func() []worker.Info {
		ws, _ := worker.Workers(r.Context(), a.cfg.Backend) // none: no latency point
		return ws
	})
	out := make([]QueueView, len(stats))
	for i, s := range stats {
		out[i] = QueueView{Queue: s.Queue, Paused: s.Paused, Depth: s.Depth(), Bound: a.cfg.Bounds[s.Queue], Counts: s.Counts}
	}
	writeJSON(w, http.StatusOK, out)
}

// historyView answers GET /api/history.
func (a *api) historyView(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, a.hist.snapshot())
}

func (a *api) jobs(w http.ResponseWriter, r *http.Request) {
	in, ok := inspector(w, a.cfg.Backend)
	if !ok {
		return
	}
	q := r.URL.Query()
	limit := 0
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, http.StatusBadRequest, fmt.Errorf("limit %q: want 1 to 1000", s))
			return
		}
		limit = n
	}
	p := backends.ListJobsParams{Queue: q.Get("queue"), State: job.State(q.Get("state")), Limit: limit, Cursor: q.Get("cursor")}
	if text := q.Get("q"); text != "" {
		a.search(w, r, in, p, text)
		return
	}
	page, err := in.ListJobs(r.Context(), p)
	if err != nil {
		a.fail(w, err)
		return
	}
	out := JobPage{Jobs: make([]JobView, len(page.Jobs)), Next: page.Next}
	for i, rec := range page.Jobs {
		out.Jobs[i] = view(rec)
	}
	writeJSON(w, http.StatusOK, out)
}

// searchScan bounds how many jobs a search reads: a dashboard search, not
// a query engine.
const searchScan = 1000

// search returns the jobs among the first searchScan of p whose ID, task
// name or arguments contain text.
func (a *api) search(w http.ResponseWriter, r *http.Request, in backends.Inspector, p backends.ListJobsParams, text string) {
	out := JobPage{Jobs: []JobView{}}
	for scanned := 0; scanned < searchScan; {
		p.Limit = min(200, searchScan-scanned)
		page, err := in.ListJobs(r.Context(), p)
		if err != nil {
			a.fail(w, err)
			return
		}
		for _, rec := range page.Jobs {
			if strings.Contains(rec.ID, text) || strings.Contains(rec.Task, text) || bytes.Contains(rec.Payload, []byte(text)) {
				out.Jobs = append(out.Jobs, view(rec))
			}
		}
		scanned += len(page.Jobs)
		if page.Next == "" {
			break
		}
		p.Cursor = page.Next
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *api) schedules(w http.ResponseWriter, r *http.Request) {
	s, ok := a.scheduler(w)
	if !ok {
		return
	}
	entries, err := s.List(r.Context())
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, entries)
}

func (a *api) pauseSchedule(w http.ResponseWriter, r *http.Request) {
	s, ok := a.scheduler(w)
	if !ok {
		return
	}
	paused := strings.HasSuffix(r.URL.Path, "/pause")
	if err := s.Pause(r.Context(), r.PathValue("name"), paused); err != nil {
		a.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// scheduler reads and pauses the entries stored in the backend; it fires
// nothing (workers do).
func (a *api) scheduler(w http.ResponseWriter) (*scheduler.Scheduler, bool) {
	s, err := scheduler.New(queue.NewClient(a.cfg.Backend, queue.Config{}), scheduler.Config{})
	if err != nil {
		writeError(w, http.StatusNotImplemented, err)
		return nil, false
	}
	return s, true
}

func (a *api) job(w http.ResponseWriter, r *http.Request) {
	in, ok := inspector(w, a.cfg.Backend)
	if !ok {
		return
	}
	rec, err := in.GetJob(r.Context(), backends.GetJobParams{ID: r.PathValue("id")})
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, view(rec))
}

func (a *api) workers(w http.ResponseWriter, r *http.Request) {
	ws, err := worker.Workers(r.Context(), a.cfg.Backend)
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ws)
}

func (a *api) pause(w http.ResponseWriter, r *http.Request) {
	a.pauser(w, r, backends.Pauser.PauseQueue)
}

func (a *api) resume(w http.ResponseWriter, r *http.Request) {
	a.pauser(w, r, backends.Pauser.ResumeQueue)
}

func (a *api) pauser(w http.ResponseWriter, r *http.Request, op func(backends.Pauser, context.Context, backends.PauseQueueParams) error) {
	p, ok := a.cfg.Backend.(backends.Pauser)
	if !ok {
		writeError(w, http.StatusNotImplemented, fmt.Errorf("%w: pausing", job.ErrUnsupported))
		return
	}
	if err := op(p, r.Context(), backends.PauseQueueParams{Queue: r.PathValue("queue")}); err != nil {
		a.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *api) replayQueue(w http.ResponseWriter, r *http.Request) {
	ad, ok := admin(w, a.cfg.Backend)
	if !ok {
		return
	}
	n, err := ad.ReplayJobs(r.Context(), backends.ReplayJobsParams{Queue: r.PathValue("queue")})
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"replayed": n})
}

func (a *api) cancel(w http.ResponseWriter, r *http.Request) {
	st, err := a.cfg.Backend.Cancel(r.Context(), backends.CancelParams{JobID: r.PathValue("id")})
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]job.State{"state": st})
}

// replayJob replays one dead or cancelled job, with the arguments of the
// body's "args" if it has one (an operator's fix to a bad payload).
func (a *api) replayJob(w http.ResponseWriter, r *http.Request) {
	ad, ok := admin(w, a.cfg.Backend)
	if !ok {
		return
	}
	id := r.PathValue("id")
	var body struct {
		Args json.RawMessage `json:"args"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil && !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, fmt.Errorf("body: %w", err))
		return
	}
	p := backends.ReplayJobsParams{IDs: []string{id}}
	if len(body.Args) > 0 {
		p.Payloads = map[string][]byte{id: body.Args}
	}
	n, err := ad.ReplayJobs(r.Context(), p)
	if err != nil {
		a.fail(w, err)
		return
	}
	if n == 0 {
		a.notReplayed(w, r, id)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"replayed": n})
}

// notReplayed says why a job was not replayed: it does not exist, or it
// is not dead or cancelled.
func (a *api) notReplayed(w http.ResponseWriter, r *http.Request, id string) {
	in, ok := a.cfg.Backend.(backends.Inspector)
	if !ok {
		writeError(w, http.StatusConflict, fmt.Errorf("job %s was not replayed", id))
		return
	}
	rec, err := in.GetJob(r.Context(), backends.GetJobParams{ID: id})
	if err != nil {
		a.fail(w, err)
		return
	}
	writeError(w, http.StatusConflict, fmt.Errorf("job %s is %s: only dead or cancelled jobs are replayed", id, rec.State))
}

func (a *api) deleteJob(w http.ResponseWriter, r *http.Request) {
	ad, ok := admin(w, a.cfg.Backend)
	if !ok {
		return
	}
	id := r.PathValue("id")
	n, err := ad.DeleteJobs(r.Context(), backends.DeleteJobsParams{IDs: []string{id}})
	if err != nil {
		a.fail(w, err)
		return
	}
	if n == 0 {
		writeError(w, http.StatusConflict, fmt.Errorf("job %s was not deleted: it is running (cancel it first) or does not exist", id))
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"deleted": n})
}

func inspector(w http.ResponseWriter, b backends.Backend) (backends.Inspector, bool) {
	in, ok := b.(backends.Inspector)
	if !ok {
		writeError(w, http.StatusNotImplemented, fmt.Errorf("%w: inspection", job.ErrUnsupported))
	}
	return in, ok
}

func admin(w http.ResponseWriter, b backends.Backend) (backends.Admin, bool) {
	ad, ok := b.(backends.Admin)
	if !ok {
		writeError(w, http.StatusNotImplemented, fmt.Errorf("%w: replay and delete", job.ErrUnsupported))
	}
	return ad, ok
}

// fail answers a backend error with the status its sentinel means.
func (a *api) fail(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, job.ErrInvalid):
		status = http.StatusBadRequest
	case errors.Is(err, job.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, job.ErrFinished):
		status = http.StatusConflict
	case errors.Is(err, job.ErrUnsupported):
		status = http.StatusNotImplemented
	default:
		a.cfg.Logger.Error("dashboard: backend request failed", "err", err)
	}
	writeError(w, status, err)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}
