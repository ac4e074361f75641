package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

func runInspect(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	db := dbFlag(fs)
	q := fs.String("queue", "", "only this queue (dead)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("usage: conveyor inspect queues|workers|job ID|dead|replay ID...|replay-all QUEUE|pause QUEUE|resume QUEUE|bound [QUEUE N|QUEUE reset]: %w", flag.ErrHelp)
	}
	b, err := openBackend(ctx, *db)
	if err != nil {
		return err
	}
	defer b.Close()
	verb, rest := fs.Arg(0), fs.Args()[1:]
	need := func(n int) error {
		if len(rest) < n {
			return fmt.Errorf("inspect %s needs an argument: %w", verb, flag.ErrHelp)
		}
		return nil
	}
	switch verb {
	case "queues":
		stats, err := b.QueueStats(ctx, backends.QueueStatsParams{})
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprint(tw, "QUEUE\tPAUSED")
		for _, st := range job.States() {
			fmt.Fprintf(tw, "\t%s", strings.ToUpper(string(st)))
		}
		fmt.Fprintln(tw)
		for _, s := range stats {
			fmt.Fprintf(tw, "%s\t%v", s.Queue, s.Paused)
			for _, st := range job.States() {
				fmt.Fprintf(tw, "\t%d", s.Counts[st])
			}
			fmt.Fprintln(tw)
		}
		return tw.Flush()
	case "workers":
		list, err := worker.Workers(ctx, b)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "WORKER	HOST	PID	QUEUES	RUNNING	CONCURRENCY	HEARTBEAT	BREAKERS")
		for _, wi := range list {
			var brk []string
			for _, s := range wi.Breakers {
				brk = append(brk, s.Name+"="+s.State)
			}
			fmt.Fprintf(tw, "%s	%s	%d	%s	%d	%d	%s	%s\n", wi.ID, wi.Host, wi.PID, strings.Join(wi.Queues, ","),
				wi.Running, wi.Concurrency, wi.Heartbeat.Format(time.RFC3339), strings.Join(brk, ","))
		}
		return tw.Flush()
	case "job":
		if err := need(1); err != nil {
			return err
		}
		r, err := b.GetJob(ctx, backends.GetJobParams{ID: rest[0]})
		if err != nil {
			return err
		}
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	case "dead":
		page, err := b.ListJobs(ctx, backends.ListJobsParams{Queue: *q, State: job.Dead, Limit: 100})
		if err != nil {
			return err
		}
		for _, r := range page.Jobs {
			reason := ""
			if le := r.LastError(); le != nil {
				reason = le.Error
			}
			fmt.Fprintf(out, "%s\t%s\t%s\t%s\n", r.ID, r.Queue, r.Task, reason)
		}
		return nil
	case "replay":
		if err := need(1); err != nil {
			return err
		}
		n, err := b.ReplayJobs(ctx, backends.ReplayJobsParams{IDs: rest})
		fmt.Fprintf(out, "replayed %d\n", n)
		return err
	case "replay-all":
		if err := need(1); err != nil {
			return err
		}
		n, err := b.ReplayJobs(ctx, backends.ReplayJobsParams{Queue: rest[0]})
		fmt.Fprintf(out, "replayed %d\n", n)
		return err
	case "pause", "resume":
		if err := need(1); err != nil {
			return err
		}
		p := backends.PauseQueueParams{Queue: rest[0]}
		if verb == "pause" {
			return b.PauseQueue(ctx, p)
		}
		return b.ResumeQueue(ctx, p)
	case "bound":
		return inspectBound(ctx, b, rest, out)
	}
	return fmt.Errorf("inspect: unknown %q: %w", verb, flag.ErrHelp)
}

// inspectBound shows the queues' stored bounds (no argument), or sets an
// operator's bound on one ("bound QUEUE N [block]"), or clears it so the
// code's holds again ("bound QUEUE reset").
func inspectBound(ctx context.Context, b store, args []string, out io.Writer) error {
	c := queue.NewClient(b, queue.Config{})
	switch {
	case len(args) == 0:
		settings, err := c.QueueSettings(ctx, "")
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "QUEUE\tMAX DEPTH\tWHEN FULL\tSET BY\tCODE'S")
		for _, s := range settings {
			by := "code"
			if s.Operator != nil {
				by = "operator"
			}
			eff := s.Effective()
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d %s\n", s.Queue, eff.MaxDepth, eff.WhenFull, by, s.Code.MaxDepth, s.Code.WhenFull)
		}
		return tw.Flush()
	case len(args) == 2 && args[1] == "reset":
		return c.SetQueue(ctx, args[0], nil)
	case len(args) == 2 || (len(args) == 3 && (args[2] == "block" || args[2] == "reject")):
		n, err := strconv.Atoi(args[1])
		if err != nil || n < 0 {
			return fmt.Errorf("inspect bound: %q is not a number of jobs: %w", args[1], flag.ErrHelp)
		}
		opts := &queue.QueueOptions{MaxDepth: n}
		if len(args) == 3 && args[2] == "block" {
			opts.WhenFull = queue.Block
		}
		return c.SetQueue(ctx, args[0], opts)
	}
	return fmt.Errorf("usage: conveyor inspect bound [QUEUE N [block|reject] | QUEUE reset]: %w", flag.ErrHelp)
}
