package redisbackend

// ReconcileBatch is how many state-set members one Tidy checks per queue,
// for tests that show the walk is bounded and still covers a queue.
const ReconcileBatch = reconcileBatch

// RingKey is the key of queue q's fair ring, for the conformance suite's
// check that Tidy forgets idle groups.
func RingKey(b *Backend, q string) string { return b.base(q) + ":ring" }
