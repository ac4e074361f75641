package worker

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/retry"
)

// BreakerConfig configures one circuit breaker. Zero values mean the stated
// default.
type BreakerConfig struct {
	// ConsecutiveFailures trips the breaker. Default 5.
	ConsecutiveFailures int
	// OpenFor is how long the breaker stays open before it lets a trial
	// job through (half-open). Default 30s.
	OpenFor time.Duration
	// HalfOpenJobs is how many trial jobs run while half-open. Default 1.
	HalfOpenJobs int
}

// BreakerState is a breaker as an operator sees it.
type BreakerState struct {
	Name  string
	State string // "closed", "open" or "half-open"
	// OpenUntil is when an open breaker lets a trial job through.
	OpenUntil           time.Time
	ConsecutiveFailures int
}

// errBreakerOpen is returned in place of running a job behind an open
// breaker; the job is postponed to until without using an attempt.
type errBreakerOpen struct {
	name  string
	until time.Time
}

func (e *errBreakerOpen) Error() string {
	return fmt.Sprintf("circuit breaker %q is open until %s", e.name, e.until.Format(time.RFC3339Nano))
}

type breaker struct {
	cb      *gobreaker.CircuitBreaker[[]byte]
	openFor time.Duration

	mu       sync.Mutex
	openedAt time.Time
}

type breakers struct {
	cfg map[string]BreakerConfig
	mu  sync.Mutex
	m   map[string]*breaker
}

func (bs *breakers) get(name string) *breaker {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if b := bs.m[name]; b != nil {
		return b
	}
	c := bs.cfg[name]
	threshold := uint32(max(c.ConsecutiveFailures, 0))
	if threshold == 0 {
		threshold = 5
	}
	b := &breaker{openFor: c.OpenFor}
	if b.openFor <= 0 {
		b.openFor = 30 * time.Second
	}
	b.cb = gobreaker.NewCircuitBreaker[[]byte](gobreaker.Settings{
		Name:        name,
		MaxRequests: uint32(max(c.HalfOpenJobs, 1)),
		Timeout:     b.openFor,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= threshold },
		// Only the downstream's failures count: bad input, snoozes and
		// cancellations say nothing about its health.
		IsExcluded: func(err error) bool {
			_, snoozed := retry.SnoozeDelay(err)
			return snoozed || retry.IsPermanent(err) || errors.Is(err, job.ErrMalformedPayload) || errors.Is(err, context.Canceled)
		},
		OnStateChange: func(_ string, _, to gobreaker.State) {
			if to == gobreaker.StateOpen {
				b.mu.Lock()
				b.openedAt = time.Now()
				b.mu.Unlock()
			}
		},
	})
	if bs.m == nil {
		bs.m = map[string]*breaker{}
	}
	bs.m[name] = b
	return b
}

// openUntil is when an open breaker will let a trial through; for a
// half-open breaker with its trials taken, a short while from now.
func (b *breaker) openUntil() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	if until := b.openedAt.Add(b.openFor); until.After(time.Now()) {
		return until
	}
	return time.Now().Add(min(b.openFor, time.Second))
}

// execute runs fn through the breaker, turning a refusal into errBreakerOpen.
func (b *breaker) execute(fn func() ([]byte, error)) ([]byte, error) {
	res, err := b.cb.Execute(fn)
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		return nil, &errBreakerOpen{name: b.cb.Name(), until: b.openUntil()}
	}
	return res, err
}

func (bs *breakers) isOpen(name string) bool {
	bs.mu.Lock()
	b := bs.m[name]
	bs.mu.Unlock()
	return b != nil && b.cb.State() == gobreaker.StateOpen
}

func (bs *breakers) states() []BreakerState {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	out := make([]BreakerState, 0, len(bs.m))
	for name, b := range bs.m {
		st := BreakerState{Name: name, State: b.cb.State().String(), ConsecutiveFailures: int(b.cb.Counts().ConsecutiveFailures)}
		if b.cb.State() == gobreaker.StateOpen {
			st.OpenUntil = b.openUntil()
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
