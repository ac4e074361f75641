// Package sqlitebackend is Conveyor's embedded default backend: every job in
// one SQLite file, durable across restarts, no server to run. It uses the
// pure-Go driver modernc.org/sqlite, so builds need no cgo.
//
// A web app process and separate worker processes on one host may share the
// file: the database runs in WAL mode (readers never block the writer),
// every write transaction starts with BEGIN IMMEDIATE (so two processes never
// deadlock upgrading a read lock), waits up to BusyTimeout for the lock, and
// is retried when SQLite still reports the database busy. Within a process
// all writes share one connection, so they queue in Go instead of spinning
// on the file lock.
//
// Checkpoints (copying the WAL back into the database file) run on a timer
// in the background, not inside a commit, so no write stalls behind one.
// Idle workers learn that nothing is due from a read connection, without
// taking the write lock.
//
// Listeners in the same process are woken at once; other processes' writes
// are noticed by polling PRAGMA data_version, a counter read that costs no
// I/O, every NotifyPoll.
//
// Rows are data another program may have written. The jobs table refuses
// an unknown state and an INTEGER column holding anything else (CHECK
// constraints; SQLite cannot add them to a table created before them), and
// the janitor (Tidy, every JanitorEvery, which also prunes) dead-letters rows
// that slip through anyway, with a reason naming each bad column and its
// value, so no job waits forever in a state or at a time no query finds.
// GetJob and ListJobs return such a row as far as it decodes.
//
// It implements every optional capability, including transactional enqueue
// into the same file (backends.TxEnqueuer) through DB.
package sqlitebackend
