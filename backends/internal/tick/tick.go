// Package tick runs a backend's background loops until the backend closes.
package tick

import (
	"context"
	"log/slog"
	"time"
)

// Until returns a context that ends when closing is closed (or cancel is
// called), for the calls a background loop makes.
func Until(closing <-chan struct{}) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// Every calls fn every interval until closing is closed; fn's context ends
// with it.
func Every(closing <-chan struct{}, every time.Duration, fn func(ctx context.Context)) {
	ctx, cancel := Until(closing)
	defer cancel()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn(ctx)
		}
	}
}

// Janitor calls tidy every interval until closing is closed, logging its
// failures as warnings from name ("pgbackend") on log: a janitor has no
// caller to return them to. A failure because the backend is closing is
// not one.
func Janitor(closing <-chan struct{}, every time.Duration, log *slog.Logger, name string, tidy func(ctx context.Context) error) {
	Every(closing, every, func(ctx context.Context) {
		if err := tidy(ctx); err != nil && ctx.Err() == nil {
			log.Warn(name+": janitor", "err", err)
		}
	})
}
