package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

type api struct {
	cfg Config
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
	bounds := map[string]int{} // as stored by the apps' clients; none on a backend without a KVStore
	if settings, err := queue.NewClient(a.cfg.Backend, queue.Config{}).QueueSettings(r.Context(), ""); err == nil {
		for _, s := range settings {
			bounds[s.Queue] = s.Effective().MaxDepth
		}
	}
	out := make([]QueueView, len(stats))
	for i, s := range stats {
		out[i] = QueueView{Queue: s.Queue, Paused: s.Paused, Depth: s.Depth(), Bound: bounds[s.Queue], Counts: s.Counts}
	}
	writeJSON(w, http.StatusOK, out)
}

// historyView answers GET /api/history?range=&queue=.
func (a *api) historyView(w http.ResponseWriter, r *http.Request) {
	kv, ok := a.cfg.Backend.(backends.KVStore)
	if !ok {
		writeError(w, http.StatusNotImplemented, fmt.Errorf("%w: the history is kept in a backends.KVStore", job.ErrUnsupported))
		return
	}
	rng := r.URL.Query().Get("range")
	if rng == "" {
		rng = "1h"
	}
	h, err := readHistory(r.Context(), kv, rng, r.URL.Query().Get("queue"), time.Now())
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, h)
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
	v := NewJobView(rec)
	// A backend that keeps no notes has none to show: not an error here.
	if n, err := queue.NewClient(a.cfg.Backend, queue.Config{}).Notes(r.Context(), rec.ID); err == nil {
		v.Notes = NewNotesView(n)
	} else if !errors.Is(err, job.ErrUnsupported) {
		a.cfg.Logger.Warn("dashboard: reading a job's notes", "job", rec.ID, "err", err)
	}
	writeJSON(w, http.StatusOK, v)
}

func (a *api) workers(w http.ResponseWriter, r *http.Request) {
	ws, err := worker.Workers(r.Context(), a.cfg.Backend)
	if err != nil {
		a.fail(w, err)
		return
	}
	out := make([]WorkerView, len(ws))
	for i, info := range ws {
		out[i] = workerView(info)
	}
	writeJSON(w, http.StatusOK, out)
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
