package worker

import (
	"context"
	"fmt"
)

// Iterate runs a long job as batches over a cursor, like Sidekiq's
// IterableJob: step gets the cursor to start from and returns the cursor
// after its batch and whether it was the last. After each batch the worker
// checkpoints the cursor (Checkpoint), so the job, when it runs again (a
// retry, a re-delivery after a crash, another worker after a drain),
// starts from the batch after the last one finished: at most the batch in
// flight runs twice. The first delivery starts from the zero C.
//
// When the worker begins to drain (Stop), Iterate returns after the
// current batch with an error wrapping ErrShutdown: the worker releases
// the job without using an attempt, and another worker resumes it from
// the checkpoint. Return Iterate's error from the handler.
func Iterate[C any](ctx context.Context, step func(ctx context.Context, cursor C) (next C, done bool, err error)) error {
	l, err := fromContext(ctx)
	if err != nil {
		return err
	}
	cur, _, err := LastCheckpoint[C](ctx)
	if err != nil {
		return err
	}
	for {
		next, done, err := step(ctx, cur)
		if err != nil {
			return err
		}
		if err := Checkpoint(ctx, next); err != nil {
			return fmt.Errorf("checkpoint after a batch: %w", err)
		}
		if done {
			return nil
		}
		cur = next
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		select {
		case <-l.w.drain:
			return fmt.Errorf("%w: stopped after a batch; resumes from its checkpoint", ErrShutdown)
		default:
		}
	}
}
