// Package schedulertest is the scheduler's suite over a backend: the cases
// that hold only if the backend's KV store keeps its promises (one tick
// fired once by many schedulers, leader failover, durable next-fire
// times). Every backend's tests run it, each from its own module, as they
// run backendtest's conformance suite.
package schedulertest
