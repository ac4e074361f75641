package sqlitebackend

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/internal/record"
	"github.com/conveyorhq/conveyor/job"
)

// insertColumns are the columns an enqueue writes, in the order of
// insertArgs.
const insertColumns = `(id, queue, task, payload, headers, priority, state, run_at, created_at, max_deliveries, timeout_us, retry_policy, unique_key, unique_until, grp)`

// insertChunk is how many rows one multi-row INSERT writes: 64 rows of 15
// values stay far below SQLite's limit on bound parameters, and are enough
// to spread the statement's fixed cost (database/sql, binding, the VDBE's
// setup) over many rows; a batch's remainder goes one row at a time.
const insertChunk = 64

// insertChunkSQL inserts insertChunk rows, skipping IDs that exist, and
// names the rows it inserted.
var insertChunkSQL = `INSERT INTO conveyor_jobs ` + insertColumns + ` VALUES ` +
	strings.TrimSuffix(strings.Repeat(`(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?), `, insertChunk), ", ") +
	` ON CONFLICT (id) DO NOTHING RETURNING id`

// insertArgs are ins's column values, in the order of insertColumns, and
// the state it is inserted in.
func insertArgs(ins *backends.JobInsert, now time.Time) ([]any, job.State) {
	runAt, state := ins.RunAt, job.Pending
	if runAt.IsZero() {
		runAt = now
	}
	if runAt.After(now) {
		state = job.Scheduled
	}
	return []any{ins.ID, ins.Queue, ins.Task, record.NonNil(ins.Payload), nullString(string(record.Headers(ins.Headers))), ins.Priority,
		string(state), record.Micros(runAt), record.Micros(now), ins.MaxDeliveries, ins.Timeout.Microseconds(), ins.RetryPolicy,
		nullString(ins.UniqueKey), record.Micros(ins.UniqueUntil), ins.Group}, state
}

// chunked tells whether a batch can be inserted insertChunk rows to a
// statement: no unique key, whose holder a later row must see, and no ID
// twice, which one statement would report as inserted for both rows.
func chunked(jobs []*backends.JobInsert) bool {
	if len(jobs) < insertChunk {
		return false
	}
	seen := make(map[string]struct{}, len(jobs))
	for _, ins := range jobs {
		if _, dup := seen[ins.ID]; dup || ins.UniqueKey != "" {
			return false
		}
		seen[ins.ID] = struct{}{}
	}
	return true
}

// insertChunks inserts the first len(jobs)/insertChunk*insertChunk jobs,
// insertChunk to a statement, and fills their results; it returns how many
// it took. An ID that exists is a duplicate, answered with its state.
func insertChunks(ctx context.Context, tx *sql.Tx, stmts statements, jobs []*backends.JobInsert, res []backends.EnqueueResult, now time.Time) (int, error) {
	stmt, err := stmts(insertChunkSQL)
	if err != nil {
		return 0, err
	}
	n := len(jobs) / insertChunk * insertChunk
	args := make([]any, 0, 15*insertChunk)
	states := make([]job.State, insertChunk)
	for start := 0; start < n; start += insertChunk {
		args = args[:0]
		for i, ins := range jobs[start : start+insertChunk] {
			a, st := insertArgs(ins, now)
			args = append(args, a...)
			states[i] = st
		}
		rows, err := stmt.QueryContext(ctx, args...)
		if err != nil {
			return 0, err
		}
		inserted := make(map[string]bool, insertChunk)
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return 0, err
			}
			inserted[id] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return 0, err
		}
		for i, ins := range jobs[start : start+insertChunk] {
			if inserted[ins.ID] {
				res[start+i] = backends.EnqueueResult{ID: ins.ID, State: states[i]}
				continue
			}
			st, err := stateOf(ctx, tx, ins.ID)
			if err != nil {
				return 0, err
			}
			res[start+i] = backends.EnqueueResult{ID: ins.ID, State: st, Duplicate: true}
		}
	}
	return n, nil
}

// stateOf reads job id's state.
func stateOf(ctx context.Context, tx *sql.Tx, id string) (job.State, error) {
	var st string
	err := tx.QueryRowContext(ctx, `SELECT state FROM conveyor_jobs WHERE id = ?`, id).Scan(&st)
	return job.State(st), err
}
