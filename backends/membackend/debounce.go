package membackend

import (
	"context"
	"maps"
	"slices"
	"sync"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

var _ backends.Debouncer = (*Backend)(nil)

// debounceState files each debounce key's job. Its mutex serializes
// Debounce calls, so that two enqueues of a key that find no waiting job
// cannot both insert one; Enqueue and Reserve still take b.mu, which
// Debounce holds whenever it reads or changes a job.
type debounceState struct {
	mu   sync.Mutex
	jobs map[string]*entry // queue + "\x00" + key -> the key's last job
}

// Debounce implements backends.Debouncer.
func (b *Backend) Debounce(ctx context.Context, p backends.DebounceParams) (backends.EnqueueResult, error) {
	if err := b.gate.Valid(ctx, p); err != nil {
		return backends.EnqueueResult{}, err
	}
	b.deb.mu.Lock()
	defer b.deb.mu.Unlock()
	k := p.Job.Queue + "\x00" + p.Key
	if res, ok := b.replaceWaiting(k, p); ok {
		return res, nil
	}
	ins := *p.Job
	now := b.cfg.Clock.Now()
	ins.RunAt = p.RunAt(now, now)
	res, err := b.Enqueue(ctx, backends.EnqueueParams{Jobs: []*backends.JobInsert{&ins}})
	if err != nil {
		return backends.EnqueueResult{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if e := b.jobs[res[0].ID]; e != nil && !res[0].Duplicate {
		if b.deb.jobs == nil {
			b.deb.jobs = map[string]*entry{}
		}
		b.deb.jobs[k] = e
	}
	return res[0], nil
}

// replaceWaiting gives the key's job p's payload, headers and new run
// time if it is still waiting.
func (b *Backend) replaceWaiting(k string, p backends.DebounceParams) (backends.EnqueueResult, bool) {
	now := b.cfg.Clock.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.deb.jobs[k]
	if e == nil || b.jobs[e.rec.ID] != e || (e.rec.State != job.Pending && e.rec.State != job.Scheduled) {
		delete(b.deb.jobs, k)
		return backends.EnqueueResult{}, false
	}
	e.rec.Payload, e.rec.Headers = slices.Clone(p.Job.Payload), maps.Clone(p.Job.Headers)
	e.rec.RunAt = p.RunAt(now, e.rec.CreatedAt)
	state := job.Scheduled
	if !e.rec.RunAt.After(now) {
		state = job.Pending
		b.hub.Publish(backends.Event{Kind: backends.JobsAvailable, Queue: e.rec.Queue})
	}
	b.setState(e, state, now) // re-filed under the new run time; the old heap item is stale
	return backends.EnqueueResult{ID: e.rec.ID, State: state, Duplicate: true}, true
}
