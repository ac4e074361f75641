// Package record holds what the backends that store job records by
// themselves (SQLite, PostgreSQL, Redis, and the memory backend) would
// otherwise each write again: how headers and attempt errors are encoded,
// times as Unix integers with zero kept zero, lease tokens, the poison
// reason as a format string for code that runs in the server, and the
// errors that say a lease, a job or a finished state stood in the way.
//
// Only what is the same in every backend lives here; a backend whose
// stored form differs (Redis's attempt-error lines, AMQP's message
// headers) keeps its own.
package record
