// Package job holds the types shared by every part of Conveyor: the job
// record a backend stores, the states a job moves through, and the sentinel
// errors callers branch on.
//
// It is a leaf package: it imports nothing of Conveyor's, so a backend can
// depend on it (and on package backends) without pulling in the task API or
// the worker. The state machine is drawn in docs/architecture.md.
package job
