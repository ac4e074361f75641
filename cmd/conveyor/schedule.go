package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/conveyorhq/conveyor/internal/demo"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/scheduler"
)

// newScheduler returns a scheduler over the demo tasks on b.
func newScheduler(b store, cfg scheduler.Config) (*scheduler.Scheduler, error) {
	cfg.Tasks = demo.Tasks
	return scheduler.New(queue.NewClient(b, queue.Config{}), cfg)
}

// runSchedule manages the entries stored in the backend; `conveyor worker`
// fires them.
func runSchedule(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("schedule", flag.ContinueOnError)
	db := dbFlag(fs)
	misfire := fs.String("misfire", "skip", "add: what missed ticks do: skip, once or catchup")
	q := fs.String("queue", "", "add: queue (default: the task's)")
	usage := fmt.Errorf("usage: conveyor schedule add [flags] NAME SCHEDULE TASK JSON | list | remove NAME | pause NAME | resume NAME: %w", flag.ErrHelp)
	if len(args) == 0 {
		return usage
	}
	cmd := args[0]
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	b, err := openBackend(ctx, *db)
	if err != nil {
		return err
	}
	defer b.Close()
	s, err := newScheduler(b, scheduler.Config{})
	if err != nil {
		return err
	}
	rest := fs.Args()
	switch {
	case cmd == "add" && len(rest) == 4:
		e := scheduler.Entry{Name: rest[0], Schedule: rest[1], Task: rest[2], Args: []byte(rest[3]),
			Queue: *q, Misfire: scheduler.Misfire(*misfire)}
		if err := s.Add(ctx, e); err != nil {
			return err
		}
		fmt.Fprintf(out, "added %s: %s %s\n", e.Name, e.Schedule, e.Task)
	case cmd == "list" && len(rest) == 0:
		list, err := s.List(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tSCHEDULE\tTASK\tMISFIRE\tPAUSED\tLAST\tNEXT")
		for _, st := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%s\t%s\n", st.Name, st.Schedule, st.Task, st.Misfire, st.Paused, stamp(st.Last), stamp(st.Next))
		}
		return tw.Flush()
	case cmd == "remove" && len(rest) == 1:
		return s.Remove(ctx, rest[0])
	case (cmd == "pause" || cmd == "resume") && len(rest) == 1:
		return s.Pause(ctx, rest[0], cmd == "pause")
	default:
		return usage
	}
	return nil
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format(time.RFC3339)
}
