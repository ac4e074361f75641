package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/spf13/cobra"

	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/scheduler"
)

// Errors of the schedule commands.
var (
	// ErrUnknownSchedule: no periodic task has that name.
	ErrUnknownSchedule = errors.New("unknown periodic task")
	// ErrScheduleExists: `schedule add` named an entry that exists, without
	// --replace.
	ErrScheduleExists = errors.New("periodic task exists")
)

// scheduleCmd manages the entries stored in the backend; `worker` fires
// them.
func (e *env) scheduleCmd() *cobra.Command {
	return group("schedule", "manage periodic tasks (the worker fires them)",
		e.scheduleAddCmd(),
		&cobra.Command{Use: "list", Short: "the periodic tasks: schedule, task, last and next tick", Args: nArgs(0), RunE: e.scheduleList},
		&cobra.Command{Use: "remove NAME", Short: "remove a periodic task", Args: nArgs(1), RunE: e.scheduleChange(func(ctx context.Context, en *scheduler.Entries, name string) error {
			return en.Remove(ctx, name)
		}, "removed")},
		&cobra.Command{Use: "pause NAME", Short: "stop firing a periodic task", Args: nArgs(1), RunE: e.scheduleChange(func(ctx context.Context, en *scheduler.Entries, name string) error {
			return en.Pause(ctx, name, true)
		}, "paused")},
		&cobra.Command{Use: "resume NAME", Short: "fire a paused periodic task again", Args: nArgs(1), RunE: e.scheduleChange(func(ctx context.Context, en *scheduler.Entries, name string) error {
			return en.Pause(ctx, name, false)
		}, "resumed")},
	)
}

func (e *env) scheduleAddCmd() *cobra.Command {
	var misfire, q string
	var priority int
	var replace bool
	c := &cobra.Command{
		Use:   "add NAME SCHEDULE TASK JSON",
		Short: "add a periodic task: a cron schedule firing one of the app's tasks with these arguments",
		Args:  nArgs(4),
		RunE: func(c *cobra.Command, args []string) error {
			ent := scheduler.Entry{Name: args[0], Schedule: args[1], Task: args[2], Args: []byte(args[3]),
				Queue: q, Priority: priority, Misfire: scheduler.Misfire(misfire)}
			def, err := e.task(ent.Task)
			if err != nil {
				return err
			}
			if err := checkArgs(c.Context(), def, ent.Args); err != nil {
				return err
			}
			s, en, err := e.entries(c.Context(), mayCreate)
			if err != nil {
				return err
			}
			defer s.Close()
			if _, err := entry(c.Context(), en, ent.Name); err == nil && !replace {
				return fmt.Errorf("%w: %q (--replace to replace it)", ErrScheduleExists, ent.Name)
			} else if err != nil && !errors.Is(err, ErrUnknownSchedule) {
				return err
			}
			sched, err := scheduler.New(queue.NewClient(s, queue.Config{}), scheduler.Config{Tasks: e.app.Tasks})
			if err != nil {
				return err
			}
			if err := sched.Add(c.Context(), ent); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "added %s: %s %s\n", ent.Name, ent.Schedule, ent.Task)
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&misfire, "misfire", string(scheduler.Skip), "what ticks missed while no worker ran do: skip, once or catchup")
	f.StringVar(&q, "queue", "", "queue (default: the task's)")
	f.IntVar(&priority, "priority", 0, "priority (default: the task's)")
	f.BoolVar(&replace, "replace", false, "replace an entry of that name (default: refuse)")
	return c
}

func (e *env) scheduleList(c *cobra.Command, _ []string) error {
	s, en, err := e.entries(c.Context(), mustExist)
	if err != nil {
		return err
	}
	defer s.Close()
	list, err := en.List(c.Context())
	if err != nil {
		return err
	}
	if list == nil {
		list = []scheduler.EntryState{}
	}
	return e.show(c, list, func(w io.Writer) error {
		return table(w, "NAME\tSCHEDULE\tTASK\tMISFIRE\tPAUSED\tLAST\tNEXT", func(tw io.Writer) {
			for _, st := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%s\t%s\n", st.Name, st.Schedule, st.Task, st.Misfire, st.Paused, stamp(st.Last), stamp(st.Next))
			}
		})
	})
}

// scheduleChange runs op on an existing entry, failing with
// ErrUnknownSchedule for a name no entry has.
func (e *env) scheduleChange(op func(context.Context, *scheduler.Entries, string) error, done string) func(*cobra.Command, []string) error {
	return func(c *cobra.Command, args []string) error {
		s, en, err := e.entries(c.Context(), mustExist)
		if err != nil {
			return err
		}
		defer s.Close()
		if _, err := entry(c.Context(), en, args[0]); err != nil {
			return err
		}
		if err := op(c.Context(), en, args[0]); err != nil {
			return err
		}
		fmt.Fprintf(c.OutOrStdout(), "%s %s\n", done, args[0])
		return nil
	}
}

// entries opens the backend and the periodic entries stored in it.
func (e *env) entries(ctx context.Context, c create) (store, *scheduler.Entries, error) {
	s, err := e.open(ctx, c)
	if err != nil {
		return nil, nil, err
	}
	en, err := scheduler.NewEntries(s)
	if err != nil {
		_ = s.Close()
		return nil, nil, err
	}
	return s, en, nil
}

// entry returns the stored entry called name, or ErrUnknownSchedule.
func entry(ctx context.Context, en *scheduler.Entries, name string) (scheduler.EntryState, error) {
	list, err := en.List(ctx)
	if err != nil {
		return scheduler.EntryState{}, err
	}
	i := slices.IndexFunc(list, func(st scheduler.EntryState) bool { return st.Name == name })
	if i < 0 {
		var names []string
		for _, st := range list {
			names = append(names, st.Name)
		}
		return scheduler.EntryState{}, fmt.Errorf("%w %q (entries: %v)", ErrUnknownSchedule, name, names)
	}
	return list[i], nil
}
