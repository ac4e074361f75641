// Package backends is the contract between Conveyor and a storage or broker
// backend, in the spirit of database/sql/driver: one small core interface,
// Backend, that every implementation provides, plus optional capability
// interfaces that callers discover with a type assertion and that have a
// documented fallback when absent.
//
// Implementations import this package and package job only — never queue or
// worker — so the task API and the worker can change without touching them.
// Every method takes a parameter struct, so fields can be added without
// breaking implementations or callers.
//
// Every implementation runs the shared conformance suite in
// backends/backendtest from its own test file, unmodified.
package backends
