package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/conveyorhq/conveyor/internal/demo"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
)

func runEnqueue(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("enqueue", flag.ContinueOnError)
	db := dbFlag(fs)
	q := fs.String("queue", "", "queue (default: the task's)")
	priority := fs.Int("priority", 0, "priority; higher runs first (default: the task's)")
	delay := fs.Duration("delay", 0, "run no sooner than this from now")
	unique := fs.String("unique", "", "unique key: no new job while one with this key exists")
	wait := fs.Bool("wait", false, "wait for the job to finish and print its result")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return fmt.Errorf("usage: conveyor enqueue [flags] TASK JSON: %w", flag.ErrHelp)
	}
	name, payload := fs.Arg(0), []byte(fs.Arg(1))
	// The stock binary knows the demo tasks.
	i := slices.IndexFunc(demo.Tasks, func(d queue.Definition) bool { return d.Name() == name })
	if i < 0 {
		return fmt.Errorf("%w: %q", job.ErrUnknownTask, name)
	}
	def := demo.Tasks[i]
	b, err := openBackend(ctx, *db)
	if err != nil {
		return err
	}
	defer b.Close()
	c := queue.NewClient(b, queue.Config{})
	refs, err := c.EnqueueMany(ctx, def.RawRequest(payload, &queue.EnqueueOptions{
		Queue: *q, Priority: *priority, Delay: *delay, UniqueKey: *unique,
	}))
	if err != nil {
		return err
	}
	dup := ""
	if refs[0].Duplicate {
		dup = " (duplicate: the existing job)"
	}
	fmt.Fprintf(out, "%s%s\n", refs[0].ID, dup)
	if !*wait {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	r, err := c.WaitFinished(wctx, refs[0].ID)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s %s\n", r.State, r.Result)
	if r.State != job.Done {
		return errors.New("job did not succeed")
	}
	return nil
}
