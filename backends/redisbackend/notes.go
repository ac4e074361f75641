package redisbackend

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/internal/record"
	"github.com/conveyorhq/conveyor/job"
)

var _ backends.Annotator = (*Backend)(nil)

// A job's notes are two more fields of its hash, so they go when the job
// is pruned or deleted and live in its queue's slot:
//
//	nt  notes (job.Notes as JSON)   nv  their version, for compare-and-set
//
// Annotate reads them, applies the change in Go and writes them back with
// annotateScript, which checks the lease and the version in one step.
var annotateScript = redis.NewScript(`
local f = redis.call('HMGET', KEYS[1], 's', 'tk', 'nv')
if f[1] ~= 'running' or f[2] ~= ARGV[1] then return -1 end
if (f[3] or '0') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'nt', ARGV[3], 'nv', tonumber(ARGV[2]) + 1)
return 1
`)

// Annotate implements backends.Annotator.
func (b *Backend) Annotate(ctx context.Context, p backends.AnnotateParams) error {
	if err := b.gate.Check(ctx); err != nil {
		return err
	}
	q, ok := queueOf(p.Lease.Token)
	if !ok {
		return record.LeaseLost(p.Lease)
	}
	key := b.base(q) + ":j:" + p.Lease.JobID
	for range 8 { // a conflict is the holder's own concurrent write
		vals, err := b.rdb.HMGet(ctx, key, "nt", "nv").Result()
		if err != nil {
			return fmt.Errorf("redisbackend: annotate %s: %w", p.Lease.JobID, err)
		}
		stored, _ := vals[0].(string)
		ver, _ := vals[1].(string)
		if ver == "" {
			ver = "0"
		}
		n, err := backends.DecodeNotes([]byte(stored))
		if err != nil {
			return fmt.Errorf("redisbackend: annotate %s: %w", p.Lease.JobID, err)
		}
		p.Apply(&n, b.cfg.Clock.Now())
		enc, err := backends.EncodeNotes(n)
		if err != nil {
			return err
		}
		got, err := annotateScript.Run(ctx, b.rdb, []string{key}, p.Lease.Token, ver, enc).Int()
		switch {
		case err != nil:
			return fmt.Errorf("redisbackend: annotate %s: %w", p.Lease.JobID, err)
		case got < 0:
			return record.LeaseLost(p.Lease)
		case got == 1:
			return nil
		}
	}
	return fmt.Errorf("redisbackend: annotate %s: %w: the notes kept changing", p.Lease.JobID, job.ErrConflict)
}

// Notes implements backends.Annotator.
func (b *Backend) Notes(ctx context.Context, p backends.NotesParams) (job.Notes, error) {
	if err := b.gate.Check(ctx); err != nil {
		return job.Notes{}, err
	}
	q, err := b.find(ctx, p.JobID)
	if err != nil {
		return job.Notes{}, err
	}
	stored, err := b.rdb.HGet(ctx, b.base(q)+":j:"+p.JobID, "nt").Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return job.Notes{}, fmt.Errorf("redisbackend: notes of %s: %w", p.JobID, err)
	}
	return backends.DecodeNotes([]byte(stored))
}
