package redisbackend

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/internal/record"
	"github.com/conveyorhq/conveyor/job"
)

// lookup reads the job hash of id from every registered queue in one
// pipelined round trip and returns the first found. Jobs are keyed under
// their queue's hash tag, and a lookup by ID alone is rare (status, cancel,
// operator actions), so it pays the registry walk instead of every enqueue
// paying for an ID index.
func (b *Backend) lookup(ctx context.Context, id string) (string, []any, error) {
	queues, err := b.queues(ctx)
	if err != nil {
		return "", nil, err
	}
	cmds := make([]*redis.SliceCmd, len(queues))
	_, err = b.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, q := range queues {
			cmds[i] = p.HMGet(ctx, b.base(q)+":j:"+id, recordFields...)
		}
		return nil
	})
	for i, c := range cmds {
		if vals, cerr := c.Result(); cerr == nil && len(vals) > 0 && vals[0] != nil {
			return queues[i], vals, nil
		}
	}
	if err != nil && !isWrongType(err) {
		return "", nil, fmt.Errorf("redisbackend: looking up %s: %w", id, err)
	}
	return "", nil, record.NotFound(id)
}

func isWrongType(err error) bool { return strings.HasPrefix(err.Error(), "WRONGTYPE") }

func (b *Backend) find(ctx context.Context, id string) (string, error) {
	q, _, err := b.lookup(ctx, id)
	return q, err
}

// GetJob implements backends.Inspector.
func (b *Backend) GetJob(ctx context.Context, p backends.GetJobParams) (*job.Record, error) {
	if err := b.gate.Check(ctx); err != nil {
		return nil, err
	}
	q, vals, err := b.lookup(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	return decode(p.ID, q, vals)
}

// ListJobs implements backends.Inspector from the per-state sets, so a page
// costs O(log n + page) whatever the queue's size. Across all queues, pages
// go queue by queue in name order; the cursor is "<seq>@<queue>".
func (b *Backend) ListJobs(ctx context.Context, p backends.ListJobsParams) (*backends.JobPage, error) {
	if err := b.gate.Check(ctx); err != nil {
		return nil, err
	}
	limit, _, err := backends.ListJobsParams{State: p.State, Limit: p.Limit}.Page()
	if err != nil {
		return nil, err
	}
	queues := []string{p.Queue}
	if p.Queue == "" {
		if queues, err = b.queues(ctx); err != nil {
			return nil, err
		}
		slices.Sort(queues)
	}
	after, from := int64(0), ""
	if p.Cursor != "" {
		seq, q, ok := strings.Cut(p.Cursor, "@")
		after, err = strconv.ParseInt(seq, 10, 64)
		if !ok || err != nil || (p.Queue != "" && q != p.Queue) {
			return nil, fmt.Errorf("%w: bad cursor %q", job.ErrInvalid, p.Cursor)
		}
		from = q
	}
	page := &backends.JobPage{}
	for _, q := range queues {
		if q < from {
			continue
		}
		if q != from {
			after = 0
		}
		want := limit - len(page.Jobs)
		v, err := b.s.read.RunRO(ctx, b.rdb, []string{b.base(q)}, "list", string(p.State), after, want+1).Slice()
		if err != nil {
			return nil, fmt.Errorf("redisbackend: listing %s: %w", q, err)
		}
		for i := 0; i+2 < len(v); i += 3 {
			if len(page.Jobs) == limit {
				page.Next = strconv.FormatInt(after, 10) + "@" + q
				return page, nil
			}
			r, err := decode(str(v[i+1]), q, v[i+2])
			if err != nil {
				return nil, err
			}
			after, _ = strconv.ParseInt(str(v[i]), 10, 64)
			page.Jobs = append(page.Jobs, r)
		}
	}
	return page, nil
}

// QueueStats implements backends.Inspector: per queue, one script run that
// reads the cardinality of each state set (O(1) each), pipelined.
func (b *Backend) QueueStats(ctx context.Context, p backends.QueueStatsParams) ([]backends.QueueStats, error) {
	if err := b.gate.Check(ctx); err != nil {
		return nil, err
	}
	queues := []string{p.Queue}
	if p.Queue == "" {
		var err error
		if queues, err = b.queues(ctx); err != nil {
			return nil, err
		}
	}
	args := []any{"stats"}
	for _, s := range job.States() {
		args = append(args, string(s))
	}
	out := make([]backends.QueueStats, 0, len(queues))
	for _, q := range queues {
		v, err := b.s.read.RunRO(ctx, b.rdb, []string{b.base(q)}, args...).Int64Slice()
		if err != nil {
			return nil, fmt.Errorf("redisbackend: stats of %s: %w", q, err)
		}
		s := backends.QueueStats{Queue: q, Paused: v[0] == 1, Counts: map[job.State]int{}}
		for i, st := range job.States() {
			if n := int(v[i+1]); n > 0 {
				s.Counts[st] = n
			}
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(x, y backends.QueueStats) int { return strings.Compare(x.Queue, y.Queue) })
	return out, nil
}

// admin runs the admin script on one queue.
func (b *Backend) admin(ctx context.Context, queue, action string, args ...any) (int, error) {
	n, err := b.s.admin.Run(ctx, b.rdb, []string{b.base(queue)}, append([]any{b.cfg.Clock.Now().UnixMilli(), action}, args...)...).Int()
	if err != nil {
		return 0, fmt.Errorf("redisbackend: %s in %s: %w", action, queue, err)
	}
	return n, nil
}

// groupIDs finds the queue of each ID; unknown IDs are left out.
func (b *Backend) groupIDs(ctx context.Context, ids []string) (map[string][]string, error) {
	groups := map[string][]string{}
	for _, id := range ids {
		q, err := b.find(ctx, id)
		if err != nil {
			if errors.Is(err, job.ErrNotFound) {
				continue
			}
			return nil, err
		}
		groups[q] = append(groups[q], id)
	}
	return groups, nil
}

// adminChunk bounds how many jobs one admin script run touches, so an
// operator's replay-all or purge never blocks Redis for long.
const adminChunk = 500

// ReplayJobs implements backends.Admin.
func (b *Backend) ReplayJobs(ctx context.Context, p backends.ReplayJobsParams) (int, error) {
	if err := b.gate.Check(ctx); err != nil {
		return 0, err
	}
	replay := func(q string, ids []string) (int, error) {
		args := make([]any, 0, 3*len(ids))
		for _, id := range ids {
			pl, ok := p.Payloads[id]
			has := 0
			if ok {
				has = 1
			}
			args = append(args, id, has, pl)
		}
		return b.admin(ctx, q, "replay", args...)
	}
	total := 0
	if p.Queue != "" {
		for {
			ids, err := b.rdb.ZRange(ctx, b.base(p.Queue)+":s:"+string(job.Dead), 0, adminChunk-1).Result()
			if err != nil {
				return total, fmt.Errorf("redisbackend: replay of %s: %w", p.Queue, err)
			}
			if len(ids) == 0 {
				break
			}
			n, err := replay(p.Queue, ids)
			total += n
			if err != nil || n == 0 {
				return total, err
			}
		}
	}
	groups, err := b.groupIDs(ctx, p.IDs)
	if err != nil {
		return total, err
	}
	for q, ids := range groups {
		n, err := replay(q, ids)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// DeleteJobs implements backends.Admin.
func (b *Backend) DeleteJobs(ctx context.Context, p backends.DeleteJobsParams) (int, error) {
	if err := b.gate.Check(ctx); err != nil {
		return 0, err
	}
	groups, err := b.groupIDs(ctx, p.IDs)
	if err != nil {
		return 0, err
	}
	total := 0
	for q, ids := range groups {
		args := make([]any, len(ids))
		for i, id := range ids {
			args[i] = id
		}
		n, err := b.admin(ctx, q, "delete", args...)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// PurgeQueue implements backends.Admin, adminChunk jobs per script run.
func (b *Backend) PurgeQueue(ctx context.Context, p backends.PurgeQueueParams) (int, error) {
	if err := b.gate.Check(ctx); err != nil {
		return 0, err
	}
	args := []any{adminChunk}
	for _, s := range p.States {
		args = append(args, string(s))
	}
	total := 0
	for {
		n, err := b.admin(ctx, p.Queue, "purge", args...)
		total += n
		if err != nil || n < adminChunk {
			return total, err
		}
	}
}

// PauseQueue implements backends.Pauser.
func (b *Backend) PauseQueue(ctx context.Context, p backends.PauseQueueParams) error {
	if err := b.gate.Check(ctx); err != nil {
		return err
	}
	if err := b.register(ctx, p.Queue); err != nil {
		return err
	}
	_, err := b.admin(ctx, p.Queue, "pause")
	return err
}

// ResumeQueue implements backends.Pauser.
func (b *Backend) ResumeQueue(ctx context.Context, p backends.PauseQueueParams) error {
	if err := b.gate.Check(ctx); err != nil {
		return err
	}
	_, err := b.admin(ctx, p.Queue, "resume")
	return err
}
