package pgbackend_test

import (
	"strconv"
	"testing"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/pgbackend"
)

// BenchmarkEnqueueSingle is one job per call straight to the backend, as
// the bench's "enqueue single" and latency rows send them: a web
// handler's enqueue, its durable commit included.
//
//	go test -run '^$' -bench EnqueueSingle -benchtime 5000x .
func BenchmarkEnqueueSingle(b *testing.B) {
	pool, _ := newPool(b)
	be := open(b, pool, pgbackend.Config{JanitorEvery: -1})
	ctx := b.Context()
	i := 0
	for b.Loop() {
		i++
		ins := &backends.JobInsert{ID: "j" + strconv.Itoa(i), Queue: "default", Task: "bench.noop", Payload: []byte(`{"at":0}`), MaxDeliveries: 25}
		if _, err := be.Enqueue(ctx, backends.EnqueueParams{Jobs: []*backends.JobInsert{ins}}); err != nil {
			b.Fatal(err)
		}
	}
}
