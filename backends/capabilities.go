package backends

import (
	"context"

	"github.com/conveyorhq/conveyor/job"
)

// Inspector reads jobs and queue statistics.
//
// Fallback when absent: status and result by ID, Wait, the CLI's inspect
// command and the dashboard return job.ErrUnsupported.
type Inspector interface {
	// GetJob returns the job with that ID or an error wrapping job.ErrNotFound.
	GetJob(ctx context.Context, p GetJobParams) (*job.Record, error)
	// ListJobs returns jobs in one queue (or all queues) and state, oldest
	// first, a page at a time. Across all queues each queue's jobs come
	// oldest first; how the queues interleave is the backend's choice.
	ListJobs(ctx context.Context, p ListJobsParams) (*JobPage, error)
	// QueueStats returns, for every queue that has jobs or was paused, the
	// number of jobs in each state. Cheap enough to call every few seconds.
	QueueStats(ctx context.Context, p QueueStatsParams) ([]QueueStats, error)
}

// Admin changes jobs on an operator's behalf.
//
// Fallback when absent: replay, delete and purge return job.ErrUnsupported.
type Admin interface {
	// ReplayJobs moves dead (or cancelled) jobs back to Pending with a fresh
	// delivery count, keeping their attempt history. Replaced payloads, if
	// given, overwrite the stored ones (an operator's edit).
	ReplayJobs(ctx context.Context, p ReplayJobsParams) (int, error)
	// DeleteJobs deletes finished or waiting jobs by ID; running jobs are
	// left alone (cancel them first). It returns how many were deleted.
	DeleteJobs(ctx context.Context, p DeleteJobsParams) (int, error)
	// PurgeQueue deletes every job of one queue in the given states and
	// returns how many. Running jobs are never purged.
	PurgeQueue(ctx context.Context, p PurgeQueueParams) (int, error)
}

// Pauser pauses and resumes queues cluster-wide: Reserve on a paused queue
// returns nothing, running jobs carry on.
//
// Fallback when absent: pausing returns job.ErrUnsupported; an operator stops
// the workers of that queue instead.
type Pauser interface {
	PauseQueue(ctx context.Context, p PauseQueueParams) error
	ResumeQueue(ctx context.Context, p PauseQueueParams) error
}

// Notifier pushes hints that something changed, so idle workers and waiters
// wake within milliseconds instead of polling.
//
// Events are hints: they may be coalesced or dropped when a listener is slow,
// so a listener re-checks the backend after each one and still polls at a
// slow interval. Fallback when absent: workers poll every
// worker.Config.PollInterval and Wait polls with backoff.
type Notifier interface {
	// Listen delivers events until ctx ends, then closes the channel.
	Listen(ctx context.Context, p ListenParams) (<-chan Event, error)
}

// TxEnqueuer enqueues inside the caller's own database transaction, so a job
// exists if and only if the caller's transaction commits. Only backends that
// store jobs in that same database implement it.
//
// tx is the caller's transaction in the form the backend documents: a
// *sql.Tx for SQLite; a pgx.Tx or a *sql.Tx (through pgx's stdlib driver)
// for PostgreSQL. Another type yields an error wrapping job.ErrInvalid.
//
// Fallback when absent: EnqueueTx returns job.ErrUnsupported; enqueue after
// commit and make the handler idempotent.
type TxEnqueuer interface {
	EnqueueTx(ctx context.Context, tx any, p EnqueueParams) ([]EnqueueResult, error)
}

// BatchCompleter completes many leased jobs in one round trip. Workers
// gather the completions of jobs that finish close together and flush them
// at once (group commit), which is where a backend that pays per write
// transaction gains the most.
//
// Fallback when absent: one Complete per job.
type BatchCompleter interface {
	// CompleteMany applies each completion as Complete would. The result
	// has one entry per job, in order: nil, or an error wrapping
	// job.ErrLeaseLost for a job the caller no longer holds. A non-nil
	// error means none was applied.
	CompleteMany(ctx context.Context, p CompleteManyParams) ([]error, error)
}

// FairReserver reserves a queue's jobs round-robin across their groups
// (JobInsert.Group), so a tenant that enqueued 100,000 jobs does not delay
// one that enqueued 10.
//
// ReserveFair leases what Reserve would, in another order: it takes one
// due job from each group that has one, the group served least recently
// first (groups never served first, by name), then a second from each,
// and so on up to p.Limit. Within a group the order is Reserve's: highest
// Priority, oldest RunAt, enqueue order. A group served goes to the back
// of the ring, also across calls and across processes; a group with no due
// job (all delayed, retrying later or running) keeps its place and joins
// the rounds once one is due. A backend may forget a group that has had no
// due job for a whole round of the ring, so that idle groups cost nothing;
// it joins again as a group never served. Priority does not cross groups.
//
// Weights (ReserveParams.Weights) make it weighted round-robin: a group of
// weight w takes w jobs in each of its turns before it goes to the back,
// within a call and across calls (the backend keeps how far into its turn
// a group is, with its place), so a tenant of weight 3 starts three jobs
// for each one of a tenant of weight 1 while both have jobs due. A call
// orders its jobs by the round each falls in, then by the ring, then by
// the group's own order; with every weight 1 that is the plain rounds
// above.
//
// Fallback when absent: a worker given a fair queue (worker.QueueConfig.Fair)
// refuses to start with job.ErrUnsupported rather than serve it unfairly.
type FairReserver interface {
	ReserveFair(ctx context.Context, p ReserveParams) ([]*job.Record, error)
}

// ExhaustiveReserver is a Backend whose reserves fill their limit while
// the queue has jobs due: Reserve, and ReserveSlots when not Fair, lease
// plus hold back (ReserveSlotsResult.HeldBack) fewer than p.Limit jobs only
// when no other job of the queue was due that they could take, jobs they
// dead-lettered on the way (poison, corrupt records) not counted. Rows
// another reserve holds at that moment (PostgreSQL's SKIP LOCKED) are that
// reserve's. A worker takes such a short reserve as an empty one: it skips
// the queue until a notification names it or PollInterval passes, where
// it would pay one more reserve to find the queue empty. For a worker of
// many small queues that was a reserve a queue each time one drained, the
// bench's round trips per job at 1,000 queues (docs/benchmarks.md).
//
// Fair reserves are not covered: a turn may end a call early.
//
// Fallback when absent (a broker hands out what its consumer holds, not
// all that is due): only an empty reserve marks a queue empty.
type ExhaustiveReserver interface {
	Backend
	// ReservesExhaustively reports whether the guarantee holds; a
	// wrapper of a backend answers for the one it wraps.
	ReservesExhaustively() bool
}

// Exhaustive reports whether b is an ExhaustiveReserver that says so.
func Exhaustive(b Backend) bool {
	e, ok := b.(ExhaustiveReserver)
	return ok && e.ReservesExhaustively()
}

// CompleteManyParams is the input of BatchCompleter.CompleteMany.
type CompleteManyParams struct {
	Jobs []CompleteParams
}

// GetJobParams is the input of Inspector.GetJob.
type GetJobParams struct {
	ID string
}

// ListJobsParams is the input of Inspector.ListJobs.
type ListJobsParams struct {
	Queue  string    // empty: all queues
	State  job.State // required
	Limit  int       // 0 means 100
	Cursor string    // from the previous page's Next; empty for the first page
}

// JobPage is one page of ListJobs.
type JobPage struct {
	Jobs []*job.Record
	Next string // empty on the last page
}

// QueueStatsParams is the input of Inspector.QueueStats.
type QueueStatsParams struct {
	Queue string // empty: all queues
}

// QueueStats counts the jobs of one queue by state.
type QueueStats struct {
	Queue  string
	Paused bool
	Counts map[job.State]int
}

// Depth is the number of unfinished jobs, the figure MaxDepth bounds.
func (s QueueStats) Depth() int {
	n := 0
	for st, c := range s.Counts {
		if !st.Finished() {
			n += c
		}
	}
	return n
}

// ReplayJobsParams is the input of Admin.ReplayJobs. Either IDs or Queue
// (every dead job of that queue) is set.
type ReplayJobsParams struct {
	IDs      []string
	Queue    string
	Payloads map[string][]byte // optional replacement payload per job ID
}

// DeleteJobsParams is the input of Admin.DeleteJobs.
type DeleteJobsParams struct {
	IDs []string
}

// PurgeQueueParams is the input of Admin.PurgeQueue.
type PurgeQueueParams struct {
	Queue  string
	States []job.State // required; Running is ignored
}

// PauseQueueParams is the input of Pauser.PauseQueue and ResumeQueue.
type PauseQueueParams struct {
	Queue string
}

// ListenParams is the input of Notifier.Listen.
type ListenParams struct {
	Queues []string // empty: every queue
	// Kinds, when set, are the kinds of event the listener wants (Changed
	// always comes): a worker that only fetches need not be woken for every
	// finished job. A filter to save work, not a promise: listeners still
	// look at each event's kind.
	Kinds []EventKind
}

// EventKind says what an Event announces.
type EventKind int

const (
	// JobsAvailable: jobs became due in Queue (an enqueue, a retry, a
	// released lease, a resume).
	JobsAvailable EventKind = iota + 1
	// JobFinished: the job JobID reached a final state.
	JobFinished
	// Changed: something changed that the backend cannot detail (another
	// process wrote). It reaches every listener; re-check everything.
	Changed
)

// Event is a hint from a Notifier.
type Event struct {
	Kind  EventKind
	Queue string
	JobID string
}

// CompleteOne completes one job through bc, for backends whose Complete is
// a batch of one.
func CompleteOne(ctx context.Context, bc BatchCompleter, p CompleteParams) error {
	errs, err := bc.CompleteMany(ctx, CompleteManyParams{Jobs: []CompleteParams{p}})
	if err != nil {
		return err
	}
	return errs[0]
}
