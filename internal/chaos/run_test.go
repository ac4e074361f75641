package chaos_test

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/queue"
)

// outage is one crash-restart of the server, for telling the duplicates
// it caused from the others.
type outage struct{ from, to time.Time }

// stallLimit is how long the drain waits without any job finishing
// before it gives up and reports what is left.
const stallLimit = 45 * time.Second

// runChaos runs one backend's case: enqueuers and the bounded queue's
// hammer against workers that are killed every 1-3 s, now and then frozen
// past their lease, and a server crash-restarted twice; waiting jobs are
// corrupted in between. Then it accounts for every job.
func runChaos(t *testing.T, c chaosCase) {
	total := jobCount()
	o, ledgerPath, logs := openRun(t, c.spec)
	ledgerFile, err := os.OpenFile(ledgerPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer ledgerFile.Close()

	start := time.Now()
	var workers *fleet
	if c.spec.Kind == "memory" {
		workers = newFleet(memorySpawner(t, o.Backend, ledgerFile, logs))
	} else {
		workers = newFleet(processSpawner(t, c.spec, ledgerPath, logs))
	}
	defer workers.shutdown()

	// Enqueueing spans the chaos: 5 ms a job, at least 15 s (CI's 1,000),
	// so that kills and both restarts happen while enqueuers run.
	enq := &enqueuers{c: queue.NewClient(o.Backend, clientConfig()), total: total, batch: 1,
		span: max(15*time.Second, time.Duration(total)*5*time.Millisecond), done: make(chan struct{})}
	if o.insp != nil {
		enq.batch = 5
	}
	go enq.run()
	stopSampling := make(chan struct{})
	sampled := make(chan *depthSamples, 1)
	go func() { sampled <- sampleDepth(depthOf(o), stopSampling) }()

	led := &ledger{path: ledgerPath, jobs: map[string][]execution{}}
	var outages []outage
	restarts := []float64{0.3, 0.65} // fractions of the main queue enqueued
	corruptAt := 0.45
	var corrupted []*target
	var corrupting sync.WaitGroup
	kills, stops := 0, 0
	for enqueuing := true; enqueuing || led.finishedShare(enq) < 0.9; {
		time.Sleep(time.Duration(1000+rand.IntN(2000)) * time.Millisecond)
		select {
		case <-enq.done:
			enqueuing = false
		default:
		}
		led.read(t)
		share := float64(enq.progress.Load()) / float64(total)
		if corruptAt > 0 && share >= corruptAt && len(c.corrupt) > 0 {
			corruptAt = 0
			corrupting.Go(func() { corrupted = inject(t, enq, c.corrupt, total) })
		}
		if len(restarts) > 0 && share >= restarts[0] && c.server != nil {
			restarts = restarts[1:]
			from := time.Now()
			c.server.Crash()
			time.Sleep(500 * time.Millisecond) // clients see the server gone, not a blip
			c.server.Start()
			outages = append(outages, outage{from, time.Now()})
			continue
		}
		if rand.IntN(4) == 0 {
			workers.freezeOne()
			stops++
		} else {
			workers.killOne()
			kills++
		}
		if time.Since(start) > 20*time.Minute {
			t.Errorf("the chaos phase ran 20 minutes without 90%% of the jobs finishing")
			break
		}
	}
	chaosEnd := time.Now()
	<-enq.done
	corrupting.Wait()

	// Drain: until nothing waits or runs, or nothing has finished for
	// stallLimit (then the accounting says what is stuck).
	settled := settle(t, o, led, enq, corrupted, c)
	close(stopSampling)
	samples := <-sampled
	workers.shutdown()
	led.read(t)

	r := account(t, o, led, enq.log.all(), corrupted, workers, c)
	r.samples = *samples
	r.kills, r.stops, r.restarts = kills, stops, len(outages)
	r.outages = outages
	r.chaos, r.total = chaosEnd.Sub(start), time.Since(start)
	r.settled = settled
	r.classifyDuplicates(led, workers, outages, c.spec.Kind == "amqp" && c.spec.Store == "", c.spec.Kind == "amqp")
	r.report(t)
}

// openRun opens sp's backend for a run, logging to logs/test.log in a
// directory of the test's, beside the ledger's path; both close with the
// test.
func openRun(t *testing.T, sp spec) (o *opened, ledgerPath, logs string) {
	dir := t.TempDir()
	ledgerPath, logs = filepath.Join(dir, "ledger"), filepath.Join(dir, "logs")
	if err := os.Mkdir(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(logs, "test.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = logf.Close() })
	t.Cleanup(func() { keepFailedRun(t, dir) })
	o, err = open(context.Background(), sp, slog.New(slog.NewTextHandler(logf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = o.Close() })
	return o, ledgerPath, logs
}

// settle waits until every stored job has finished, or until no job has
// finished for stallLimit; it reports whether the former happened.
func settle(t *testing.T, o *opened, led *ledger, enq *enqueuers, corrupted []*target, c chaosCase) bool {
	last, lastChange := -1, time.Now()
	for {
		led.read(t)
		done := led.finished()
		if done != last {
			last, lastChange = done, time.Now()
		}
		if drained(t, o, led, enq, corrupted, c) {
			return true
		}
		if time.Since(lastChange) > stallLimit {
			return false
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// keepFailedRun copies a failed run's ledger and logs to
// $CONVEYOR_ARTIFACTS/chaos/<test>, before the test's directory goes.
func keepFailedRun(t *testing.T, dir string) {
	art := os.Getenv("CONVEYOR_ARTIFACTS")
	if !t.Failed() || art == "" {
		return
	}
	dst := filepath.Join(art, "chaos", strings.ReplaceAll(t.Name(), "/", "_"))
	if err := os.CopyFS(dst, os.DirFS(dir)); err != nil {
		t.Logf("keeping the run's logs: %v", err)
		return
	}
	t.Logf("ledger and logs kept in %s", dst)
}
