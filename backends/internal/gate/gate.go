// Package gate is the check every backend method makes before it does any
// work: the backend is still open and the caller still wants the answer.
// Without it a call after Close reaches a closed pool (or hangs on a
// reconnect loop), and a call with a cancelled context may still write.
package gate

import (
	"context"
	"fmt"
	"sync"

	"github.com/conveyorhq/conveyor/job"
)

// Gate is open until Close. The zero value is not usable; use New.
type Gate struct {
	name    string // the backend's package, prefixed to errors
	once    sync.Once
	closing chan struct{}
}

// New returns an open gate; name prefixes its errors ("redisbackend").
func New(name string) *Gate { return &Gate{name: name, closing: make(chan struct{})} }

// Close closes the gate and reports whether this call did; later calls
// return false, so a backend's Close releases its resources once.
func (g *Gate) Close() (first bool) {
	g.once.Do(func() {
		close(g.closing)
		first = true
	})
	return first
}

// Closing is closed once the gate is; background loops end on it.
func (g *Gate) Closing() <-chan struct{} { return g.closing }

// Check returns an error wrapping job.ErrClosed once the gate is closed,
// else ctx's error if it has ended, else nil.
func (g *Gate) Check(ctx context.Context) error {
	select {
	case <-g.closing:
		return fmt.Errorf("%s: %w", g.name, job.ErrClosed)
	default:
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", g.name, err)
	}
	return nil
}
