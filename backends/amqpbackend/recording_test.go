package amqpbackend_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/amqpbackend"
	"github.com/conveyorhq/conveyor/job"
)

// slowRecords holds the enqueue's write of a job's record until a second
// read has found the record missing (the first is the enqueue's own check
// for a duplicate): the job's own consumer got its message first.
type slowRecords struct {
	backends.KVStore
	reads  atomic.Int64
	missed chan struct{}
}

func (s *slowRecords) GetKV(ctx context.Context, p backends.GetKVParams) (backends.KV, error) {
	kv, err := s.KVStore.GetKV(ctx, p)
	if strings.Contains(p.Key, "/job/") && errors.Is(err, job.ErrNotFound) && s.reads.Add(1) == 2 {
		close(s.missed)
	}
	return kv, err
}

func (s *slowRecords) PutKV(ctx context.Context, p backends.PutKVParams) (int64, error) {
	if strings.Contains(p.Key, "/job/") && p.IfVersion == 0 {
		select {
		case <-s.missed:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	return s.KVStore.PutKV(ctx, p)
}

// A job this process enqueues and its own consumer receives before the
// record is written is leased as soon as the write lands, not at the next
// poll: with the poll an hour long here, only that wait can lease it.
func TestOwnEnqueueIsLeasedWhenRecorded(t *testing.T) {
	defer amqpbackend.SetRecordPoll(time.Hour)()
	ctx := context.Background()
	st := &slowRecords{KVStore: sqliteStore(t), missed: make(chan struct{})}
	b := open(t, amqpbackend.Config{Store: st})
	q := fresh("ownrecord")
	const id = "own-1"
	enqueued := make(chan error, 1)
	go func() {
		_, err := b.Enqueue(ctx, backends.EnqueueParams{Jobs: []*backends.JobInsert{{ID: id, Queue: q, Task: "t"}}})
		enqueued <- err
	}()
	if r := reserveOne(t, b, q, id); r.Deliveries != 1 {
		t.Fatalf("leased delivery %d; want 1", r.Deliveries)
	}
	if err := <-enqueued; err != nil {
		t.Fatalf("enqueue: %v", err)
	}
}
