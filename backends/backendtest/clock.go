package backendtest

import (
	"sync/atomic"
	"time"
)

// Clock is the suite's clock: the system clock moved forward by Advance.
// It starts at wall time, so the times a backend stores stay near its
// server's own, and it keeps running between steps, so a backend that
// orders by time never sees two calls at one instant.
type Clock struct{ offset atomic.Int64 }

// Now returns the wall time plus every Advance so far.
func (c *Clock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) { c.offset.Add(int64(d)) }
