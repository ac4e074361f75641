package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/conveyorhq/conveyor/dashboard"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/workflow"
)

// showWorkflow prints a workflow as the dashboard's workflow page shows
// it: the whole, then each step with what it waits for, its state and job.
func (e *env) showWorkflow(c *cobra.Command, args []string) error {
	s, err := e.open(c.Context(), mustExist)
	if err != nil {
		return err
	}
	defer s.Close()
	in, err := workflow.Status(c.Context(), queue.NewClient(s, queue.Config{}), args[0])
	if err != nil {
		return fmt.Errorf("workflow %s: %w", args[0], err)
	}
	v := dashboard.NewWorkflowView(in)
	return e.show(c, v, func(w io.Writer) error {
		fmt.Fprintf(w, "workflow %s: %s, %d steps, created %s", v.ID, v.State, len(v.Steps), stamp(v.CreatedAt))
		if v.FinishedAt != nil {
			fmt.Fprintf(w, ", finished %s", stamp(*v.FinishedAt))
		}
		if v.CancelRequested {
			fmt.Fprint(w, ", cancel requested")
		}
		fmt.Fprintln(w)
		tw := tabwriterFor(w)
		fmt.Fprintln(tw, "STEP\tTASK\tAFTER\tSTATE\tJOB\tNOTE")
		for _, st := range v.Steps {
			note := st.Reason
			if st.AllowFailure {
				note = strings.TrimSpace(note + " (allowed to fail)")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", st.Name, st.Task, dash(strings.Join(st.Deps, ",")), st.State, dash(st.JobID), note)
		}
		return tw.Flush()
	})
}
