package record

import (
	"fmt"
	"strings"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

// LeaseLost is the error for a call made under lease l once l no longer
// holds its job.
func LeaseLost(l job.Lease) error { return fmt.Errorf("%w: job %s", job.ErrLeaseLost, l.JobID) }

// NotFound is the error for a job ID no job has.
func NotFound(id string) error { return fmt.Errorf("%w: %s", job.ErrNotFound, id) }

// Finished is the error for a change a finished job refuses.
func Finished(id string, st job.State) error {
	return fmt.Errorf("%w: %s is %s", job.ErrFinished, id, st)
}

// PoisonFormat is backends.PoisonReason as a format string for code that
// runs in the server (a Lua script, a SQL format() call), with verb ("%d",
// "%s") where the delivery count goes and every other % escaped, so that
// every backend records the same reason.
func PoisonFormat(verb string) string {
	const n = 987654321 // a count no other digits of the reason contain
	return strings.Replace(strings.ReplaceAll(backends.PoisonReason(n), "%", "%%"), fmt.Sprint(n), verb, 1)
}
