package amqpbackend

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

// GetJob implements backends.Inspector from the store. A running job's
// lease expiry is the one it was reserved with: Extend does not write to
// the store.
func (b *StoredBackend) GetJob(ctx context.Context, p backends.GetJobParams) (*job.Record, error) {
	if err := b.gate.Check(ctx); err != nil {
		return nil, err
	}
	d, _, err := b.st.get(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	return &d.Record, nil
}

// ListJobs implements backends.Inspector. It reads every job the store
// holds under the prefix: fine for the retention a dashboard shows, not
// for millions of jobs (see the package documentation).
func (b *StoredBackend) ListJobs(ctx context.Context, p backends.ListJobsParams) (*backends.JobPage, error) {
	limit, after, err := b.gate.Page(ctx, p)
	if err != nil {
		return nil, err
	}
	docs, err := b.scan(ctx)
	if err != nil {
		return nil, err
	}
	var match []*job.Record
	for _, d := range docs {
		if d.State == p.State && (p.Queue == "" || d.Queue == p.Queue) {
			match = append(match, &d.Record)
		}
	}
	slices.SortStableFunc(match, func(x, y *job.Record) int {
		if c := x.CreatedAt.Compare(y.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(x.ID, y.ID)
	})
	page := &backends.JobPage{Jobs: match[min(int(after), len(match)):]}
	if len(page.Jobs) > limit {
		page.Jobs = page.Jobs[:limit]
		page.Next = strconv.Itoa(int(after) + limit)
	}
	return page, nil
}

// QueueStats implements backends.Inspector from the store's counters (see
// counts.go): two keys per queue, whatever the number of jobs. This
// process's changes are flushed first, other processes' are in within
// countFlush.
func (b *StoredBackend) QueueStats(ctx context.Context, p backends.QueueStatsParams) ([]backends.QueueStats, error) {
	if err := b.gate.Check(ctx); err != nil {
		return nil, err
	}
	if err := b.st.flushCounts(ctx); err != nil {
		return nil, err
	}
	qs := []string{p.Queue}
	if p.Queue == "" {
		var err error
		if qs, _, err = b.st.queues(ctx); err != nil {
			return nil, err
		}
	}
	now := b.cfg.Clock.Now()
	var out []backends.QueueStats
	for _, q := range qs {
		c, _, err := b.st.readCounts(ctx, q)
		if err != nil {
			return nil, err
		}
		paused, err := b.pausedNow(ctx, q)
		if err != nil {
			return nil, err
		}
		if s := (backends.QueueStats{Queue: q, Paused: paused, Counts: c.live(now)}); len(s.Counts) > 0 || paused {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(x, y backends.QueueStats) int { return strings.Compare(x.Queue, y.Queue) })
	return out, nil
}

// scan reads every stored job, with its version in the store.
func (b *Backend) scan(ctx context.Context) ([]*doc, error) {
	kvs, err := b.st.kv.ListKV(ctx, backends.ListKVParams{Prefix: b.st.jobPrefix()})
	if err != nil {
		return nil, fmt.Errorf("amqpbackend: list jobs: %w", err)
	}
	out := make([]*doc, 0, len(kvs))
	for _, kv := range kvs {
		var d doc
		if err := json.Unmarshal(kv.Value, &d); err != nil {
			b.cfg.Logger.Warn("amqpbackend: unreadable job in the store", "key", kv.Key, "err", err)
			continue
		}
		d.version = kv.Version
		out = append(out, &d)
	}
	return out, nil
}
