package membackend

import (
	"cmp"
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/internal/record"
	"github.com/conveyorhq/conveyor/job"
)

// GetJob implements backends.Inspector.
func (b *Backend) GetJob(ctx context.Context, p backends.GetJobParams) (*job.Record, error) {
	if err := b.gate.Check(ctx); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.jobs[p.ID]
	if e == nil {
		return nil, record.NotFound(p.ID)
	}
	return clone(&e.rec), nil
}

// ListJobs implements backends.Inspector. It scans every job: fine for the
// sizes an in-memory backend holds.
func (b *Backend) ListJobs(ctx context.Context, p backends.ListJobsParams) (*backends.JobPage, error) {
	limit, after, err := b.gate.Page(ctx, p)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	// The first limit+1 matches by seq, kept in order as the map is
	// walked: in its random order few matches displace one, where sorting
	// every match held the lock for a sort of the whole state.
	match := make([]*entry, 0, limit+1)
	for _, e := range b.jobs {
		if e.seq <= uint64(after) || e.rec.State != p.State || (p.Queue != "" && e.rec.Queue != p.Queue) {
			continue
		}
		if len(match) == limit+1 && e.seq > match[limit].seq {
			continue
		}
		i, _ := slices.BinarySearchFunc(match, e.seq, func(x *entry, seq uint64) int { return cmp.Compare(x.seq, seq) })
		match = slices.Insert(match, i, e)
		if len(match) > limit+1 {
			match = match[:limit+1]
		}
	}
	page := &backends.JobPage{}
	for i, e := range match {
		if i == limit {
			page.Next = strconv.FormatUint(match[i-1].seq, 10)
			break
		}
		page.Jobs = append(page.Jobs, clone(&e.rec))
	}
	b.mu.Unlock()
	return page, nil
}

// QueueStats implements backends.Inspector from counters kept at every
// state change.
func (b *Backend) QueueStats(ctx context.Context, p backends.QueueStatsParams) ([]backends.QueueStats, error) {
	if err := b.gate.Check(ctx); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []backends.QueueStats
	for name, q := range b.queues {
		if p.Queue != "" && name != p.Queue {
			continue
		}
		s := backends.QueueStats{Queue: name, Paused: q.paused, Counts: map[job.State]int{}}
		for st, c := range q.counts {
			if c > 0 {
				s.Counts[st] = c
			}
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(x, y backends.QueueStats) int { return cmpString(x.Queue, y.Queue) })
	return out, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// ReplayJobs implements backends.Admin.
func (b *Backend) ReplayJobs(ctx context.Context, p backends.ReplayJobsParams) (int, error) {
	if err := b.gate.Check(ctx); err != nil {
		return 0, err
	}
	now := b.cfg.Clock.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	var targets []*entry
	if p.Queue != "" {
		for _, e := range b.jobs {
			if e.rec.Queue == p.Queue && e.rec.State == job.Dead {
				targets = append(targets, e)
			}
		}
	}
	for _, id := range p.IDs {
		if e := b.jobs[id]; e != nil && (e.rec.State == job.Dead || e.rec.State == job.Cancelled) {
			targets = append(targets, e)
		}
	}
	for _, e := range targets {
		if pl, ok := p.Payloads[e.rec.ID]; ok {
			e.rec.Payload = slices.Clone(pl)
		}
		e.rec.Deliveries = 0
		e.rec.RunAt = now
		e.rec.FinishedAt = time.Time{}
		b.setState(e, job.Pending, now)
		b.hub.Publish(backends.Event{Kind: backends.JobsAvailable, Queue: e.rec.Queue})
	}
	return len(targets), nil
}

// DeleteJobs implements backends.Admin.
func (b *Backend) DeleteJobs(ctx context.Context, p backends.DeleteJobsParams) (int, error) {
	if err := b.gate.Check(ctx); err != nil {
		return 0, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, id := range p.IDs {
		if e := b.jobs[id]; e != nil && e.rec.State != job.Running {
			b.remove(e)
			n++
		}
	}
	return n, nil
}

// PurgeQueue implements backends.Admin.
func (b *Backend) PurgeQueue(ctx context.Context, p backends.PurgeQueueParams) (int, error) {
	if err := b.gate.Check(ctx); err != nil {
		return 0, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, e := range b.jobs {
		if e.rec.Queue == p.Queue && e.rec.State != job.Running && slices.Contains(p.States, e.rec.State) {
			b.remove(e)
			n++
		}
	}
	return n, nil
}

func (b *Backend) remove(e *entry) {
	b.queue(e.rec.Queue).counts[e.rec.State]--
	e.ver++ // drops it from every heap
	delete(b.jobs, e.rec.ID)
	if b.unique[e.rec.UniqueKey] == e {
		delete(b.unique, e.rec.UniqueKey)
	}
}

// PauseQueue implements backends.Pauser.
func (b *Backend) PauseQueue(ctx context.Context, p backends.PauseQueueParams) error {
	if err := b.gate.Check(ctx); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.queue(p.Queue).paused = true
	return nil
}

// ResumeQueue implements backends.Pauser.
func (b *Backend) ResumeQueue(ctx context.Context, p backends.PauseQueueParams) error {
	if err := b.gate.Check(ctx); err != nil {
		return err
	}
	b.mu.Lock()
	b.queue(p.Queue).paused = false
	b.mu.Unlock()
	b.hub.Publish(backends.Event{Kind: backends.JobsAvailable, Queue: p.Queue})
	return nil
}
