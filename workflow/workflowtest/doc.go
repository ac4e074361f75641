// Package workflowtest is the workflow engine's suite over a real
// backend, run by every backend's tests (as schedulertest is): DAG order
// and results passed, all-or-nothing enqueue, failure policies, cancel,
// replay, a crash between a step's completion and its advance healed by
// the reconciler, nested chains of groups, and Wait with started workers.
package workflowtest
