package record

// DebounceKey is where a backend that files a debounce key's job in its
// key-value table (the SQL backends) keeps it: one entry per queue and
// key, holding the job's ID, written in the transaction that inserts the
// job.
func DebounceKey(queue, key string) string { return "conveyor-debounce/" + queue + "/" + key }
