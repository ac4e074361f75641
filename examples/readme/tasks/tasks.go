// Package tasks is the README's task definitions, compiled.
package tasks

import (
	"time"

	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/retry"
)

// Email is bounded: past 10,000 unsent mails, enqueue fails fast
// (ErrQueueFull) instead of piling up behind a dead SMTP server.
var Email = queue.NewQueue("email", queue.QueueOptions{MaxDepth: 10_000})

type WelcomeArgs struct {
	UserID int    `json:"user_id"`
	Email  string `json:"email"`
}

var SendWelcome = queue.NewTask[WelcomeArgs, queue.None]("app.send_welcome", queue.TaskOptions{
	Queue:   Email.Name(),
	Breaker: "smtp",
	Unique:  &queue.UniqueOptions{Window: 24 * time.Hour}, // once per user per day
	Retry: &retry.Policy{
		Stop: retry.StopAny(retry.StopAfterAttempt(8), retry.StopAfterElapsed(6*time.Hour)),
		Wait: retry.WaitFullJitter(5*time.Second, 30*time.Minute),
	},
})

type DigestArgs struct{}

var SendDigest = queue.NewTask[DigestArgs, queue.None]("app.send_digest", queue.TaskOptions{Queue: "email"})

// ExportArgs are the arguments of Export, the README's long job.
type ExportArgs struct {
	ReportID string `json:"report_id"`
	Pages    int    `json:"pages"`
}

var Export = queue.NewTask[ExportArgs, int]("app.export", queue.TaskOptions{})
