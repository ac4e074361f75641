package sentryhook

import (
	"context"
	"strconv"

	"github.com/getsentry/sentry-go"

	"github.com/conveyorhq/conveyor/daemon"
)

// OnError returns a daemon.App.OnError that sends each failure to Sentry
// through hub (nil: sentry.CurrentHub()): the error chain as the exception,
// the task, queue, job ID, attempt and whether the job is dead as tags (so
// Sentry groups by task and filters dead letters), a handler panic's stack
// as the "conveyor" context. A dead letter is an error, a failed attempt that will be
// retried a warning.
func OnError(hub *sentry.Hub) func(context.Context, daemon.Failure) {
	return func(_ context.Context, f daemon.Failure) {
		h := hub
		if h == nil {
			h = sentry.CurrentHub()
		}
		h.WithScope(func(scope *sentry.Scope) {
			level := sentry.LevelWarning
			if f.Dead {
				level = sentry.LevelError
			}
			scope.SetLevel(level)
			scope.SetTags(map[string]string{
				"conveyor.task": f.Job.Task, "conveyor.queue": f.Job.Queue, "conveyor.job_id": f.Job.ID,
				"conveyor.attempt": strconv.Itoa(f.Attempt), "conveyor.dead": strconv.FormatBool(f.Dead),
			})
			scope.SetFingerprint([]string{"conveyor", f.Job.Task, "{{ default }}"})
			if f.Stack != "" {
				scope.SetContext("conveyor", sentry.Context{"panic_stack": f.Stack})
			}
			h.CaptureException(f.Err)
		})
	}
}
