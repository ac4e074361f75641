package flow

import (
	"context"
	"errors"
	"sync"

	"github.com/conveyorhq/conveyor/backends"
)

// The Limiter calls of a batch, for many keys: one round trip on a
// backends.LimiterBatcher, else concurrent calls.

func takeMany(ctx context.Context, l backends.Limiter, ps []backends.TakeTokensParams) ([]backends.TakeTokensResult, error) {
	if lb, ok := l.(backends.LimiterBatcher); ok && len(ps) > 1 {
		return lb.TakeTokensMany(ctx, ps)
	}
	out := make([]backends.TakeTokensResult, len(ps))
	return out, each(len(ps), func(i int) (err error) {
		out[i], err = l.TakeTokens(ctx, ps[i])
		return err
	})
}

func acquireMany(ctx context.Context, l backends.Limiter, ps []backends.AcquireSlotsParams) ([][]string, error) {
	if lb, ok := l.(backends.LimiterBatcher); ok && len(ps) > 1 {
		return lb.AcquireSlotsMany(ctx, ps)
	}
	out := make([][]string, len(ps))
	return out, each(len(ps), func(i int) (err error) {
		out[i], err = l.AcquireSlots(ctx, ps[i])
		return err
	})
}

func releaseMany(ctx context.Context, l backends.Limiter, ps []backends.ReleaseSlotsParams) error {
	if lb, ok := l.(backends.LimiterBatcher); ok && len(ps) > 1 {
		return lb.ReleaseSlotsMany(ctx, ps)
	}
	return each(len(ps), func(i int) error { return l.ReleaseSlots(ctx, ps[i]) })
}

// each runs fn(0..n-1) at once and joins their errors: the calls for
// different keys are independent, so the batch waits for the slowest
// round trip, not for their sum.
func each(n int, fn func(i int) error) error {
	if n == 1 {
		return fn(0)
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = fn(i) })
	}
	wg.Wait()
	return errors.Join(errs...)
}
