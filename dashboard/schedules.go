package dashboard

import (
	"net/http"
	"strings"

	"github.com/conveyorhq/conveyor/scheduler"
)

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
	out := make([]ScheduleView, len(entries))
	for i, e := range entries {
		out[i] = scheduleView(e)
	}
	writeJSON(w, http.StatusOK, out)
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
func (a *api) scheduler(w http.ResponseWriter) (*scheduler.Entries, bool) {
	s, err := scheduler.NewEntries(a.cfg.Backend)
	if err != nil {
		writeError(w, http.StatusNotImplemented, err)
		return nil, false
	}
	return s, true
}
