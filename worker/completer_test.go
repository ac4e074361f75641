package worker

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/sqlitebackend"
	"github.com/conveyorhq/conveyor/job"
)

// The group-commit completer on a real BatchCompleter: 300 completions
// sent at once, more than one batch holds, are all written, each caller
// gets its own job's answer (a stale lease among them fails alone), and
// a lone completion after them is written without waiting for company.
func TestCompleterOnABatchCompleter(t *testing.T) {
	ctx := context.Background()
	b, err := sqlitebackend.Open(ctx, sqlitebackend.Config{Path: filepath.Join(t.TempDir(), "c.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const n = 300
	ins := make([]*backends.JobInsert, n+1)
	for i := range ins {
		ins[i] = &backends.JobInsert{ID: "c" + time.Duration(i).String(), Queue: "q", Task: "t", Payload: []byte("{}")}
	}
	if _, err := b.Enqueue(ctx, backends.EnqueueParams{Jobs: ins}); err != nil {
		t.Fatal(err)
	}
	recs, err := b.Reserve(ctx, backends.ReserveParams{Queue: "q", Limit: n + 1, Lease: time.Minute, Worker: "w"})
	if err != nil || len(recs) != n+1 {
		t.Fatalf("Reserve = %d jobs, %v", len(recs), err)
	}
	sizes := &batchSizes{BatchCompleter: b}
	c := newCompleter(sizes)
	stop := make(chan struct{})
	ran := make(chan struct{})
	go func() { c.run(stop); close(ran) }()

	stale := recs[7].Lease
	stale.Token = "not-the-token"
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			l := recs[i].Lease
			if i == 7 {
				l = stale
			}
			errs[i] = c.complete(ctx, backends.CompleteParams{Lease: l, Result: []byte(`"ok"`)})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if i == 7 {
			if !errors.Is(err, job.ErrLeaseLost) {
				t.Fatalf("stale lease completed: %v, want ErrLeaseLost", err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("completion %d: %v", i, err)
		}
	}
	if err := c.complete(ctx, backends.CompleteParams{Lease: recs[n].Lease}); err != nil {
		t.Fatalf("lone completion: %v", err)
	}
	close(stop)
	<-ran
	if got := sizes.get(); slices.Max(got) < 2 || slices.Max(got) > maxCompleteBatch || got[len(got)-1] != 1 {
		t.Fatalf("batch sizes %v: want some of more than one, none over %d, the lone one alone", got, maxCompleteBatch)
	}
	for i, r := range recs {
		got, err := b.GetJob(ctx, backends.GetJobParams{ID: r.ID})
		if err != nil {
			t.Fatal(err)
		}
		want := job.Done
		if i == 7 {
			want = job.Running
		}
		if got.State != want {
			t.Fatalf("job %d is %s, want %s", i, got.State, want)
		}
	}
}

// batchSizes records the size of every batch written through it.
type batchSizes struct {
	backends.BatchCompleter
	mu    sync.Mutex
	sizes []int
}

func (s *batchSizes) CompleteMany(ctx context.Context, p backends.CompleteManyParams) ([]error, error) {
	s.mu.Lock()
	s.sizes = append(s.sizes, len(p.Jobs))
	s.mu.Unlock()
	return s.BatchCompleter.CompleteMany(ctx, p)
}

func (s *batchSizes) get() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sizes)
}
