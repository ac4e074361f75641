package flow

import (
	"errors"
	"fmt"
	"time"

	"github.com/conveyorhq/conveyor/job"
)

// Headers a job carries its flow-control settings in. Headers rather than
// record fields, so that no backend's storage changes: every backend keeps
// a job's headers.
const (
	// KeyHeader holds queue.EnqueueOptions.Key: the job's key for limits
	// per key (a tenant, an account, a store).
	KeyHeader = "conveyor-flow-key"
	// ExpiresHeader holds the time (RFC 3339, UTC) after which the job
	// must not start.
	ExpiresHeader = "conveyor-expires-at"
)

// ErrExpired is what an expired job is dead-lettered with: "expired: not
// started by <time>".
var ErrExpired = errors.New("expired")

// KeyFunc derives the key a limit counts a job under. An empty key is a
// key like any other: every job that gets it shares one bucket or slot set.
type KeyFunc func(*job.Record) string

// ByJobKey keys a job by queue.EnqueueOptions.Key (KeyHeader).
func ByJobKey(r *job.Record) string { return r.Headers[KeyHeader] }

// RateLimit lets at most Limit jobs start per Per, across every worker,
// with bursts of up to Burst after a quiet spell (a token bucket). Zero
// values mean the stated default.
type RateLimit struct {
	// Name names the bucket, so tasks that share a downstream can share a
	// limit. Default: the task's name (or "queue:<name>" for a queue's).
	Name string
	// Limit is how many jobs start per Per. Required (at least 1).
	Limit int
	// Per is the interval Limit counts over. Default 1s.
	Per time.Duration
	// Burst is the bucket's size: how many may start at once after a
	// quiet spell; in any window of length T at most Burst + Limit*T/Per
	// start. Default Limit.
	Burst int
	// Key splits the limit: one bucket per key, e.g. ByJobKey for a rate
	// per tenant. Default nil: one bucket for every job of the limit.
	Key KeyFunc
}

// ConcurrencyLimit lets at most Limit jobs of one key run at once, across
// every worker. A slot is taken before the handler runs and given back when
// it returns (done, retry, dead letter, cancel, release at shutdown); a
// worker that dies gives it back when the job's lease would have ended, as
// slots expire with the lease and heartbeats renew them. Per job key (Key
// nil or ByJobKey), on a backend that is a backends.SlotReserver, the reserve itself holds the
// limit: a job over it is postponed there, never delivered, and the
// running job is its slot. Zero values mean the stated default.
type ConcurrencyLimit struct {
	// Name names the slot sets, so tasks can share a limit. Default: the
	// task's name.
	Name string
	// Limit is how many jobs of a key run at once. Required (at least 1).
	Limit int
	// Key is what the limit counts per. Default ByJobKey: per
	// queue.EnqueueOptions.Key, jobs without one sharing the empty key.
	// Any other KeyFunc than ByJobKey, the worker's limiter holds the
	// limit, not the reserve.
	Key KeyFunc
	// Backoff is how long a job held back by the limit waits before it
	// is offered again (it uses no attempt and no delivery). Default 1s.
	Backoff time.Duration
}

// Validate checks the limit's fields; the error wraps job.ErrInvalid.
func (r RateLimit) Validate() error {
	if r.Limit < 1 || r.Per < 0 || r.Burst < 0 {
		return fmt.Errorf("%w: rate limit %q: Limit must be at least 1, Per and Burst not negative", job.ErrInvalid, r.Name)
	}
	return nil
}

// Validate checks the limit's fields; the error wraps job.ErrInvalid.
func (c ConcurrencyLimit) Validate() error {
	if c.Limit < 1 || c.Backoff < 0 {
		return fmt.Errorf("%w: concurrency limit %q: Limit must be at least 1, Backoff not negative", job.ErrInvalid, c.Name)
	}
	return nil
}

// withDefaults checks a limit and fills its defaults, name the default Name.
func (r RateLimit) withDefaults(name string) (RateLimit, error) {
	if err := r.Validate(); err != nil {
		return r, err
	}
	if r.Name == "" {
		r.Name = name
	}
	if r.Per == 0 {
		r.Per = time.Second
	}
	return r, nil
}

func (c ConcurrencyLimit) withDefaults(name string) (ConcurrencyLimit, error) {
	if err := c.Validate(); err != nil {
		return c, err
	}
	if c.Name == "" {
		c.Name = name
	}
	if c.Key == nil {
		c.Key = ByJobKey
	}
	if c.Backoff == 0 {
		c.Backoff = time.Second
	}
	return c, nil
}

// ExpiresAt returns the time after which r must not start, if it has one.
// A header that does not parse is no expiry: the job runs rather than
// being dropped on a typo of another producer's.
func ExpiresAt(r *job.Record) (time.Time, bool) {
	v, ok := r.Headers[ExpiresHeader]
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	return t, err == nil
}

// FormatExpiry is the ExpiresHeader value for t.
func FormatExpiry(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// Expired returns an error wrapping ErrExpired when r has an expiry that
// has passed at now, else nil.
func Expired(r *job.Record, now time.Time) error {
	if t, ok := ExpiresAt(r); ok && now.After(t) {
		return fmt.Errorf("%w: not started by %s", ErrExpired, FormatExpiry(t))
	}
	return nil
}
