package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
)

// retentionRows are the backends that keep finished jobs in the store the
// queue reads from (memory keeps them too, but in its own heap).
var retentionRows = map[string]bool{"postgres": true, "sqlite": true, "redis": true}

// growRetention measures the batch enqueue and the burn-down of
// retainJobs jobs with no finished job kept and with retained ones, the
// janitor off; then, with the retained jobs two days old, how fast the
// janitor's own Tidy, called back to back, prunes them.
func growRetention(ctx context.Context, cfg config, g *growConfig, run []target) ([]*growResult, error) {
	sizes := []int{0, g.retained}
	labels := []string{"0 retained", sizeLabel(g.retained, " retained")}
	c := cfg.concurrency[0]
	res := newGrowResult("retention", labels,
		fmt.Sprintf("burn-down of %d jobs, jobs/s (one worker, c=%d)", g.retainJobs, c),
		fmt.Sprintf("batch enqueue of %d jobs, jobs/s", g.retainJobs),
		"janitor pruning, jobs/s (Tidy back to back; PostgreSQL and SQLite)",
		"seeding the retained jobs, jobs/s (enqueue, reserve, complete a thousand at a time)",
		"PostgreSQL: seconds from the seeding's end to the end of the autovacuum it waits for")
	for round := range cfg.rounds {
		for i, kept := range sizes {
			for _, t := range run {
				if !retentionRows[t.name] {
					continue
				}
				f, err := retentionRun(ctx, cfg, t, kept, g.retainJobs, c)
				if err != nil {
					return nil, fmt.Errorf("%s with %d retained: %w", t.name, kept, err)
				}
				res.add(0, t.name, "", i, f.burn)
				res.add(1, t.name, "", i, f.enq)
				if f.prune > 0 {
					res.add(2, t.name, "", i, f.prune)
				}
				if f.seed > 0 {
					res.add(3, t.name, "", i, f.seed)
				}
				if f.vacuum > 0 {
					res.add(4, t.name, "", i, f.vacuum)
				}
				progress("retention", t.name, labels[i], round, "burn-down/s", f.burn)
			}
		}
	}
	return []*growResult{res}, nil
}

type retentionFigures struct{ burn, enq, prune, seed, vacuum float64 }

func retentionRun(ctx context.Context, cfg config, t target, kept, jobs, c int) (retentionFigures, error) {
	var f retentionFigures
	clock := &shiftClock{}
	clock.back.Store(int64(48 * time.Hour))
	b, done, _, err := growOpen(ctx, cfg, t, growOpts{clock: clock, janitorEvery: -1})
	if err != nil {
		return f, err
	}
	defer done()
	if kept > 0 {
		start := time.Now()
		if err := seedFinished(ctx, b, kept); err != nil {
			return f, fmt.Errorf("seeding: %w", err)
		}
		f.seed = float64(kept) / time.Since(start).Seconds()
		if t.name == "postgres" {
			start = time.Now()
			if err := awaitAutovacuum(ctx, cfg, conveyorSchema+".jobs"); err != nil {
				return f, err
			}
			f.vacuum = time.Since(start).Seconds()
		}
	}
	clock.back.Store(0)
	if f.enq, err = enqueueBatch(ctx, b, jobs, 1000, noopArgs{}); err != nil {
		return f, err
	}
	if f.burn, err = burnDown(ctx, b, jobs, c); err != nil {
		return f, err
	}
	if kept > 0 && t.name != "redis" { // Redis expires finished jobs' hashes by their TTL, on its own
		f.prune, err = pruneRate(ctx, b, kept, jobs)
	}
	return f, err
}

// seedFinished makes n done jobs the way a worker does, a thousand at a
// time: the backend's batch enqueue, one Reserve and one CompleteMany.
func seedFinished(ctx context.Context, b backends.Backend, n int) error {
	client := queue.NewClient(b, queue.Config{})
	bc, batched := b.(backends.BatchCompleter)
	for made := 0; made < n; {
		k := min(1000, n-made)
		reqs := make([]queue.Request, k)
		for i := range reqs {
			reqs[i] = noop.Request(noopArgs{}, nil)
		}
		if _, err := client.EnqueueMany(ctx, reqs...); err != nil {
			return err
		}
		for got := 0; got < k; {
			recs, err := b.Reserve(ctx, backends.ReserveParams{Queue: queue.DefaultQueue, Limit: k - got, Lease: time.Hour, Worker: "bench-seed"})
			if err != nil {
				return err
			}
			if len(recs) == 0 {
				return fmt.Errorf("reserve found none of %d enqueued jobs", k-got)
			}
			ps := make([]backends.CompleteParams, len(recs))
			for i, r := range recs {
				ps[i] = backends.CompleteParams{Lease: r.Lease}
			}
			if batched {
				if _, err := bc.CompleteMany(ctx, backends.CompleteManyParams{Jobs: ps}); err != nil {
					return err
				}
			} else {
				for _, p := range ps {
					if err := b.Complete(ctx, p); err != nil {
						return err
					}
				}
			}
			got += len(recs)
		}
		made += k
	}
	return nil
}

// pruneRate calls the backend's janitor back to back until only the
// recent done jobs are left, and returns the old ones pruned per second.
func pruneRate(ctx context.Context, b backends.Backend, old, recent int) (float64, error) {
	tidy, ok := b.(interface{ Tidy(context.Context) error })
	ins, iok := b.(backends.Inspector)
	if !ok || !iok {
		return 0, fmt.Errorf("%T has no Tidy or no QueueStats", b)
	}
	start := time.Now()
	deadline := start.Add(time.Duration(old/500+60) * time.Second)
	for time.Now().Before(deadline) {
		if err := tidy.Tidy(ctx); err != nil {
			return 0, err
		}
		stats, err := ins.QueueStats(ctx, backends.QueueStatsParams{})
		if err != nil {
			return 0, err
		}
		doneLeft := 0
		for _, s := range stats {
			doneLeft += s.Counts[job.Done]
		}
		if doneLeft <= recent {
			return float64(old) / time.Since(start).Seconds(), nil
		}
	}
	return 0, fmt.Errorf("the janitor had not pruned %d jobs in %s", old, time.Since(start).Round(time.Second))
}

// awaitAutovacuum waits until an autovacuum of table has started and
// finished after the call. Retained jobs finished two days ago, and in a
// live store autovacuum has long removed the dead versions their writes
// left; the seeding has just made them all. Measuring before a vacuum
// would time the walk over a million fresh dead index entries, not what
// retention costs (docs/benchmarks.md, Retention).
func awaitAutovacuum(ctx context.Context, cfg config, table string) error {
	conn, err := pgx.Connect(ctx, cfg.postgresURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	const q = `SELECT s.autovacuum_count, EXISTS (SELECT 1 FROM pg_stat_progress_vacuum p WHERE p.relid = s.relid)
		FROM pg_stat_user_tables s WHERE s.relid = $1::regclass`
	var count int64
	var running bool
	if err := conn.QueryRow(ctx, q, table).Scan(&count, &running); err != nil {
		return err
	}
	want := count + 1
	if running { // started before the seeding ended: wait for the next one
		want++
	}
	deadline := time.Now().Add(10 * time.Minute)
	for time.Now().Before(deadline) {
		if err := conn.QueryRow(ctx, q, table).Scan(&count, &running); err != nil {
			return err
		}
		if count >= want {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond): // polling the server's statistics; there is no signal to wait on
		}
	}
	return fmt.Errorf("no autovacuum of %s finished within 10 minutes of the seeding", table)
}
