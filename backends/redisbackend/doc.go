// Package redisbackend stores Conveyor jobs in Redis (7.0 or newer, a
// single server or a Redis Cluster), through github.com/redis/go-redis/v9.
//
// Every state change (enqueue with its depth bound and unique keys,
// reserve of a batch with leases, extend, complete, retry, dead letter,
// cancel, pause) is one Lua script, loaded once and called by SHA, that
// touches only the keys of one queue. Those keys share the queue name as
// their hash tag ("conveyor:{emails}:..."), so in a cluster each queue lives
// in one slot and every script stays atomic. A batch enqueue spanning
// several queues is atomic on a single server, and atomic per queue in a
// cluster.
//
// Leases: a reserved job sits in the queue's leased set scored by its
// expiry. Reserve recovers the expired leases of its queue before it picks
// jobs, and a janitor that any client may run (one at a time, under a lock
// key) does the same for every queue and prunes finished jobs past their
// retention; so a job whose worker died is never stuck running.
//
// Whatever else writes to Redis cannot leave a phantom in the counts (and
// so fill a bounded queue for good): a script that meets a job ID whose hash
// is missing takes the ID out of every set and reports it for the log, and
// one whose hash names an unknown state dead-letters it with the reason.
// The janitor also walks the state sets a few hundred members per queue
// per run, from a cursor kept in Redis, checking each against its hash, so
// any drift heals within a pass however large the queue.
//
// Counts come from the per-state sets (ZCARD), never from scanning keys, so
// QueueStats is O(queues) however many jobs there are. Idle workers wake by
// pub/sub within a round trip of an enqueue.
//
// Fair queues (backends.FairReserver): a queue that fair reserves come to
// also keeps its due jobs in a sorted set per group and a ring of its
// groups, scored by when each was last served; only such a queue pays for
// the extra writes. The first fair reserves index its pending jobs, 10,000
// a call and newest first, so no script blocks Redis on a large backlog;
// 10 minutes without a fair reserve and the janitor drops the index again.
// Groups with nothing due that a round of the ring passed by leave it and
// join again as new. BenchmarkReserveFair10: a fair reserve of 10 across 100
// groups costs about 1.5x a plain one.
//
// Unique keys are scoped to a queue. Times come from the clients' clocks,
// which should be kept in sync (NTP) as for any distributed queue.
package redisbackend
