package worker

import (
	"context"
	"log/slog"
	"time"

	"github.com/conveyorhq/conveyor/job"
)

// Logging logs each attempt's outcome and duration.
func Logging(l *slog.Logger) Middleware {
	return func(next HandlerFunc) HandlerFunc {
		return func(ctx context.Context, j *job.Record) ([]byte, error) {
			start := time.Now()
			res, err := next(ctx, j)
			attrs := []any{"job", j.ID, "task", j.Task, "queue", j.Queue, "delivery", j.Deliveries, "took", time.Since(start)}
			if err != nil {
				l.WarnContext(ctx, "job attempt failed", append(attrs, "err", err)...)
			} else {
				l.DebugContext(ctx, "job attempt succeeded", attrs...)
			}
			return res, err
		}
	}
}

// OnError calls report for every failed attempt, for an error tracker.
func OnError(report func(ctx context.Context, j *job.Record, err error)) Middleware {
	return func(next HandlerFunc) HandlerFunc {
		return func(ctx context.Context, j *job.Record) ([]byte, error) {
			res, err := next(ctx, j)
			if err != nil {
				report(ctx, j, err)
			}
			return res, err
		}
	}
}
