package redisbackend

// ReconcileBatch is how many state-set members one Tidy checks per queue,
// for tests that show the walk is bounded and still covers a queue.
const ReconcileBatch = reconcileBatch
