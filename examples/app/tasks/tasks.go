// Package tasks is an app's task definitions, shared by the web process that
// enqueues them and the worker binary that runs them. It names no backend.
package tasks

import (
	"time"

	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/retry"
)

// Email is the queue of outgoing mail, bounded so that an SMTP outage
// pushes back on signups instead of piling up; the bound is stored in the
// backend, where an operator may change it (conveyor inspect bound).
var Email = queue.NewQueue("email", queue.QueueOptions{MaxDepth: 10_000})

// WelcomeArgs are the arguments of SendWelcome.
type WelcomeArgs struct {
	UserID int    `json:"user_id"`
	Email  string `json:"email"`
}

// SendWelcome emails a new user, once per user per day however often the
// signup handler is retried.
var SendWelcome = queue.NewTask[WelcomeArgs, queue.None]("app.send_welcome", queue.TaskOptions{
	Queue:   Email.Name(),
	Timeout: 30 * time.Second,
	Breaker: "smtp",
	Unique:  &queue.UniqueOptions{Window: 24 * time.Hour},
	Retry: &retry.Policy{
		Stop: retry.StopAny(retry.StopAfterAttempt(8), retry.StopAfterElapsed(6*time.Hour)),
		Wait: retry.WaitFullJitter(5*time.Second, 30*time.Minute),
	},
})
