package pgbackend

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/internal/record"
	"github.com/conveyorhq/conveyor/job"
)

// GetJob implements backends.Inspector.
func (b *Backend) GetJob(ctx context.Context, p backends.GetJobParams) (*job.Record, error) {
	if err := b.gate.Check(ctx); err != nil {
		return nil, err
	}
	r, _, err := scanRecord(b.pool.QueryRow(ctx, b.q.getJob, p.ID))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, record.NotFound(p.ID)
	}
	if err != nil && r == nil {
		return nil, fmt.Errorf("pgbackend: get %s: %w", p.ID, err)
	}
	return r, err
}

// ListJobs implements backends.Inspector on the (queue, state, seq) index,
// walked once per queue when p.Queue is empty; the cursor is the last
// job's sequence number.
func (b *Backend) ListJobs(ctx context.Context, p backends.ListJobsParams) (*backends.JobPage, error) {
	limit, after, err := b.gate.Page(ctx, p)
	if err != nil {
		return nil, err
	}
	sql, args := b.q.listJobs, []any{p.Queue, string(p.State), after, limit + 1}
	if p.Queue == "" {
		sql, args = b.q.listAllJobs, args[1:]
	}
	rows, err := b.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("pgbackend: list: %w", err)
	}
	defer rows.Close()
	page := &backends.JobPage{}
	var last int64
	for rows.Next() {
		r, seq, err := scanRecord(rows)
		if r == nil {
			return nil, fmt.Errorf("pgbackend: list: %w", err)
		}
		if len(page.Jobs) == limit {
			page.Next = strconv.FormatInt(last, 10)
			break
		}
		page.Jobs, last = append(page.Jobs, r), seq
	}
	return page, rows.Err()
}

// QueueStats implements backends.Inspector from the maintained counts: a
// read of one row per queue and state plus the deltas logged since the
// janitor last folded them, whatever the table's size.
func (b *Backend) QueueStats(ctx context.Context, p backends.QueueStatsParams) ([]backends.QueueStats, error) {
	if err := b.gate.Check(ctx); err != nil {
		return nil, err
	}
	rows, err := b.pool.Query(ctx, b.q.stats, p.Queue)
	if err != nil {
		return nil, fmt.Errorf("pgbackend: stats: %w", err)
	}
	byQueue := map[string]*backends.QueueStats{}
	err = scanAll(pgxRows{rows}, func(s scanner) error {
		var q, st string
		var n int64
		var paused bool
		if err := s.Scan(&q, &st, &n, &paused); err != nil {
			return err
		}
		qs := byQueue[q]
		if qs == nil {
			qs = &backends.QueueStats{Queue: q, Counts: map[job.State]int{}}
			byQueue[q] = qs
		}
		qs.Paused = qs.Paused || paused
		if n > 0 && st != "" {
			qs.Counts[job.State(st)] = int(n)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pgbackend: stats: %w", err)
	}
	out := make([]backends.QueueStats, 0, len(byQueue))
	for _, qs := range byQueue {
		if len(qs.Counts) > 0 || qs.Paused || p.Queue != "" {
			out = append(out, *qs)
		}
	}
	slices.SortFunc(out, func(x, y backends.QueueStats) int { return strings.Compare(x.Queue, y.Queue) })
	return out, nil
}

// ReplayJobs implements backends.Admin.
func (b *Backend) ReplayJobs(ctx context.Context, p backends.ReplayJobsParams) (int, error) {
	if err := b.gate.Check(ctx); err != nil {
		return 0, err
	}
	now := b.cfg.Clock.Now()
	total := 0
	if p.Queue != "" {
		for {
			var n int
			if err := b.pool.QueryRow(ctx, b.q.replayQueue, p.Queue, now).Scan(&n); err != nil {
				return total, fmt.Errorf("pgbackend: replay %s: %w", p.Queue, err)
			}
			total += n
			if n == 0 {
				break
			}
		}
	}
	if len(p.IDs) > 0 {
		payloads := make([][]byte, len(p.IDs))
		for i, id := range p.IDs {
			payloads[i] = p.Payloads[id] // nil keeps the stored payload
		}
		var n int
		if err := b.pool.QueryRow(ctx, b.q.replay, p.IDs, now, payloads).Scan(&n); err != nil {
			return total, fmt.Errorf("pgbackend: replay: %w", err)
		}
		total += n
	}
	return total, nil
}

// DeleteJobs implements backends.Admin.
func (b *Backend) DeleteJobs(ctx context.Context, p backends.DeleteJobsParams) (int, error) {
	if err := b.gate.Check(ctx); err != nil {
		return 0, err
	}
	tag, err := b.pool.Exec(ctx, b.q.deleteJobs, p.IDs)
	if err != nil {
		return 0, fmt.Errorf("pgbackend: delete: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// PurgeQueue implements backends.Admin, 1000 rows per statement.
func (b *Backend) PurgeQueue(ctx context.Context, p backends.PurgeQueueParams) (int, error) {
	if err := b.gate.Check(ctx); err != nil {
		return 0, err
	}
	states := make([]string, len(p.States))
	for i, s := range p.States {
		states[i] = string(s)
	}
	total := 0
	for {
		tag, err := b.pool.Exec(ctx, b.q.purge, p.Queue, states)
		if err != nil {
			return total, fmt.Errorf("pgbackend: purge %s: %w", p.Queue, err)
		}
		total += int(tag.RowsAffected())
		if tag.RowsAffected() < 1000 {
			return total, nil
		}
	}
}

// PauseQueue implements backends.Pauser.
func (b *Backend) PauseQueue(ctx context.Context, p backends.PauseQueueParams) error {
	if err := b.gate.Check(ctx); err != nil {
		return err
	}
	if _, err := b.pool.Exec(ctx, b.q.pause, p.Queue); err != nil {
		return fmt.Errorf("pgbackend: pause %s: %w", p.Queue, err)
	}
	return nil
}

// ResumeQueue implements backends.Pauser. Workers are told at once.
func (b *Backend) ResumeQueue(ctx context.Context, p backends.PauseQueueParams) error {
	if err := b.gate.Check(ctx); err != nil {
		return err
	}
	if _, err := b.pool.Exec(ctx, b.q.resume, p.Queue); err != nil {
		return fmt.Errorf("pgbackend: resume %s: %w", p.Queue, err)
	}
	if _, err := b.pool.Exec(ctx, "SELECT pg_notify($1, $2)", channelName(b.cfg.Schema), "a:"+p.Queue); err != nil {
		return fmt.Errorf("pgbackend: resume %s: %w", p.Queue, err)
	}
	return nil
}
