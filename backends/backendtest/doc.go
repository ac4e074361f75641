// Package backendtest is the conformance suite every Conveyor backend runs,
// unmodified, from its own test file:
//
//	func TestConformance(t *testing.T) {
//		backendtest.Run(t, func(t *testing.T) backends.Backend { return newBackend(t) })
//	}
//
// The core part checks every contract of backends.Backend; the capability
// part checks each optional interface the backend implements and skips, by
// type assertion, the ones it does not. Subtests run in parallel and each
// uses queues and unique keys of its own, so a factory may hand out fresh
// backends or one shared backend.
package backendtest
