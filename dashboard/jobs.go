package dashboard

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

// searchScan bounds how many jobs a search reads per state: a dashboard
// search, not a query engine.
const searchScan = 1000

// jobSorts are the orders GET /api/jobs?sort= takes, "-" before one for
// descending.
var jobSorts = map[string]func(a, b JobView) int{
	"created_at":  func(a, b JobView) int { return a.CreatedAt.Compare(b.CreatedAt) },
	"run_at":      func(a, b JobView) int { return a.RunAt.Compare(b.RunAt) },
	"finished_at": func(a, b JobView) int { return cmpTime(a.FinishedAt, b.FinishedAt) },
	"attempts":    func(a, b JobView) int { return cmp.Compare(len(a.Attempts), len(b.Attempts)) },
	"task":        func(a, b JobView) int { return cmp.Compare(a.Task, b.Task) },
	"queue":       func(a, b JobView) int { return cmp.Compare(a.Queue, b.Queue) },
	"state":       func(a, b JobView) int { return cmp.Compare(a.State, b.State) },
}

// cmpTime orders absent times first.
func cmpTime(a, b *time.Time) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return -1
	case b == nil:
		return 1
	}
	return a.Compare(*b)
}

// jobs answers GET /api/jobs. With a state it pages through that state in
// the backend's order (oldest first); without one it is the default list:
// the first page of every state, newest first unless sort says otherwise.
func (a *api) jobs(w http.ResponseWriter, r *http.Request) {
	in, ok := inspector(w, a.cfg.Backend)
	if !ok {
		return
	}
	q := r.URL.Query()
	limit := 100
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, http.StatusBadRequest, fmt.Errorf("%w: limit %q: want 1 to 1000", job.ErrInvalid, s))
			return
		}
		limit = n
	}
	sortBy, desc := strings.CutPrefix(q.Get("sort"), "-")
	order, ok := jobSorts[sortBy]
	if sortBy != "" && !ok {
		writeError(w, http.StatusBadRequest, fmt.Errorf("%w: sort %q: want one of created_at, run_at, finished_at, attempts, task, queue, state", job.ErrInvalid, sortBy))
		return
	}
	states := []job.State{job.State(q.Get("state"))}
	if states[0] == "" {
		states = job.States()
		if order == nil {
			order, desc = jobSorts["created_at"], true
		}
	}
	out := JobPage{Jobs: []JobView{}}
	for _, st := range states {
		p := backends.ListJobsParams{Queue: q.Get("queue"), State: st, Limit: limit, Cursor: q.Get("cursor")}
		var page JobPage
		var err error
		if text := q.Get("q"); text != "" {
			page.Jobs, err = search(r.Context(), in, p, text)
		} else {
			page, err = list(r.Context(), in, p)
		}
		if err != nil {
			a.fail(w, err)
			return
		}
		out.Jobs = append(out.Jobs, page.Jobs...)
		if len(states) == 1 {
			out.Next = page.Next // a cursor pages through one state only
		}
	}
	if order != nil {
		slices.SortStableFunc(out.Jobs, func(a, b JobView) int {
			if desc {
				return order(b, a)
			}
			return order(a, b)
		})
	}
	if len(states) > 1 && len(out.Jobs) > limit {
		out.Jobs = out.Jobs[:limit]
	}
	writeJSON(w, http.StatusOK, out)
}

func list(ctx context.Context, in backends.Inspector, p backends.ListJobsParams) (JobPage, error) {
	page, err := in.ListJobs(ctx, p)
	if err != nil {
		return JobPage{}, err
	}
	out := JobPage{Jobs: make([]JobView, len(page.Jobs)), Next: page.Next}
	for i, rec := range page.Jobs {
		out.Jobs[i] = NewJobView(rec)
	}
	return out, nil
}

// search returns the jobs among the first searchScan of p whose ID, task
// name or arguments contain text.
func search(ctx context.Context, in backends.Inspector, p backends.ListJobsParams, text string) ([]JobView, error) {
	var out []JobView
	for scanned := 0; scanned < searchScan; {
		p.Limit = min(200, searchScan-scanned)
		page, err := in.ListJobs(ctx, p)
		if err != nil {
			return nil, err
		}
		for _, rec := range page.Jobs {
			if strings.Contains(rec.ID, text) || strings.Contains(rec.Task, text) || bytes.Contains(rec.Payload, []byte(text)) {
				out = append(out, NewJobView(rec))
			}
		}
		scanned += len(page.Jobs)
		if page.Next == "" {
			break
		}
		p.Cursor = page.Next
	}
	return out, nil
}

// BulkResult is the answer of POST /api/jobs/bulk: how many of the jobs
// the action changed, and why each of the others was not.
type BulkResult struct {
	Action  string            `json:"action"`
	Changed int               `json:"changed"`
	Errors  map[string]string `json:"errors"` // job ID → why it was not changed
}

// bulk answers POST /api/jobs/bulk {"action": "replay"|"delete"|"cancel",
// "ids": [...]}: a queue page's action on the jobs an operator ticked.
func (a *api) bulk(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Action string   `json:"action"`
		IDs    []string `json:"ids"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("%w: body: %w", job.ErrInvalid, err))
		return
	}
	if len(body.IDs) == 0 || len(body.IDs) > 1000 {
		writeError(w, http.StatusBadRequest, fmt.Errorf("%w: %d ids: want 1 to 1000", job.ErrInvalid, len(body.IDs)))
		return
	}
	res := BulkResult{Action: body.Action, Errors: map[string]string{}}
	switch body.Action {
	case "cancel":
		for _, id := range body.IDs {
			if _, err := a.cfg.Backend.Cancel(r.Context(), backends.CancelParams{JobID: id}); err != nil {
				res.Errors[id] = err.Error()
				continue
			}
			res.Changed++
		}
	case "replay", "delete":
		ad, ok := admin(w, a.cfg.Backend)
		if !ok {
			return
		}
		var err error
		if body.Action == "replay" {
			// Only dead and cancelled jobs replay: the others are named
			// with their state first, since the count cannot say which.
			ids := a.replayable(r.Context(), body.IDs, res.Errors)
			if len(ids) > 0 {
				res.Changed, err = ad.ReplayJobs(r.Context(), backends.ReplayJobsParams{IDs: ids})
			}
		} else {
			res.Changed, err = ad.DeleteJobs(r.Context(), backends.DeleteJobsParams{IDs: body.IDs})
			if err == nil && res.Changed < len(body.IDs) {
				a.undeleted(r.Context(), body.IDs, res.Errors)
			}
		}
		if err != nil {
			a.fail(w, err)
			return
		}
	default:
		writeError(w, http.StatusBadRequest, fmt.Errorf("%w: action %q: want replay, delete or cancel", job.ErrInvalid, body.Action))
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// replayable returns the ids of dead or cancelled jobs and says in why
// what each other one is.
func (a *api) replayable(ctx context.Context, ids []string, why map[string]string) []string {
	in, ok := a.cfg.Backend.(backends.Inspector)
	if !ok {
		return ids
	}
	var out []string
	for _, id := range ids {
		rec, err := in.GetJob(ctx, backends.GetJobParams{ID: id})
		switch {
		case err != nil:
			why[id] = err.Error()
		case rec.State != job.Dead && rec.State != job.Cancelled:
			why[id] = "it is " + string(rec.State) + ": only dead or cancelled jobs are replayed"
		default:
			out = append(out, id)
		}
	}
	return out
}

// undeleted says in why what each job a delete left is.
func (a *api) undeleted(ctx context.Context, ids []string, why map[string]string) {
	in, ok := a.cfg.Backend.(backends.Inspector)
	if !ok {
		return
	}
	for _, id := range ids {
		if rec, err := in.GetJob(ctx, backends.GetJobParams{ID: id}); err == nil {
			why[id] = "it is " + string(rec.State) + ": cancel a running job before deleting it"
		}
	}
}

// purge answers POST /api/queues/{queue}/purge?state=dead: delete every
// job of the queue in that finished state.
func (a *api) purge(w http.ResponseWriter, r *http.Request) {
	st := job.State(r.URL.Query().Get("state"))
	if !st.Finished() {
		writeError(w, http.StatusBadRequest, fmt.Errorf("%w: state %q: only done, dead or cancelled jobs are purged", job.ErrInvalid, st))
		return
	}
	ad, ok := admin(w, a.cfg.Backend)
	if !ok {
		return
	}
	n, err := ad.PurgeQueue(r.Context(), backends.PurgeQueueParams{Queue: r.PathValue("queue"), States: []job.State{st}})
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"deleted": n})
}
