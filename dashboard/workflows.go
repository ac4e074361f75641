package dashboard

import (
	"net/http"
	"strings"
	"time"

	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/workflow"
)

// WorkflowView is a workflow's status as the dashboard's workflow page and
// `conveyor inspect workflow` show it: the whole, and each step with the
// steps it depends on (the page draws the graph from them).
type WorkflowView struct {
	ID              string         `json:"id"`
	State           workflow.State `json:"state"`
	CancelRequested bool           `json:"cancel_requested,omitempty"`
	CreatedAt       time.Time      `json:"created_at"`
	FinishedAt      *time.Time     `json:"finished_at,omitempty"`
	Steps           []StepView     `json:"steps"`
}

// StepView is one step of a workflow.
type StepView struct {
	Name         string             `json:"name"`
	Task         string             `json:"task"`
	Queue        string             `json:"queue"`
	Deps         []string           `json:"deps"`
	State        workflow.StepState `json:"state"`
	JobID        string             `json:"job_id,omitempty"`
	Reason       string             `json:"reason,omitempty"`
	AllowFailure bool               `json:"allow_failure,omitempty"`
	Sink         bool               `json:"sink,omitempty"`
	EnqueuedAt   *time.Time         `json:"enqueued_at,omitempty"`
	FinishedAt   *time.Time         `json:"finished_at,omitempty"`
}

// NewWorkflowView converts a workflow's status.
func NewWorkflowView(in *workflow.Info) WorkflowView {
	v := WorkflowView{ID: in.ID, State: in.State, CancelRequested: in.CancelRequested, CreatedAt: in.Created,
		FinishedAt: when(in.Finished), Steps: make([]StepView, len(in.Steps))}
	for i, s := range in.Steps {
		deps := s.Deps
		if deps == nil {
			deps = []string{}
		}
		v.Steps[i] = StepView{Name: s.Name, Task: s.Task, Queue: s.Queue, Deps: deps, State: s.State, JobID: s.JobID,
			Reason: s.Reason, AllowFailure: s.AllowFailure, Sink: s.Sink, EnqueuedAt: when(s.Enqueued), FinishedAt: when(s.Finished)}
	}
	return v
}

// WorkflowSummary is one workflow of the list: its state and how many of
// its steps are in each state.
type WorkflowSummary struct {
	ID         string                     `json:"id"`
	State      workflow.State             `json:"state"`
	CreatedAt  time.Time                  `json:"created_at"`
	FinishedAt *time.Time                 `json:"finished_at,omitempty"`
	Steps      map[workflow.StepState]int `json:"steps"`
}

// workflows lists the kept workflows, newest first, of the states asked
// (?state=running,failed; default every state), at most 200.
func (a *api) workflows(w http.ResponseWriter, r *http.Request) {
	var states []workflow.State
	for _, s := range strings.Split(r.URL.Query().Get("state"), ",") {
		if s = strings.TrimSpace(s); s != "" {
			states = append(states, workflow.State(s))
		}
	}
	list, err := workflow.List(r.Context(), queue.NewClient(a.cfg.Backend, queue.Config{}), states...)
	if err != nil {
		a.fail(w, err)
		return
	}
	out := []WorkflowSummary{}
	for i := len(list) - 1; i >= 0 && len(out) < 200; i-- {
		in := list[i]
		sum := WorkflowSummary{ID: in.ID, State: in.State, CreatedAt: in.Created, FinishedAt: when(in.Finished), Steps: map[workflow.StepState]int{}}
		for _, st := range in.Steps {
			sum.Steps[st.State]++
		}
		out = append(out, sum)
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *api) workflow(w http.ResponseWriter, r *http.Request) {
	in, err := workflow.Status(r.Context(), queue.NewClient(a.cfg.Backend, queue.Config{}), r.PathValue("id"))
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, NewWorkflowView(in))
}

func (a *api) cancelWorkflow(w http.ResponseWriter, r *http.Request) {
	if err := workflow.Cancel(r.Context(), queue.NewClient(a.cfg.Backend, queue.Config{}), r.PathValue("id")); err != nil {
		a.fail(w, err)
		return
	}
	a.workflow(w, r)
}
