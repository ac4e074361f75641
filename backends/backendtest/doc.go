// Package backendtest is the conformance suite every Conveyor backend runs,
// unmodified, from its own test file:
//
//	func TestConformance(t *testing.T) {
//		backendtest.Suite{New: func(t *testing.T, clock backends.Clock) backends.Backend {
//			return newBackend(t, Config{Clock: clock})
//		}}.Run(t)
//	}
//
// Time is the suite's Clock, which the cases step: a lease expires, a
// retry comes due, a delayed job becomes ready without a sleep. A backend
// whose server keeps some deadlines in wall time sets Suite.WallClock and
// the cases wait instead.
//
// The core part checks every contract of backends.Backend; the capability
// part checks each optional interface the backend implements and skips, by
// type assertion, the ones it does not. Subtests run in parallel, each
// with queues and unique keys of its own and a clock of its own: a factory
// hands out backends that share no housekeeping with another subtest's (a
// schema, a key prefix, a file each), since a janitor on one subtest's
// clock would expire another's leases early.
package backendtest
