package redisbackend_test

import (
	"strconv"
	"testing"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/redisbackend"
	"github.com/conveyorhq/conveyor/queue"
)

// The enqueue paths of the benchmark's Redis row, one call per op, for
// profiles and instruction counts (valgrind --tool=callgrind on the test
// binary counts the client's instructions, repeatable on a loaded
// machine where wall time is not):
//
//	go test -c -o enq.test . && valgrind --tool=callgrind ./enq.test -test.run '^$' -test.bench EnqueueSingle -test.benchtime 2000x

type benchArgs struct {
	At int64 `json:"at"`
}

var benchTask = queue.NewTask[benchArgs, queue.None]("bench.noop", queue.TaskOptions{})

// BenchmarkEnqueueSingle is one job per call through the queue client, as
// the benchmark's "enqueue single" runs it.
func BenchmarkEnqueueSingle(b *testing.B) {
	be := open(b, newClient(b), redisbackend.Config{JanitorEvery: -1})
	c := queue.NewClient(be, queue.Config{})
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := benchTask.Enqueue(ctx, c, benchArgs{}, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEnqueueSingleBackend is the same job straight to the backend:
// the difference to BenchmarkEnqueueSingle is the queue client's cost.
func BenchmarkEnqueueSingleBackend(b *testing.B) {
	be := open(b, newClient(b), redisbackend.Config{JanitorEvery: -1})
	ctx := b.Context()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		ins := &backends.JobInsert{ID: "j" + strconv.Itoa(i), Queue: "default", Task: "bench.noop", Payload: []byte(`{"at":0}`), MaxDeliveries: 25}
		if _, err := be.Enqueue(ctx, backends.EnqueueParams{Jobs: []*backends.JobInsert{ins}}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEnqueueBatch is batches of 1,000 through the queue client; the
// figure is per batch.
func BenchmarkEnqueueBatch(b *testing.B) {
	be := open(b, newClient(b), redisbackend.Config{JanitorEvery: -1})
	c := queue.NewClient(be, queue.Config{})
	ctx := b.Context()
	reqs := make([]queue.Request, 1000)
	b.ReportAllocs()
	for b.Loop() {
		for i := range reqs {
			reqs[i] = benchTask.Request(benchArgs{}, nil)
		}
		if _, err := c.EnqueueMany(ctx, reqs...); err != nil {
			b.Fatal(err)
		}
	}
}
