package redisbackend_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/redisbackend"
	"github.com/conveyorhq/conveyor/job"
)

// TestWaitReplicasWithoutReplicas: the test server has no replica, so a
// write that must reach one is applied on the master but never
// acknowledged: its outcome is unknown, and it is there. (The
// failover case of internal/chaos runs WaitReplicas on a cluster with
// replicas and checks that nothing acknowledged is lost.)
func TestWaitReplicasWithoutReplicas(t *testing.T) {
	ctx := context.Background()
	b := open(t, newClient(t), redisbackend.Config{WaitReplicas: 1, WaitTimeout: 20 * time.Millisecond})
	_, err := b.Enqueue(ctx, backends.EnqueueParams{Jobs: []*backends.JobInsert{{ID: "j1", Queue: "q", Task: "t"}}})
	if !errors.Is(err, redisbackend.ErrNotReplicated) || !errors.Is(err, job.ErrOutcomeUnknown) {
		t.Fatalf("enqueue with no replica: %v, want ErrNotReplicated and ErrOutcomeUnknown", err)
	}

	// A script's write: refused an acknowledgement, applied all the same.
	_, err = b.PutKV(ctx, backends.PutKVParams{Key: "k", Value: []byte("v")})
	if !errors.Is(err, redisbackend.ErrNotReplicated) || !errors.Is(err, job.ErrOutcomeUnknown) {
		t.Fatalf("PutKV with no replica: %v, want ErrNotReplicated and ErrOutcomeUnknown", err)
	}
	if kv, err := b.GetKV(ctx, backends.GetKVParams{Key: "k"}); err != nil || string(kv.Value) != "v" {
		t.Fatalf("the master has the write, so it must be read back: %+v, %v", kv, err)
	}

	// Reads are not writes: they never wait.
	if _, err := b.QueueStats(ctx, backends.QueueStatsParams{}); err != nil {
		t.Fatalf("QueueStats: %v", err)
	}
}

func TestWaitReplicasRefusesNegative(t *testing.T) {
	_, err := redisbackend.New(context.Background(), redisbackend.Config{Client: newClient(t), WaitReplicas: -1})
	if !errors.Is(err, job.ErrInvalid) {
		t.Fatalf("WaitReplicas -1: %v, want ErrInvalid", err)
	}
}
