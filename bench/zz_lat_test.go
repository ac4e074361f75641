package main

import (
	"context"
	"fmt"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
	"os"
	"path/filepath"
	"runtime/trace"
	"slices"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends/sqlitebackend"
)

func TestZZSQLiteLatency(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b, err := sqlitebackend.Open(ctx, sqlitebackend.Config{Path: filepath.Join(dir, "bench.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if p := os.Getenv("ZZTRACE"); p != "" {
		f, _ := os.Create(p)
		trace.Start(f)
		defer func() { trace.Stop(); f.Close() }()
	}
	rec, err := steadyLatency(ctx, b, 2000, 5*time.Second, 50)
	if err != nil {
		t.Fatal(err)
	}
	s := slices.Clone(rec.lat)
	slices.Sort(s)
	fmt.Println("p50", rec.lat.quantile(.5), "p99", rec.lat.quantile(.99), "max", s[len(s)-1])
	rec0 := slices.Min(rec.at)
	for _, p := range rec.series() {
		if p.latency > 5*time.Millisecond {
			fmt.Printf("LAT %d %v\n", (rec0+int64(p.at))/1e6%100000, p.latency)
		}
	}
}

func TestZZPGLatency(t *testing.T) {
	ctx := context.Background()
	b, done, err := openPostgres(ctx, config{postgresURL: os.Getenv("CONVEYOR_POSTGRES_URL")})
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	rec, err := steadyLatency(ctx, b, 2000, 5*time.Second, 50)
	if err != nil {
		t.Fatal(err)
	}
	s := slices.Clone(rec.lat)
	slices.Sort(s)
	fmt.Println("p50", rec.lat.quantile(.5), "p90", rec.lat.quantile(.9), "p99", rec.lat.quantile(.99), "max", s[len(s)-1])
}

func TestZZPGSplit(t *testing.T) {
	ctx := context.Background()
	b, done, err := openPostgres(ctx, config{postgresURL: os.Getenv("CONVEYOR_POSTGRES_URL")})
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	rec := newRecorder(10000)
	w := worker.New(b, worker.Config{Concurrency: 50})
	worker.Register(w, noop, func(_ context.Context, a noopArgs) (queue.None, error) {
		rec.record(a.At)
		return queue.None{}, nil
	})
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer w.Stop(ctx)
	c := queue.NewClient(b, queue.Config{})
	var enq latencies
	err = atRate(2000, rec.total, func() error {
		t0 := time.Now()
		_, err := noop.Enqueue(ctx, c, noopArgs{At: t0.UnixNano()}, nil)
		enq = append(enq, time.Since(t0))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	rec.wait()
	fmt.Println("total p50", rec.lat.quantile(.5), "p90", rec.lat.quantile(.9), "p99", rec.lat.quantile(.99))
	fmt.Println("enqueue p50", enq.quantile(.5), "p90", enq.quantile(.9), "p99", enq.quantile(.99))
}
