package sqlitebackend

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/internal/record"
	"github.com/conveyorhq/conveyor/job"
)

// GetJob implements backends.Inspector. A row that does not decode comes
// back as far as it does, with an error wrapping job.ErrMalformedPayload
// that names each bad column; the janitor dead-letters it (Tidy).
func (b *Backend) GetJob(ctx context.Context, p backends.GetJobParams) (*job.Record, error) {
	if err := b.gate.Check(ctx); err != nil {
		return nil, err
	}
	r, err := scanRecord(b.ro.QueryRowContext(ctx, `SELECT `+columns+` FROM conveyor_jobs WHERE id = ?`, p.ID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, record.NotFound(p.ID)
	}
	return r, err
}

// ListJobs implements backends.Inspector; the cursor is the last job's
// enqueue sequence number.
func (b *Backend) ListJobs(ctx context.Context, p backends.ListJobsParams) (*backends.JobPage, error) {
	limit, after, err := b.gate.Page(ctx, p)
	if err != nil {
		return nil, err
	}
	tx, err := b.ro.BeginTx(ctx, &sql.TxOptions{ReadOnly: true}) // one snapshot for the walks and the read
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback() }()
	queues := []string{p.Queue}
	if p.Queue == "" {
		if queues, err = listQueues(ctx, tx); err != nil {
			return nil, err
		}
	}
	// The page's jobs are found on the (queue, state, seq) index, a walk
	// per queue, merged: without a queue no index serves "state = ?
	// ORDER BY seq", and a scan of the table in seq order read every job
	// for a state that has few.
	var seqs []int64
	for _, q := range queues {
		qs, err := queueSeqs(ctx, tx, q, p.State, after, limit+1)
		if err != nil {
			return nil, err
		}
		seqs = append(seqs, qs...)
	}
	slices.Sort(seqs)
	seqs = seqs[:min(len(seqs), limit+1)]
	if len(seqs) == 0 {
		return &backends.JobPage{}, nil
	}
	in := make([]any, len(seqs))
	for i, s := range seqs {
		in[i] = s
	}
	rows, err := tx.QueryContext(ctx, `SELECT seq, `+columns+` FROM conveyor_jobs WHERE seq IN (?`+strings.Repeat(`, ?`, len(in)-1)+`) ORDER BY seq`, in...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	page := &backends.JobPage{}
	var lastSeq int64
	for rows.Next() {
		if len(page.Jobs) == limit {
			page.Next = strconv.FormatInt(lastSeq, 10)
			break
		}
		// A row that does not decode is listed as far as it does, so one
		// damaged job does not hide the page; GetJob reports what is wrong.
		r, err := scanRecord(seqScanner{rows, &lastSeq})
		if err != nil && !errors.Is(err, job.ErrMalformedPayload) {
			return nil, err
		}
		page.Jobs = append(page.Jobs, r)
	}
	return page, rows.Err()
}

// listQueues returns the names of the queues that hold jobs, an index
// seek each (a loose scan of conveyor_jobs_state), not a walk of every job.
func listQueues(ctx context.Context, tx *sql.Tx) ([]string, error) {
	return scanColumn[string](tx.QueryContext(ctx, `WITH RECURSIVE qs(name) AS (
		SELECT min(queue) FROM conveyor_jobs
		UNION ALL
		SELECT (SELECT min(queue) FROM conveyor_jobs WHERE queue > qs.name) FROM qs WHERE qs.name IS NOT NULL)
		SELECT name FROM qs WHERE name IS NOT NULL`))
}

// queueSeqs returns the sequence numbers of queue's first n jobs in state
// after the cursor, from the index alone.
func queueSeqs(ctx context.Context, tx *sql.Tx, queue string, state job.State, after int64, n int) ([]int64, error) {
	return scanColumn[int64](tx.QueryContext(ctx, `SELECT seq FROM conveyor_jobs INDEXED BY conveyor_jobs_state
		WHERE queue = ? AND state = ? AND seq > ? ORDER BY seq LIMIT ?`, queue, string(state), after, n))
}

// seqScanner reads the leading seq column before the record's columns.
type seqScanner struct {
	rows *sql.Rows
	seq  *int64
}

func (s seqScanner) Scan(dest ...any) error { return s.rows.Scan(append([]any{s.seq}, dest...)...) }

// QueueStats implements backends.Inspector with one grouped count over the
// (queue, state) index.
func (b *Backend) QueueStats(ctx context.Context, p backends.QueueStatsParams) ([]backends.QueueStats, error) {
	if err := b.gate.Check(ctx); err != nil {
		return nil, err
	}
	q := `SELECT queue, state, count(*) FROM conveyor_jobs`
	var args []any
	if p.Queue != "" {
		q += ` WHERE queue = ?`
		args = append(args, p.Queue)
	}
	rows, err := b.ro.QueryContext(ctx, q+` GROUP BY queue, state`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	byQueue := map[string]*backends.QueueStats{}
	var order []string
	stat := func(name string) *backends.QueueStats {
		s := byQueue[name]
		if s == nil {
			s = &backends.QueueStats{Queue: name, Counts: map[job.State]int{}}
			byQueue[name] = s
			order = append(order, name)
		}
		return s
	}
	for rows.Next() {
		var name, state string
		var n int
		if err := rows.Scan(&name, &state, &n); err != nil {
			return nil, err
		}
		stat(name).Counts[job.State(state)] = n
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	q = `SELECT name FROM conveyor_queues WHERE paused = 1`
	if p.Queue != "" {
		q += ` AND name = ?`
	}
	prow, err := b.ro.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer prow.Close()
	for prow.Next() {
		var name string
		if err := prow.Scan(&name); err != nil {
			return nil, err
		}
		stat(name).Paused = true
	}
	out := make([]backends.QueueStats, 0, len(order))
	for _, name := range order {
		out = append(out, *byQueue[name])
	}
	return out, prow.Err()
}

func placeholders(n int) string { return "(?" + strings.Repeat(", ?", n-1) + ")" }

func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// ReplayJobs implements backends.Admin.
func (b *Backend) ReplayJobs(ctx context.Context, p backends.ReplayJobsParams) (int, error) {
	if err := b.gate.Check(ctx); err != nil {
		return 0, err
	}
	var n int64
	var queues []string
	err := b.write(ctx, func(tx *sql.Tx) error {
		n, queues = 0, nil
		for id, payload := range p.Payloads {
			if _, err := tx.ExecContext(ctx, `UPDATE conveyor_jobs SET payload = ? WHERE id = ? AND state IN ('dead', 'cancelled')`, payload, id); err != nil {
				return err
			}
		}
		set := `UPDATE conveyor_jobs SET state = 'pending', deliveries = 0, run_at = ?, finished_at = 0 WHERE `
		now := record.Micros(b.cfg.Clock.Now())
		var where string
		var args []any
		switch {
		case len(p.IDs) > 0:
			where, args = `state IN ('dead', 'cancelled') AND id IN `+placeholders(len(p.IDs)), anys(p.IDs)
		case p.Queue != "":
			where, args = `state = 'dead' AND queue = ?`, []any{p.Queue}
		default:
			return nil
		}
		rows, err := tx.QueryContext(ctx, set+where+` RETURNING queue, grp`, append([]any{now}, args...)...)
		if err != nil {
			return err
		}
		var keys []groupKey
		for rows.Next() {
			var k groupKey
			if err := rows.Scan(&k.queue, &k.grp); err != nil {
				rows.Close()
				return err
			}
			keys, queues = append(keys, k), append(queues, k.queue)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		n = int64(len(keys))
		return registerGroups(ctx, b.statements(ctx, tx), slices.Values(keys)) // a replayed job's group may have left the ring
	})
	for _, q := range queues {
		b.hub.Publish(backends.Event{Kind: backends.JobsAvailable, Queue: q})
	}
	return int(n), err
}

// DeleteJobs implements backends.Admin.
func (b *Backend) DeleteJobs(ctx context.Context, p backends.DeleteJobsParams) (int, error) {
	if err := b.gate.Check(ctx); err != nil {
		return 0, err
	}
	if len(p.IDs) == 0 {
		return 0, nil
	}
	return b.deleteWhere(ctx, `state != 'running' AND id IN `+placeholders(len(p.IDs)), anys(p.IDs)...)
}

// PurgeQueue implements backends.Admin.
func (b *Backend) PurgeQueue(ctx context.Context, p backends.PurgeQueueParams) (int, error) {
	if err := b.gate.Check(ctx); err != nil {
		return 0, err
	}
	var states []string
	for _, s := range p.States {
		if s != job.Running {
			states = append(states, string(s))
		}
	}
	if len(states) == 0 {
		return 0, nil
	}
	return b.deleteWhere(ctx, `queue = ? AND state IN `+placeholders(len(states)), append([]any{p.Queue}, anys(states)...)...)
}

func (b *Backend) deleteWhere(ctx context.Context, where string, args ...any) (int, error) {
	var n int64
	err := b.write(ctx, func(tx *sql.Tx) error {
		r, err := tx.ExecContext(ctx, `DELETE FROM conveyor_jobs WHERE `+where, args...)
		if err != nil {
			return err
		}
		n, err = r.RowsAffected()
		return err
	})
	return int(n), err
}

// PauseQueue implements backends.Pauser.
func (b *Backend) PauseQueue(ctx context.Context, p backends.PauseQueueParams) error {
	if err := b.gate.Check(ctx); err != nil {
		return err
	}
	return b.setPaused(ctx, p.Queue, true)
}

// ResumeQueue implements backends.Pauser.
func (b *Backend) ResumeQueue(ctx context.Context, p backends.PauseQueueParams) error {
	if err := b.gate.Check(ctx); err != nil {
		return err
	}
	if err := b.setPaused(ctx, p.Queue, false); err != nil {
		return err
	}
	b.hub.Publish(backends.Event{Kind: backends.JobsAvailable, Queue: p.Queue})
	return nil
}

func (b *Backend) setPaused(ctx context.Context, queue string, paused bool) error {
	return b.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO conveyor_queues (name, paused) VALUES (?, ?)
			ON CONFLICT (name) DO UPDATE SET paused = excluded.paused`, queue, paused)
		return err
	})
}

// pruneBatch bounds how many rows one prune transaction deletes, so the
// write lock is never held for long.
const pruneBatch = 1000

// Prune deletes finished jobs past their retention (Config.KeepDone,
// KeepDead) and returns how many. A job whose unique key window is still
// open is kept, so pruning never lets a duplicate in. It runs every
// JanitorEvery on its own; call it to prune now.
func (b *Backend) Prune(ctx context.Context) (int, error) {
	if err := b.gate.Check(ctx); err != nil {
		return 0, err
	}
	now := b.cfg.Clock.Now()
	total := 0
	for _, r := range []struct {
		states string
		keep   time.Duration
	}{{`('done', 'cancelled')`, b.cfg.KeepDone}, {`('dead')`, b.cfg.KeepDead}} {
		if r.keep < 0 {
			continue
		}
		for {
			n, err := b.deleteWhere(ctx, `seq IN (SELECT seq FROM conveyor_jobs WHERE state IN `+r.states+`
				AND finished_at < ? AND unique_until < ? LIMIT ?)`, record.Micros(now.Add(-r.keep)), record.Micros(now), pruneBatch)
			total += n
			if err != nil || n < pruneBatch {
				if err != nil {
					return total, err
				}
				break
			}
		}
	}
	return total, nil
}
