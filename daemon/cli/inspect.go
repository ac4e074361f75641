package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/daemon"
	"github.com/conveyorhq/conveyor/dashboard"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

// ErrUnknownQueue: a command that changes a queue named one that no job,
// stored setting or task of the app names (most often a typo, which would
// otherwise leave a phantom queue behind).
var ErrUnknownQueue = errors.New("unknown queue")

func (e *env) inspectCmd() *cobra.Command {
	return group("inspect", "inspect queues, workers, jobs and limits; pause, resume, replay, bound queues, override limits",
		&cobra.Command{Use: "queues", Short: "job counts per queue and state", Args: nArgs(0), RunE: e.queues},
		&cobra.Command{Use: "workers", Short: "live worker processes: host, PID, queues (the fair ones with their weights), running jobs, breakers", Args: nArgs(0), RunE: e.workers},
		&cobra.Command{Use: "job ID", Short: "one job (as jobs show)", Args: nArgs(1), RunE: e.showJob},
		&cobra.Command{Use: "workflow ID", Short: "one workflow: its state and each step's, with what it waits for and its job", Args: nArgs(1), RunE: e.showWorkflow},
		e.deadCmd(),
		&cobra.Command{Use: "replay ID...", Short: "run dead or cancelled jobs again (as jobs replay)", Args: minArgs(1), RunE: e.replay},
		&cobra.Command{Use: "replay-all QUEUE", Short: "run every dead job of a queue again", Args: nArgs(1), RunE: e.replayAll},
		&cobra.Command{Use: "pause QUEUE", Short: "stop workers everywhere from starting the queue's jobs", Args: nArgs(1), RunE: e.pause(true)},
		&cobra.Command{Use: "resume QUEUE", Short: "let workers start the queue's jobs again", Args: nArgs(1), RunE: e.pause(false)},
		e.boundCmd(),
		e.limitsCmd(),
	)
}

func (e *env) queues(c *cobra.Command, _ []string) error {
	s, err := e.open(c.Context(), mustExist)
	if err != nil {
		return err
	}
	defer s.Close()
	stats, err := s.QueueStats(c.Context(), backends.QueueStatsParams{})
	if err != nil {
		return err
	}
	views := []dashboard.QueueView{}
	for _, st := range stats {
		views = append(views, dashboard.QueueView{Queue: st.Queue, Paused: st.Paused, Counts: st.Counts})
	}
	return e.show(c, views, func(w io.Writer) error {
		header := "QUEUE\tPAUSED"
		for _, st := range job.States() {
			header += "\t" + strings.ToUpper(string(st))
		}
		return table(w, header, func(tw io.Writer) {
			for _, v := range views {
				fmt.Fprintf(tw, "%s\t%v", v.Queue, v.Paused)
				for _, st := range job.States() {
					fmt.Fprintf(tw, "\t%d", v.Counts[st])
				}
				fmt.Fprintln(tw)
			}
		})
	})
}

func (e *env) workers(c *cobra.Command, _ []string) error {
	s, err := e.open(c.Context(), mustExist)
	if err != nil {
		return err
	}
	defer s.Close()
	list, err := worker.Workers(c.Context(), s)
	if err != nil {
		return err
	}
	if list == nil {
		list = []worker.Info{}
	}
	return e.show(c, list, func(w io.Writer) error {
		return table(w, "WORKER\tHOST\tPID\tQUEUES\tFAIR\tRUNNING\tCONCURRENCY\tHEARTBEAT\tBREAKERS", func(tw io.Writer) {
			for _, wi := range list {
				var brk []string
				for _, s := range wi.Breakers {
					brk = append(brk, s.Name+"="+s.State)
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%d\t%d\t%s\t%s\n", wi.ID, wi.Host, wi.PID, strings.Join(wi.Queues, ","),
					daemon.FormatFair(wi.Fair), wi.Running, wi.Concurrency, wi.Heartbeat.Format(time.RFC3339), strings.Join(brk, ","))
			}
		})
	})
}

func (e *env) deadCmd() *cobra.Command {
	var q string
	var limit int
	c := &cobra.Command{
		Use:   "dead",
		Short: "dead letters and why they died",
		Args:  nArgs(0),
		RunE: func(c *cobra.Command, _ []string) error {
			s, err := e.open(c.Context(), mustExist)
			if err != nil {
				return err
			}
			defer s.Close()
			page, err := s.ListJobs(c.Context(), backends.ListJobsParams{Queue: q, State: job.Dead, Limit: limit})
			if err != nil {
				return err
			}
			views := []dashboard.JobView{}
			for _, r := range page.Jobs {
				views = append(views, dashboard.NewJobView(r))
			}
			return e.show(c, views, func(w io.Writer) error {
				return table(w, "ID\tQUEUE\tTASK\tREASON", func(tw io.Writer) {
					for _, v := range views {
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", v.ID, v.Queue, v.Task, lastError(v))
					}
				})
			})
		},
	}
	c.Flags().StringVar(&q, "queue", "", "only this queue")
	c.Flags().IntVar(&limit, "limit", 100, "at most this many")
	return c
}

func (e *env) replayAll(c *cobra.Command, args []string) error {
	s, err := e.openQueue(c.Context(), args[0])
	if err != nil {
		return err
	}
	defer s.Close()
	n, err := s.ReplayJobs(c.Context(), backends.ReplayJobsParams{Queue: args[0]})
	if err != nil {
		return err
	}
	fmt.Fprintf(c.OutOrStdout(), "replayed %d\n", n)
	return nil
}

func (e *env) pause(paused bool) func(c *cobra.Command, args []string) error {
	return func(c *cobra.Command, args []string) error {
		s, err := e.openQueue(c.Context(), args[0])
		if err != nil {
			return err
		}
		defer s.Close()
		p := backends.PauseQueueParams{Queue: args[0]}
		if paused {
			err = s.PauseQueue(c.Context(), p)
		} else {
			err = s.ResumeQueue(c.Context(), p)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(c.OutOrStdout(), "%s %s\n", args[0], map[bool]string{true: "paused", false: "resumed"}[paused])
		return nil
	}
}

// openQueue opens the backend for a change to queue name, which must be
// known (see knownQueue).
func (e *env) openQueue(ctx context.Context, name string) (store, error) {
	s, err := e.open(ctx, mustExist)
	if err != nil {
		return nil, err
	}
	if err := e.knownQueue(ctx, s, name); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// knownQueue fails with ErrUnknownQueue unless some job, stored setting or
// task of the app names the queue.
func (e *env) knownQueue(ctx context.Context, s store, name string) error {
	known := map[string]bool{}
	for _, d := range e.app.Tasks {
		known[cmp.Or(d.Options().Queue, queue.DefaultQueue)] = true
	}
	stats, err := s.QueueStats(ctx, backends.QueueStatsParams{})
	if err != nil {
		return err
	}
	for _, st := range stats {
		known[st.Queue] = true
	}
	settings, err := queue.NewClient(s, queue.Config{}).QueueSettings(ctx, "")
	if err != nil && !errors.Is(err, job.ErrUnsupported) {
		return err
	}
	for _, st := range settings {
		known[st.Queue] = true
	}
	if known[name] {
		return nil
	}
	return fmt.Errorf("%w %q: no job, setting or task of %s names it (queues: %s)",
		ErrUnknownQueue, name, e.app.Name, strings.Join(slices.Sorted(maps.Keys(known)), ", "))
}

func (e *env) boundCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "bound [QUEUE N [block|reject] | QUEUE reset]",
		Short: "the queues' stored bounds, or set an operator's bound on one, or give it back to the code",
		Args:  wrapArgs(cobra.MaximumNArgs(3)),
		RunE: func(c *cobra.Command, args []string) error {
			var opts *queue.QueueOptions
			switch {
			case len(args) == 0:
			case len(args) == 2 && args[1] == "reset":
			case len(args) == 2 || (len(args) == 3 && (args[2] == "block" || args[2] == "reject")):
				n, err := strconv.Atoi(args[1])
				if err != nil || n < 0 {
					return usageErr(c, "%q is not a number of jobs", args[1])
				}
				opts = &queue.QueueOptions{MaxDepth: n}
				if len(args) == 3 && args[2] == "block" {
					opts.WhenFull = queue.Block
				}
			default:
				return usageErr(c, "want QUEUE N [block|reject] or QUEUE reset")
			}
			s, err := e.open(c.Context(), mustExist)
			if err != nil {
				return err
			}
			defer s.Close()
			cl := queue.NewClient(s, queue.Config{})
			if len(args) > 0 {
				if err := e.knownQueue(c.Context(), s, args[0]); err != nil {
					return err
				}
				return cl.SetQueue(c.Context(), args[0], opts)
			}
			return e.bounds(c, cl)
		},
	}
}

// bounds lists the queues' stored bounds: in force, and who set them.
func (e *env) bounds(c *cobra.Command, cl *queue.Client) error {
	settings, err := cl.QueueSettings(c.Context(), "")
	if err != nil {
		return err
	}
	type bound struct {
		Queue     string `json:"queue"`
		MaxDepth  int    `json:"max_depth"`
		WhenFull  string `json:"when_full"`
		SetBy     string `json:"set_by"`
		CodeDepth int    `json:"code_max_depth"`
		CodeFull  string `json:"code_when_full"`
	}
	list := []bound{}
	for _, s := range settings {
		by := "code"
		if s.Operator != nil {
			by = "operator"
		}
		eff := s.Effective()
		list = append(list, bound{s.Queue, eff.MaxDepth, fmt.Sprint(eff.WhenFull), by, s.Code.MaxDepth, fmt.Sprint(s.Code.WhenFull)})
	}
	return e.show(c, list, func(w io.Writer) error {
		return table(w, "QUEUE\tMAX DEPTH\tWHEN FULL\tSET BY\tCODE'S", func(tw io.Writer) {
			for _, b := range list {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d %s\n", b.Queue, b.MaxDepth, b.WhenFull, b.SetBy, b.CodeDepth, b.CodeFull)
			}
		})
	})
}
