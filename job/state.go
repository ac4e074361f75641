package job

import "fmt"

// State is where a job is in its life. The zero value is not a valid state.
type State string

// The job states. A job is unfinished while it is Pending, Scheduled,
// Retrying or Running; Done, Dead and Cancelled are final until an operator
// replays or deletes it.
const (
	// Pending jobs are due and wait for a worker.
	Pending State = "pending"
	// Scheduled jobs wait for their run-at time (a delay, or a snooze).
	Scheduled State = "scheduled"
	// Running jobs are leased to a worker until the lease expires.
	Running State = "running"
	// Retrying jobs failed an attempt and wait for their retry-at time.
	Retrying State = "retrying"
	// Done jobs completed; their result, if any, is kept.
	Done State = "done"
	// Dead jobs are dead letters: retries exhausted, a permanent error,
	// a poison message or a payload no worker can run. Replay revives them.
	Dead State = "dead"
	// Cancelled jobs were cancelled before or while they ran.
	Cancelled State = "cancelled"
)

// states is every state in display order.
var states = [...]State{Pending, Scheduled, Running, Retrying, Done, Dead, Cancelled}

// States returns every state in display order, in a slice of the caller's
// own (a variable could be changed by any importer, for all of them).
func States() []State { return append([]State(nil), states[:]...) }

// Finished reports whether s is final: the job no longer counts towards its
// queue's depth and no worker will run it again unless it is replayed.
func (s State) Finished() bool {
	return s == Done || s == Dead || s == Cancelled
}

// Waiting reports whether a job in state s waits to be reserved once its
// run-at time has come.
func (s State) Waiting() bool {
	return s == Pending || s == Scheduled || s == Retrying
}

// Valid reports whether s is one of the defined states.
func (s State) Valid() bool {
	for _, v := range states {
		if s == v {
			return true
		}
	}
	return false
}

// ParseState returns the state named by s.
func ParseState(s string) (State, error) {
	st := State(s)
	if !st.Valid() {
		return "", fmt.Errorf("%w: unknown job state %q", ErrInvalid, s)
	}
	return st, nil
}
