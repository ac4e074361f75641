package sqlitebackend

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/internal/record"
	"github.com/conveyorhq/conveyor/job"
)

const (
	waitingStates    = `('pending', 'scheduled', 'retrying')`
	unfinishedStates = `('pending', 'scheduled', 'running', 'retrying')`
	// appendError appends a JSON attempt error to the errors column.
	appendError = `errors = json_insert(coalesce(errors, '[]'), '$[#]', json(?))`
)

// The statements on the hot path, prepared once at Open on the write
// connection (see prepared): parsing them anew per call cost an eighth of
// a burn-down's CPU.
const (
	sqlPaused     = `SELECT paused FROM conveyor_queues WHERE name = ?`
	sqlReapLeases = `UPDATE conveyor_jobs SET state = 'pending', lease_token = NULL
		WHERE queue = ? AND state = 'running' AND lease_expires_at <= ?`
	sqlCandidates = `SELECT id, deliveries, max_deliveries FROM conveyor_jobs
		WHERE queue = ? AND state IN ` + waitingStates + ` AND run_at <= ?
		ORDER BY priority DESC, run_at, seq LIMIT ?`
	sqlExtend = `UPDATE conveyor_jobs SET lease_expires_at = ?
		WHERE id = ? AND state = 'running' AND lease_token = ? AND lease_expires_at > ? RETURNING cancel_requested`
	sqlCompleteOne = `UPDATE conveyor_jobs SET state = 'done', result = ?, finished_at = ?, lease_token = NULL
		WHERE id = ? AND state = 'running' AND lease_token = ? RETURNING queue`
	// The IDs come as one JSON array, so that one statement serves any
	// number of them: a list of placeholders is a new statement to parse
	// for each length.
	sqlLease = `UPDATE conveyor_jobs SET state = 'running', deliveries = deliveries + 1,
		started_at = ?, lease_token = ?, lease_expires_at = ?, cancel_requested = 0, worker = ?
		WHERE id IN (SELECT value FROM json_each(?)) RETURNING ` + columns
	sqlInsertOne = `INSERT INTO conveyor_jobs ` + insertColumns + `
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`
	sqlRegisterGroup = `INSERT INTO conveyor_fair_groups (queue, grp) VALUES (?, ?) ON CONFLICT DO NOTHING`
	// The KV store's (kv.go): a workflow's state is read and written
	// through it, key by key.
	sqlKVVersion = `SELECT version, expires_at FROM conveyor_kv WHERE key = ?`
	sqlKVPut     = `INSERT INTO conveyor_kv (key, value, version, expires_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = excluded.version, expires_at = excluded.expires_at`
)

// The statements on the read pool's hot path, prepared at Open on ro
// (roStmts), where database/sql prepares each again once per connection.
const (
	sqlAnyDue = `SELECT
		EXISTS (SELECT 1 FROM conveyor_jobs WHERE queue = ? AND state IN ` + waitingStates + ` AND run_at <= ?)
		OR EXISTS (SELECT 1 FROM conveyor_jobs WHERE queue = ? AND state = 'running' AND lease_expires_at <= ?)`
	sqlGetKV = `SELECT value, version, expires_at FROM conveyor_kv WHERE key = ? AND ` + liveClause
	// The keys as one JSON array, as sqlLease's IDs.
	sqlGetKVMany = `SELECT key, value, version, expires_at FROM conveyor_kv
		WHERE key IN (SELECT value FROM json_each(?)) AND ` + liveClause
)

var (
	hotStatements = []string{sqlPaused, sqlReapLeases, sqlCandidates, sqlLease, sqlExtend, sqlCompleteOne, sqlInsertOne,
		insertChunkSQL, sqlRegisterGroup, sqlKVVersion, sqlKVPut}
	readStatements = []string{sqlAnyDue, sqlGetKV, sqlGetKVMany}
)

// Enqueue implements backends.Backend.
func (b *Backend) Enqueue(ctx context.Context, p backends.EnqueueParams) ([]backends.EnqueueResult, error) {
	if res, err := b.gate.Enqueue(ctx, p); res != nil || err != nil {
		return res, err
	}
	var res []backends.EnqueueResult
	err := b.write(ctx, func(tx *sql.Tx) error {
		var err error
		res, err = enqueue(ctx, tx, b.statements(ctx, tx), p, b.cfg.Clock.Now())
		return err
	})
	if err != nil {
		return nil, err
	}
	b.announce(p)
	return res, nil
}

// EnqueueTx implements backends.TxEnqueuer. tx must be a *sql.Tx on this
// database file; see DB and OpenDB.
func (b *Backend) EnqueueTx(ctx context.Context, tx any, p backends.EnqueueParams) ([]backends.EnqueueResult, error) {
	if res, err := b.gate.Enqueue(ctx, p); res != nil || err != nil {
		return res, err
	}
	stx, ok := tx.(*sql.Tx)
	if !ok {
		return nil, fmt.Errorf("%w: sqlitebackend.EnqueueTx needs a *sql.Tx, got %T", job.ErrInvalid, tx)
	}
	// Listeners in this process learn of the jobs through data_version
	// once the caller commits; announcing now would be too early.
	return enqueue(ctx, stx, prepareIn(ctx, stx), p, b.cfg.Clock.Now())
}

func (b *Backend) announce(p backends.EnqueueParams) {
	seen := map[string]bool{}
	for _, ins := range p.Jobs {
		if !seen[ins.Queue] {
			seen[ins.Queue] = true
			b.hub.Publish(backends.Event{Kind: backends.JobsAvailable, Queue: ins.Queue})
		}
	}
}

// enqueue inserts p's jobs in tx, with the INSERT statements from stmt:
// those prepared at Open when tx is the Backend's own, else prepared in tx.
func enqueue(ctx context.Context, tx *sql.Tx, stmt statements, p backends.EnqueueParams, now time.Time) ([]backends.EnqueueResult, error) {
	res := make([]backends.EnqueueResult, len(p.Jobs))
	// Check bounds first: nothing is inserted if any queue would overflow.
	// Duplicates are counted as additions here, which can only refuse a
	// batch that would have fit, never admit one that does not.
	for q, check := range p.DepthNeeded() {
		if check.MaxDepth == 0 {
			continue
		}
		var depth int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM conveyor_jobs WHERE queue = ? AND state IN `+unfinishedStates, q).Scan(&depth); err != nil {
			return nil, err
		}
		if depth+check.Adding > check.MaxDepth {
			return nil, backends.QueueFullError(q, depth, check.Adding, check.MaxDepth)
		}
	}
	if err := registerGroups(ctx, stmt, groupsOf(p.Jobs)); err != nil {
		return nil, err
	}
	done := 0
	if chunked(p.Jobs) {
		n, err := insertChunks(ctx, tx, stmt, p.Jobs, res, now)
		if err != nil {
			return nil, err
		}
		done = n
	}
	if done == len(p.Jobs) {
		return res, nil
	}
	insert, err := stmt(sqlInsertOne)
	if err != nil {
		return nil, err
	}
	for i := done; i < len(p.Jobs); i++ {
		ins := p.Jobs[i]
		if ins.UniqueKey != "" {
			id, state, held, err := heldKey(ctx, tx, ins.UniqueKey, now)
			if err != nil {
				return nil, err
			}
			if held {
				res[i] = backends.EnqueueResult{ID: id, State: state, Duplicate: true}
				continue
			}
		}
		args, state := insertArgs(ins, now)
		r, err := insert.ExecContext(ctx, args...)
		if err != nil {
			return nil, err
		}
		if n, _ := r.RowsAffected(); n == 0 { // the ID exists: a re-sent insert
			st, err := stateOf(ctx, tx, ins.ID)
			if err != nil {
				return nil, err
			}
			res[i] = backends.EnqueueResult{ID: ins.ID, State: st, Duplicate: true}
			continue
		}
		res[i] = backends.EnqueueResult{ID: ins.ID, State: state}
	}
	return res, nil
}

// heldKey finds the job holding a unique key, if one does.
func heldKey(ctx context.Context, tx *sql.Tx, key string, now time.Time) (string, job.State, bool, error) {
	var id, state string
	err := tx.QueryRowContext(ctx, `SELECT id, state FROM conveyor_jobs WHERE unique_key = ?
		AND ((unique_until = 0 AND state IN `+unfinishedStates+`) OR unique_until > ?)
		ORDER BY seq DESC LIMIT 1`, key, record.Micros(now)).Scan(&id, &state)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", false, nil
	}
	return id, job.State(state), err == nil, err
}

// anyDue reports whether queue may have a due job or an expired lease.
func (b *Backend) anyDue(ctx context.Context, queue string) (bool, error) {
	now := record.Micros(b.cfg.Clock.Now())
	var due bool
	err := b.roStmts[sqlAnyDue].QueryRowContext(ctx, queue, now, queue, now).Scan(&due)
	return due, err
}

// Extend implements backends.Backend.
func (b *Backend) Extend(ctx context.Context, p backends.ExtendParams) ([]backends.ExtendResult, error) {
	if err := b.gate.Check(ctx); err != nil {
		return nil, err
	}
	out := make([]backends.ExtendResult, len(p.Leases))
	err := b.write(ctx, func(tx *sql.Tx) error {
		now := b.cfg.Clock.Now()
		exp := now.Add(p.Lease)
		stmt := b.prepared(ctx, tx, sqlExtend)
		for i, l := range p.Leases {
			out[i] = backends.ExtendResult{JobID: l.JobID}
			var cancelReq bool
			err := stmt.QueryRowContext(ctx, record.Micros(exp), l.JobID, l.Token, record.Micros(now)).Scan(&cancelReq)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				out[i].Lost = true
			case err != nil:
				return err
			default:
				out[i].ExpiresAt, out[i].CancelRequested = exp, cancelReq
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// finishLeased runs one update on the job l holds, failing with
// job.ErrLeaseLost when it no longer does.
func (b *Backend) finishLeased(ctx context.Context, l job.Lease, set string, args ...any) (string, error) {
	var queue string
	err := b.write(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `UPDATE conveyor_jobs SET `+set+`
			WHERE id = ? AND state = 'running' AND lease_token = ? RETURNING queue`,
			append(args, l.JobID, l.Token)...).Scan(&queue)
		if errors.Is(err, sql.ErrNoRows) {
			return record.LeaseLost(l)
		}
		return err
	})
	return queue, err
}

// Complete implements backends.Backend.
func (b *Backend) Complete(ctx context.Context, p backends.CompleteParams) error {
	return backends.CompleteOne(ctx, b, p) // CompleteMany checks the gate
}

// CompleteMany implements backends.BatchCompleter: one transaction, so one
// commit, for the whole batch.
func (b *Backend) CompleteMany(ctx context.Context, p backends.CompleteManyParams) ([]error, error) {
	if err := b.gate.Check(ctx); err != nil {
		return nil, err
	}
	out := make([]error, len(p.Jobs))
	var done []backends.Event
	err := b.write(ctx, func(tx *sql.Tx) error {
		done = done[:0]
		stmt := b.prepared(ctx, tx, sqlCompleteOne)
		now := record.Micros(b.cfg.Clock.Now())
		for i, c := range p.Jobs {
			var q string
			err := stmt.QueryRowContext(ctx, c.Result, now, c.Lease.JobID, c.Lease.Token).Scan(&q)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				out[i] = record.LeaseLost(c.Lease)
			case err != nil:
				return err
			default:
				out[i] = nil
				done = append(done, backends.Event{Kind: backends.JobFinished, Queue: q, JobID: c.Lease.JobID})
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, ev := range done {
		b.hub.Publish(ev)
	}
	return out, nil
}

// Retry implements backends.Backend.
func (b *Backend) Retry(ctx context.Context, p backends.RetryParams) error {
	if err := b.gate.Check(ctx); err != nil {
		return err
	}
	now := b.cfg.Clock.Now()
	state := job.Retrying
	set := `state = ?, run_at = ?, lease_token = NULL, `
	args := []any{}
	if p.Error == nil {
		state = job.Scheduled
		set += `deliveries = deliveries - 1`
	} else {
		set += appendError
		args = append(args, record.AttemptError(*p.Error))
	}
	if !p.At.After(now) {
		state = job.Pending
	}
	q, err := b.finishLeased(ctx, p.Lease, set, slices.Insert(args, 0, any(string(state)), any(record.Micros(p.At)))...)
	if err == nil && state == job.Pending {
		b.hub.Publish(backends.Event{Kind: backends.JobsAvailable, Queue: q})
	}
	return err
}

// DeadLetter implements backends.Backend.
func (b *Backend) DeadLetter(ctx context.Context, p backends.DeadLetterParams) error {
	if err := b.gate.Check(ctx); err != nil {
		return err
	}
	q, err := b.finishLeased(ctx, p.Lease, `state = 'dead', finished_at = ?, lease_token = NULL, `+appendError,
		record.Micros(b.cfg.Clock.Now()), record.AttemptError(p.Error))
	if err == nil {
		b.hub.Publish(backends.Event{Kind: backends.JobFinished, Queue: q, JobID: p.Lease.JobID})
	}
	return err
}

// Cancel implements backends.Backend.
func (b *Backend) Cancel(ctx context.Context, p backends.CancelParams) (job.State, error) {
	if err := b.gate.Check(ctx); err != nil {
		return "", err
	}
	var result job.State
	var queue string
	err := b.write(ctx, func(tx *sql.Tx) error {
		var state string
		var token sql.NullString
		err := tx.QueryRowContext(ctx, `SELECT state, queue, lease_token FROM conveyor_jobs WHERE id = ?`, p.JobID).Scan(&state, &queue, &token)
		if errors.Is(err, sql.ErrNoRows) {
			return record.NotFound(p.JobID)
		}
		if err != nil {
			return err
		}
		result = job.State(state)
		switch {
		case result.Finished():
			return record.Finished(p.JobID, result)
		case result == job.Running && p.Lease == nil:
			_, err := tx.ExecContext(ctx, `UPDATE conveyor_jobs SET cancel_requested = 1 WHERE id = ?`, p.JobID)
			return err
		case result == job.Running && token.String != p.Lease.Token:
			return record.LeaseLost(*p.Lease)
		}
		result = job.Cancelled
		_, err = tx.ExecContext(ctx, `UPDATE conveyor_jobs SET state = 'cancelled', finished_at = ?, lease_token = NULL WHERE id = ?`,
			record.Micros(b.cfg.Clock.Now()), p.JobID)
		return err
	})
	if err == nil && result == job.Cancelled {
		b.hub.Publish(backends.Event{Kind: backends.JobFinished, Queue: queue, JobID: p.JobID})
	}
	return result, err
}
