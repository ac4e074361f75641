// Package scheduler enqueues tasks on cron schedules, durably and exactly
// once per tick across any number of processes.
//
// Schedules are parsed by github.com/robfig/cron/v3: the standard five
// fields, an optional leading seconds field, descriptors such as "@hourly"
// and "@every 5m", and a time zone prefix such as
// "CRON_TZ=Europe/Berlin 0 9 * * *". An invalid schedule is an error at
// registration.
//
// Every process may run a Scheduler. Each round, one of them, the leader,
// holds a lease in the backend's KVStore and fires what is due; the others
// wait and take over within one lease time when it dies. Each tick is
// enqueued with a unique key naming the entry and the tick, so even two
// leaders during a failover cannot enqueue a tick twice.
//
// Each entry's last and next fire times live in the backend, so schedules
// survive restarts: a daily entry fires once a day even when processes
// restart every hour. Ticks missed while no scheduler ran are handled by
// the entry's Misfire policy: skip them, run once for all of them, or catch
// up on each (bounded by CatchUpLimit).
//
// Daylight saving time follows the schedule's zone: when clocks fall back,
// a time of day that happens twice fires once; when they spring forward, a
// time of day that does not exist that day does not fire that day (as
// robfig/cron computes it, and as asynq behaves).
package scheduler
