package backends

import "time"

// Clock tells a backend the time: when a job is due, when a lease has
// expired, when a record was made. Every backend's Config takes one so
// that tests step time instead of sleeping through leases and delays; a
// backend whose deadlines are kept by its server (AMQP's per-message TTLs)
// uses it for the times it records and says which deadlines keep wall
// time.
type Clock interface{ Now() time.Time }

// SystemClock is the wall clock, every Config's default.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }
