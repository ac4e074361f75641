// Package workflow runs tasks as chains, groups, chords and general DAGs,
// durably on every backend, with each step's result passed to the steps
// that depend on it.
//
// A workflow is a graph of steps; each step is a task with its arguments
// (Task), a name unique in the workflow, and the steps it depends on.
// Chain, Group, Chord and DAG build graphs and nest. Handlers keep their
// signatures: a step reads its dependencies' results from its context
// (Result, Previous, All, Results), so a task stays usable outside
// workflows.
//
// The workflow's record (steps, dependencies, failure policy, the state of
// each step) lives in the backend's KVStore under workflow/<id> and changes
// only by compare-and-set. Each step's job has the ID wf-<workflow>-<step>,
// so every enqueue of a step is idempotent and a step that is retried, or
// released twice by two processes, is never a second job. An Engine in
// each worker process hears which step jobs finished (a worker.Observer),
// advances their workflows off the workers' goroutines, and reconciles
// every unfinished workflow from its jobs' states every ReconcileEvery, so
// a process that dies between a step's completion and its advance leaves
// nothing stuck. See docs/workflows.md.
package workflow
