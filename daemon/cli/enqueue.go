package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/conveyorhq/conveyor/backends/open"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
)

// ErrNotDone: `enqueue --wait` saw its job end dead or cancelled, or not
// end within --timeout.
var ErrNotDone = errors.New("job did not succeed")

func (e *env) enqueueCmd() *cobra.Command {
	var o queue.EnqueueOptions
	var wait bool
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "enqueue TASK JSON",
		Short: "enqueue one job of one of the app's tasks, its arguments as JSON",
		Args:  nArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			if timeout < 0 {
				return usageErr(c, "--timeout must not be negative")
			}
			def, err := e.task(args[0])
			if err != nil {
				return err
			}
			s, err := e.open(c.Context(), mayCreate)
			if err != nil {
				return err
			}
			defer s.Close()
			cl := queue.NewClient(s, queue.Config{})
			refs, err := cl.EnqueueMany(c.Context(), def.RawRequest([]byte(args[1]), &o))
			if err != nil {
				return err
			}
			dup := ""
			if refs[0].Duplicate {
				dup = " (duplicate: the existing job)"
			}
			fmt.Fprintf(c.OutOrStdout(), "%s%s\n", refs[0].ID, dup)
			if !wait {
				return nil
			}
			return waitFor(c, cl, refs[0].ID, timeout)
		},
	}
	f := c.Flags()
	f.StringVar(&o.Queue, "queue", "", "queue (default: the task's)")
	f.IntVar(&o.Priority, "priority", 0, "priority; higher runs first (default: the task's)")
	f.DurationVar(&o.Delay, "delay", 0, "run no sooner than this from now")
	f.StringVar(&o.UniqueKey, "unique", "", "unique key: no new job while one with this key exists")
	f.BoolVar(&wait, "wait", false, "wait for the job to finish and print its result")
	f.DurationVar(&timeout, "timeout", time.Minute, "with --wait, give up after this long (0: wait until interrupted)")
	return c
}

// waitFor waits for job id to finish, saying on stderr what it waits for;
// it prints the result of a done job, and fails with the last error of a
// dead one, or with what the job was doing when the time ran out.
func waitFor(c *cobra.Command, cl *queue.Client, id string, timeout time.Duration) error {
	r, err := cl.Job(c.Context(), id)
	if err != nil {
		return err
	}
	limit := "until interrupted"
	ctx := c.Context()
	if timeout > 0 {
		limit = "up to " + timeout.String()
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	fmt.Fprintf(c.ErrOrStderr(), "waiting %s for job %s (%s on queue %s) to finish; a worker serving %s must run it\n",
		limit, id, r.Task, r.Queue, r.Queue)
	r, err = cl.WaitFinished(ctx, id)
	if errors.Is(err, context.DeadlineExceeded) && c.Context().Err() == nil {
		now, gerr := cl.Job(c.Context(), id)
		if gerr != nil {
			return fmt.Errorf("%w: job %s not finished after %s: %w", ErrNotDone, id, timeout, gerr)
		}
		return fmt.Errorf("%w: job %s is still %s after %s%s", ErrNotDone, id, now.State, timeout, stalled(now))
	}
	if err != nil {
		return fmt.Errorf("waiting for job %s: %w", id, err)
	}
	fmt.Fprintf(c.OutOrStdout(), "%s %s\n", r.State, r.Result)
	if r.State == job.Done {
		return nil
	}
	if le := r.LastError(); le != nil {
		return fmt.Errorf("%w: job %s is %s after %d attempts: %s", ErrNotDone, id, r.State, r.Attempts(), le.Error)
	}
	return fmt.Errorf("%w: job %s is %s", ErrNotDone, id, r.State)
}

// stalled says why a job that outlived --timeout may be waiting.
func stalled(r *job.Record) string {
	switch {
	case r.State == job.Pending && r.Deliveries == 0:
		return fmt.Sprintf(": no worker has started it; is one running on queue %s, and is the queue paused?", r.Queue)
	case r.State == job.Retrying:
		if le := r.LastError(); le != nil {
			return fmt.Sprintf(", waiting for its next attempt; the last failed: %s", firstLine(le.Error))
		}
	}
	return ""
}

// task returns the app's task named name.
func (e *env) task(name string) (queue.Definition, error) {
	i := slices.IndexFunc(e.app.Tasks, func(d queue.Definition) bool { return d.Name() == name })
	if i < 0 {
		var names []string
		for _, d := range e.app.Tasks {
			names = append(names, d.Name())
		}
		return nil, fmt.Errorf("%w %q: %s knows %s", job.ErrUnknownTask, name, e.app.Name, cmp.Or(strings.Join(names, ", "), "no task"))
	}
	return e.app.Tasks[i], nil
}

// checkArgs fails as enqueue would if payload does not decode into the
// task's arguments: it enqueues the request on a throwaway in-memory
// backend, the one place Definition exposes that check.
func checkArgs(ctx context.Context, def queue.Definition, payload []byte) error {
	mem, err := open.URL(ctx, "memory:", open.Options{})
	if err != nil {
		return err
	}
	defer mem.Close()
	_, err = queue.NewClient(mem, queue.Config{}).EnqueueMany(ctx, def.RawRequest(payload, nil))
	return err
}
