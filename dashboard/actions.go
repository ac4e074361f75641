package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

// The state-changing routes: POSTs, behind CrossOriginProtection and the
// read-only switch (see New).

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
