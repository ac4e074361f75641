package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/dashboard"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
)

func (e *env) jobsCmd() *cobra.Command {
	return group("jobs", "list, show, cancel, delete, replay and purge jobs",
		e.jobsListCmd(), e.jobsShowCmd(), e.jobsCancelCmd(), e.jobsDeleteCmd(), e.jobsReplayCmd(), e.jobsPurgeCmd())
}

func (e *env) jobsListCmd() *cobra.Command {
	var q, state, cursor string
	var limit int
	c := &cobra.Command{
		Use:   "list",
		Short: "list jobs, oldest first, by queue and state",
		Long: `list jobs, oldest first. Without --state it lists every state in turn, up to
--limit jobs in all; with one state it prints the cursor of the next page.`,
		Args: nArgs(0),
		RunE: func(c *cobra.Command, _ []string) error {
			if limit <= 0 {
				return usageErr(c, "--limit must be positive, not %d", limit)
			}
			states := job.States()
			if state != "" {
				st, err := job.ParseState(state)
				if err != nil {
					return fmt.Errorf("%w: --state: %w", ErrUsage, err)
				}
				states = []job.State{st}
			} else if cursor != "" {
				return usageErr(c, "--cursor needs --state")
			}
			s, err := e.open(c.Context(), mustExist)
			if err != nil {
				return err
			}
			defer s.Close()
			page := dashboard.JobPage{Jobs: []dashboard.JobView{}}
			for _, st := range states {
				p, err := s.ListJobs(c.Context(), backends.ListJobsParams{Queue: q, State: st, Limit: limit - len(page.Jobs), Cursor: cursor})
				if err != nil {
					return err
				}
				for _, r := range p.Jobs {
					page.Jobs = append(page.Jobs, dashboard.NewJobView(r))
				}
				page.Next = p.Next
				if len(page.Jobs) >= limit {
					break
				}
			}
			if len(states) > 1 {
				page.Next = "" // a cursor belongs to one state's listing
			}
			return e.show(c, page, func(w io.Writer) error {
				err := table(w, "ID\tQUEUE\tTASK\tSTATE\tATTEMPTS\tCREATED\tLAST ERROR", func(tw io.Writer) {
					for _, v := range page.Jobs {
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", v.ID, v.Queue, v.Task, v.State, len(v.Attempts), ago(v.CreatedAt), lastError(v))
					}
				})
				if err == nil && page.Next != "" {
					_, err = fmt.Fprintf(w, "more: --cursor %s\n", page.Next)
				}
				return err
			})
		},
	}
	c.Flags().StringVar(&q, "queue", "", "only this queue (default: every queue)")
	c.Flags().StringVar(&state, "state", "", "only this state: "+statesList()+" (default: every state)")
	c.Flags().IntVar(&limit, "limit", 100, "at most this many jobs")
	c.Flags().StringVar(&cursor, "cursor", "", "continue a listing of one state from the cursor it printed")
	return c
}

func (e *env) jobsShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "show one job: state, arguments, attempts with their errors, result",
		Args:  nArgs(1),
		RunE:  e.showJob,
	}
}

// showJob prints one job as the dashboard's job view shows it.
func (e *env) showJob(c *cobra.Command, args []string) error {
	s, err := e.open(c.Context(), mustExist)
	if err != nil {
		return err
	}
	defer s.Close()
	r, err := s.GetJob(c.Context(), backends.GetJobParams{ID: args[0]})
	if err != nil {
		return fmt.Errorf("job %s: %w", args[0], err)
	}
	v := dashboard.NewJobView(r)
	if n, err := queue.NewClient(s, queue.Config{}).Notes(c.Context(), r.ID); err == nil {
		v.Notes = dashboard.NewNotesView(n)
	} else if !errors.Is(err, job.ErrUnsupported) {
		return fmt.Errorf("job %s: notes: %w", r.ID, err)
	}
	return e.show(c, v, func(w io.Writer) error { return printJob(w, v) })
}

// jobLogLines is how many of a job's kept log lines `jobs show` prints.
const jobLogLines = 20

func printJob(w io.Writer, v dashboard.JobView) error {
	tw := tabwriterFor(w)
	row := func(k, val string) { fmt.Fprintf(tw, "%s:\t%s\n", k, val) }
	row("id", v.ID)
	row("task", v.Task)
	row("queue", v.Queue)
	row("state", string(v.State))
	row("priority", fmt.Sprint(v.Priority))
	deliveries := fmt.Sprint(v.Deliveries)
	if v.MaxDeliveries > 0 {
		deliveries += fmt.Sprintf(" of at most %d", v.MaxDeliveries)
	}
	row("deliveries", deliveries)
	row("created", stamp(v.CreatedAt))
	row("run at", stamp(v.RunAt))
	for _, t := range []struct {
		name string
		at   *time.Time
	}{{"started", v.StartedAt}, {"finished", v.FinishedAt}, {"lease expires", v.LeaseExpiresAt}} {
		if t.at != nil {
			row(t.name, stamp(*t.at))
		}
	}
	if v.CancelRequested {
		row("cancel", "requested")
	}
	for _, k := range slices.Sorted(maps.Keys(v.Headers)) {
		row("header "+k, v.Headers[k])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "args:\n  %s\n", indentJSON(v.Args))
	if len(v.Result) > 0 {
		fmt.Fprintf(w, "result:\n  %s\n", indentJSON(v.Result))
	}
	for _, a := range v.Attempts {
		fmt.Fprintf(w, "attempt %d failed at %s: %s\n", a.Attempt, stamp(a.At), a.Error)
	}
	printNotes(w, v.Notes)
	return nil
}

// printNotes prints a long job's progress, checkpoint, the last of its
// kept log lines and a flag for an ignored cancellation.
func printNotes(w io.Writer, n *dashboard.NotesView) {
	if n == nil {
		return
	}
	if ic := n.IgnoredCancel; ic != nil {
		fmt.Fprintf(w, "IGNORED CANCELLATION (%s) for %.0fs on worker %s at %s: it runs again elsewhere\n", ic.Cause, ic.Seconds, ic.Worker, stamp(ic.At))
	}
	if p := n.Progress; p != nil {
		line := fmt.Sprintf("progress: %.0f%%", 100*p.Fraction)
		if p.Message != "" {
			line += " " + p.Message
		}
		if p.At != nil {
			line += " (" + stamp(*p.At) + ")"
		}
		fmt.Fprintln(w, line)
	}
	if len(n.Checkpoint) > 0 {
		fmt.Fprintf(w, "checkpoint:\n  %s\n", indentJSON(n.Checkpoint))
	}
	logs := n.Logs
	dropped := n.LogsDropped
	if len(logs) > jobLogLines {
		dropped += len(logs) - jobLogLines
		logs = logs[len(logs)-jobLogLines:]
	}
	if dropped > 0 {
		fmt.Fprintf(w, "log (%d older lines not shown; --json has the kept ones):\n", dropped)
	} else if len(logs) > 0 {
		fmt.Fprintln(w, "log:")
	}
	for _, l := range logs {
		fmt.Fprintf(w, "  %s %s %s %s\n", stamp(l.At), l.Level, l.Msg, l.Attrs)
	}
}

func (e *env) jobsCancelCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "cancel ID...",
		Short: "cancel waiting jobs; ask running ones to stop",
		Args:  minArgs(1),
		RunE: func(c *cobra.Command, ids []string) error {
			s, err := e.open(c.Context(), mustExist)
			if err != nil {
				return err
			}
			defer s.Close()
			cl := queue.NewClient(s, queue.Config{})
			var errs []error
			for _, id := range ids {
				st, err := cl.Cancel(c.Context(), id)
				if err != nil {
					errs = append(errs, fmt.Errorf("job %s: %w", id, err))
					continue
				}
				fmt.Fprintf(c.OutOrStdout(), "%s %s\n", id, st)
			}
			return errors.Join(errs...)
		},
	}
}

func (e *env) jobsDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete ID...",
		Short: "delete finished or waiting jobs (cancel a running one first)",
		Args:  minArgs(1),
		RunE: e.eachJob("deleted", "it is running: cancel it first", func(ctx context.Context, s store, id string) (int, error) {
			return s.DeleteJobs(ctx, backends.DeleteJobsParams{IDs: []string{id}})
		}),
	}
}

func (e *env) jobsReplayCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "replay ID...",
		Short: "run dead or cancelled jobs again, their attempt history kept",
		Args:  minArgs(1),
		RunE:  e.replay,
	}
}

// replay replays jobs by ID.
func (e *env) replay(c *cobra.Command, ids []string) error {
	return e.eachJob("replayed", "only dead or cancelled jobs are replayed", func(ctx context.Context, s store, id string) (int, error) {
		return s.ReplayJobs(ctx, backends.ReplayJobsParams{IDs: []string{id}})
	})(c, ids)
}

// eachJob runs op on each job by ID, alone so that the ones it left are
// known: it prints how many it changed ("deleted 2") and fails naming
// each job left and why (it does not exist, or rule).
func (e *env) eachJob(done, rule string, op func(context.Context, store, string) (int, error)) func(*cobra.Command, []string) error {
	return func(c *cobra.Command, ids []string) error {
		s, err := e.open(c.Context(), mustExist)
		if err != nil {
			return err
		}
		defer s.Close()
		var errs []error
		n := 0
		for _, id := range ids {
			k, err := op(c.Context(), s, id)
			if err == nil && k == 0 {
				err = whyNot(c.Context(), s, id, done, rule)
			}
			if err != nil {
				errs = append(errs, err)
			}
			n += k
		}
		fmt.Fprintf(c.OutOrStdout(), "%s %d\n", done, n)
		return errors.Join(errs...)
	}
}

// whyNot is the error for a job an action left alone: it does not exist,
// or it is in a state the action does not apply to.
func whyNot(ctx context.Context, s store, id, done, rule string) error {
	r, err := s.GetJob(ctx, backends.GetJobParams{ID: id})
	if err != nil {
		return fmt.Errorf("job %s: %w", id, err)
	}
	return fmt.Errorf("job %s was not %s: it is %s; %s", id, done, r.State, rule)
}

func (e *env) jobsPurgeCmd() *cobra.Command {
	var states []string
	c := &cobra.Command{
		Use:   "purge QUEUE --state STATE[,STATE...]",
		Short: "delete every job of a queue in the given states (running jobs never)",
		Args:  nArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if len(states) == 0 {
				return usageErr(c, "--state is required (%s): purging deletes jobs for good", statesList())
			}
			var sts []job.State
			for _, name := range states {
				st, err := job.ParseState(name)
				if err != nil {
					return fmt.Errorf("%w: --state: %w", ErrUsage, err)
				}
				if st == job.Running {
					return usageErr(c, "running jobs are never purged: cancel them")
				}
				sts = append(sts, st)
			}
			s, err := e.openQueue(c.Context(), args[0])
			if err != nil {
				return err
			}
			defer s.Close()
			n, err := s.PurgeQueue(c.Context(), backends.PurgeQueueParams{Queue: args[0], States: sts})
			if err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "purged %d\n", n)
			return nil
		},
	}
	c.Flags().StringSliceVar(&states, "state", nil, "states to purge, comma-separated: "+statesList())
	return c
}

func indentJSON(b json.RawMessage) string {
	if len(b) == 0 {
		return "-"
	}
	out, err := json.MarshalIndent(b, "  ", "  ")
	if err != nil {
		return string(b)
	}
	return string(out)
}

func lastError(v dashboard.JobView) string {
	if len(v.Attempts) == 0 {
		return ""
	}
	return firstLine(v.Attempts[len(v.Attempts)-1].Error)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func statesList() string {
	var names []string
	for _, st := range job.States() {
		names = append(names, string(st))
	}
	return strings.Join(names, ", ")
}
