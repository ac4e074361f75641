package backends

import (
	"context"
	"fmt"
	"time"

	"github.com/conveyorhq/conveyor/job"
)

// SlotReserver holds concurrency limits per job key inside the reserve
// itself: a job of a task with a rule leases only while fewer than the
// rule's Limit jobs of its key are running, and nothing is left to give
// back afterwards. A Limiter's slots cost a round trip after each reserve
// before its jobs may start, and one per group of releases; here both are
// part of the reserve's own.
//
// ReserveSlots leases what Reserve would, in Reserve's order, except that
// a job whose task has a rule in p.Rules leases only while fewer than the
// rule's Limit jobs with the rule's Name and the job's key (the value of
// its header p.KeyHeader, "" when absent) are running under a live lease,
// over every queue, counting the jobs of every task with a rule of that
// Name, and the ones this call leases in order. A running job counts from
// its lease until its outcome (complete, retry, dead letter, cancel) or
// its lease's expiry: a worker that dies gives its slot back when its
// lease would have ended. A job over its limit is postponed to now plus
// its rule's Backoff (Scheduled), using no attempt and no delivery, and
// returned in HeldBack as it is now. A job that used its deliveries goes
// to Dead as in Reserve, whatever the limits. A call looks at up to
// p.Limit due jobs, leased and held back together, so a backlog of one
// full key is postponed a reserve's worth at a time, not scanned whole.
// Concurrent calls, from any process, never together lease more than a
// limit allows. A backend that cannot hold rules on its deployment
// answers a call with rules by an error wrapping job.ErrUnsupported (Redis
// Cluster: a limit spans queues whose keys live on other nodes), having
// changed nothing.
//
// With p.Fair, the jobs looked at are those ReserveFair would lease, in its
// order and with its weights, and the rules apply to them in that order;
// a group whose job is held back has had that job's turn. A backend that
// is a SlotReserver and a FairReserver serves both; a fair queue's limits
// and a plain queue's are then one count.
//
// Fallback when absent or unsupported, and for a limit keyed otherwise
// than by the job's key (flow.ConcurrencyLimit.Key): the worker takes a
// slot of a Limiter for each reserved delivery and gives it back after
// the outcome. A limit is held one way or the other, never both, so every
// worker of a deployment must take the same way: they do, as the way
// depends only on the backend and the limit.
type SlotReserver interface {
	ReserveSlots(ctx context.Context, p ReserveSlotsParams) (ReserveSlotsResult, error)
}

// ReserveSlotsParams is the input of SlotReserver.ReserveSlots.
type ReserveSlotsParams struct {
	ReserveParams
	// Rules are the limits, a task at most once. No rule: Reserve.
	Rules []SlotRule
	// KeyHeader names the header that holds a job's key.
	KeyHeader string
	// Fair looks at the jobs as ReserveFair would (ReserveParams.Weights).
	Fair bool
}

// SlotRule is one task's concurrency limit for ReserveSlots.
type SlotRule struct {
	Task string
	// Name is the limit's: rules of one Name count their tasks' jobs
	// together, as tasks sharing a flow.ConcurrencyLimit name do.
	Name  string
	Limit int // at least 1
	// Backoff is how long a job the limit holds back waits; at least 1ms.
	Backoff time.Duration
}

// ReserveSlotsResult is the outcome of SlotReserver.ReserveSlots.
type ReserveSlotsResult struct {
	Jobs     []*job.Record // leased, as Reserve returns them
	HeldBack []*job.Record // postponed by their limit, as they are now
}

// Validate checks p's rules; the error wraps job.ErrInvalid.
func (p ReserveSlotsParams) Validate() error {
	seen := map[string]bool{}
	for _, r := range p.Rules {
		if r.Task == "" || r.Name == "" || r.Limit < 1 || r.Backoff < time.Millisecond || seen[r.Task] {
			return fmt.Errorf("%w: slot rule for task %q: a task once, a name, a limit of at least 1 and a backoff of at least 1ms", job.ErrInvalid, r.Task)
		}
		seen[r.Task] = true
	}
	if len(p.Rules) > 0 && p.KeyHeader == "" {
		return fmt.Errorf("%w: slot rules need the key's header", job.ErrInvalid)
	}
	return nil
}

// RuleOf returns the rule of task, if any.
func (p ReserveSlotsParams) RuleOf(task string) (SlotRule, bool) {
	for _, r := range p.Rules {
		if r.Task == task {
			return r, true
		}
	}
	return SlotRule{}, false
}
