package tasks

// The README's flow-control tasks.

import (
	"time"

	"github.com/conveyorhq/conveyor/flow"
	"github.com/conveyorhq/conveyor/queue"
)

type SyncArgs struct {
	Store string `json:"store"`
}

var SyncStore = queue.NewTask[SyncArgs, queue.None]("shopify.sync", queue.TaskOptions{
	// 20 calls a second per store, across every worker.
	RateLimit: &flow.RateLimit{Limit: 20, Per: time.Second, Key: flow.ByJobKey},
})

var ExportAccount = queue.NewTask[SyncArgs, queue.None]("accounts.export", queue.TaskOptions{
	ConcurrencyLimit: &flow.ConcurrencyLimit{Limit: 1}, // one export per account at a time
	Expires:          time.Hour,                        // not started within an hour: never run
})
