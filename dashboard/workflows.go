package dashboard

import (
	"net/http"
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
