package chaos_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/internal/testenv"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/workflow"
)

// chordCount is the chords per backend: 100 as CI runs it, 1,000 in
// scripts/chaos (CONVEYOR_CHAOS_CHORDS).
func chordCount() int {
	if n, err := strconv.Atoi(os.Getenv("CONVEYOR_CHAOS_CHORDS")); err == nil && n > 0 {
		return n
	}
	return 100
}

// chordCase is one server backend under the chord chaos.
type chordCase struct {
	spec    spec
	servers []crasher // crash-restarted once, at half the chords enqueued
}

// TestChord runs chords of 10 members on every server backend under
// worker processes that run the workflow engine and are
// SIGKILLed every 1-3 s or SIGSTOPped past their lease, with the server
// crash-restarted once, then checks every chord from the ledger and the
// backend (accountChords).
func TestChord(t *testing.T) {
	if os.Getenv("CI") == "true" && os.Getenv("CONVEYOR_SKIP_SERVERS") == "1" {
		t.Fatal("CI runs the chord chaos on every server backend: CONVEYOR_SKIP_SERVERS=1 would skip all but SQLite")
	}
	cases := map[string]func(t *testing.T) chordCase{
		"redis": func(t *testing.T) chordCase {
			srv := startRedis(t)
			return chordCase{spec: spec{Kind: "redis", URL: "redis://" + srv.Addr + "/0", Prefix: "conveyor"}, servers: []crasher{srv}}
		},
		"postgres": func(t *testing.T) chordCase {
			srv := startPostgres(t)
			return chordCase{spec: spec{Kind: "postgres", URL: srv.URL + "?pool_max_conns=16"}, servers: []crasher{srv}}
		},
		// The job-state store, which holds the workflow records, is a
		// Redis of the test's own. As in TestChaos, the broker is
		// restarted only where this run may (scripts/chaos). The store is
		// crash-restarted only with CONVEYOR_CHAOS_RESTART_STORE=1.
		"amqp-store": func(t *testing.T) chordCase {
			store := startRedis(t)
			sp := spec{Kind: "amqp", URL: testenv.RabbitMQURL(t), Prefix: uniquePrefix(), Store: "redis://" + store.Addr + "/0"}
			c := chordCase{spec: sp}
			if os.Getenv("CONVEYOR_CHAOS_RESTART_STORE") == "1" {
				c.servers = append(c.servers, store)
			}
			if b := broker(t); b != nil {
				c.servers = append(c.servers, b)
			}
			return c
		},
	}
	// Not SQLite: its one writer, shared by four processes under the race
	// detector, made 15 s enqueues time out and took over 5 minutes for
	// CI's 100 chords on the 2-core machine.
	for _, name := range []string{"redis", "postgres", "amqp-store"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := cases[name](t)
			if c.spec.Kind == "amqp" {
				t.Cleanup(func() { deleteAMQPEntities(t, c.spec) })
			}
			runChords(t, c)
		})
	}
}

// chordID is chord n's workflow ID.
func chordID(n int) string { return "chord-" + strconv.Itoa(n) }

// chordEnqueuer enqueues the chords, paced so that enqueueing spans the
// chaos phase, each under its own workflow ID: an Enqueue that fails (the
// server is being restarted) is tried again with the same ID, which can
// only complete the chord, never make a second.
type chordEnqueuer struct {
	c        *queue.Client
	total    int
	span     time.Duration
	progress atomic.Int64 // chords enqueued, or given up on
	retries  atomic.Int64 // Enqueue calls that failed and were tried again
	dupes    atomic.Int64 // retries answered Duplicate: the failed call had stored it
	done     chan struct{}

	mu     sync.Mutex
	failed map[int]error  // chords no Enqueue stored within chordEnqueueFor
	errs   map[string]int // the failed calls' errors, IDs left out, for the log
	logf   func(format string, args ...any)
}

var chordIDPattern = regexp.MustCompile(`chord-[0-9]+`)

// chordEnqueueFor bounds the retries of one chord's Enqueue.
const chordEnqueueFor = 2 * time.Minute

func (e *chordEnqueuer) run() {
	defer close(e.done)
	var wg sync.WaitGroup
	var next atomic.Int64
	start := time.Now()
	for range mainEnqueuers {
		wg.Go(func() {
			for {
				n := int(next.Add(1) - 1)
				if n >= e.total {
					return
				}
				time.Sleep(time.Until(start.Add(e.span * time.Duration(n) / time.Duration(e.total))))
				e.enqueue(n)
				e.progress.Add(1)
			}
		})
	}
	wg.Wait()
}

func (e *chordEnqueuer) enqueue(n int) {
	deadline := time.Now().Add(chordEnqueueFor)
	for retried := false; ; retried = true {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		ref, err := workflow.Enqueue(ctx, e.c, chordOf(n), &workflow.Options{ID: chordID(n)})
		cancel()
		if err == nil {
			if ref.Duplicate && retried {
				e.dupes.Add(1)
			}
			if ref.Duplicate && !retried {
				err = fmt.Errorf("the first Enqueue of %s found it stored", chordID(n))
			} else {
				return
			}
		}
		if time.Now().After(deadline) {
			e.mu.Lock()
			e.failed[n] = err
			e.mu.Unlock()
			return
		}
		e.retries.Add(1)
		e.mu.Lock()
		key := chordIDPattern.ReplaceAllString(err.Error(), "<id>")
		if e.errs[key]++; e.errs[key] == 1 {
			e.logf("enqueue of %s failed, trying again: %v", chordID(n), err)
		}
		e.mu.Unlock()
		time.Sleep(200 * time.Millisecond)
	}
}

// runChords runs one backend's chord case: chords enqueued over the chaos
// phase while workers are killed or frozen every 1-3 s and the servers
// crash-restarted once, then a drain until every chord's workflow is
// final, then the account.
func runChords(t *testing.T, c chordCase) {
	total := chordCount()
	o, ledgerPath, logs := openRun(t, c.spec)
	client := queue.NewClient(o.Backend, queue.Config{})

	start := time.Now()
	workers := newFleet(processSpawner(t, c.spec, ledgerPath, logs, "CONVEYOR_CHAOS_MODE=chord"))
	defer workers.shutdown()
	// 150 ms a chord, at least 15 s (CI's 100), so that kills and the
	// restart happen while chords are enqueued and running.
	enq := &chordEnqueuer{c: client, total: total, span: max(15*time.Second, time.Duration(total)*20*time.Millisecond),
		done: make(chan struct{}), failed: map[int]error{}, errs: map[string]int{}, logf: t.Logf}
	go enq.run()

	led := &ledger{path: ledgerPath, jobs: map[string][]execution{}}
	var outages []outage
	restartAt := 0.5 // of the chords enqueued
	kills, stops := 0, 0
	for enqueuing := true; enqueuing || callbacksOK(led, total) < 0.9; {
		time.Sleep(time.Duration(1000+rand.IntN(2000)) * time.Millisecond)
		select {
		case <-enq.done:
			enqueuing = false
		default:
		}
		led.read(t)
		if restartAt > 0 && float64(enq.progress.Load())/float64(total) >= restartAt && len(c.servers) > 0 {
			restartAt = 0
			for _, s := range c.servers {
				from := time.Now()
				s.Crash()
				time.Sleep(500 * time.Millisecond) // clients see the server gone, not a blip
				s.Start()
				outages = append(outages, outage{from, time.Now()})
			}
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
			t.Errorf("the chaos phase ran 20 minutes without 90%% of the callbacks running")
			break
		}
	}
	<-enq.done

	settled := settleChords(t, client, led, enq)
	workers.shutdown()
	led.read(t)
	r := accountChords(t, o, client, led, enq, workers, outages)
	r.kills, r.stops, r.restarts = kills, stops, len(outages)
	r.settled, r.total = settled, time.Since(start)
	r.logStuck(t, logs)
	r.report(t)
}

// callbacksOK is the share of the chords whose callback has run to its end.
func callbacksOK(led *ledger, total int) float64 {
	n := 0
	for c := range total {
		if led.ranToEnd(workflow.JobID(chordID(c), callbackStep)) {
			n++
		}
	}
	return float64(n) / float64(total)
}

// settleChords waits until every enqueued chord's workflow is final, or
// until none has become final for stallLimit; it reports whether the
// former happened.
func settleChords(t *testing.T, c *queue.Client, led *ledger, enq *chordEnqueuer) bool {
	total := enq.total
	final := map[int]bool{}
	for n := range enq.failed { // reported by the account
		final[n] = true
	}
	last, lastChange := -1, time.Now()
	for {
		led.read(t)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		for n := range total {
			if final[n] {
				continue
			}
			if in, err := workflow.Status(ctx, c, chordID(n)); err == nil && in.State.Final() {
				final[n] = true
			}
		}
		cancel()
		if len(final) != last {
			last, lastChange = len(final), time.Now()
		}
		if len(final) == total {
			return true
		}
		if time.Since(lastChange) > stallLimit {
			return false
		}
		time.Sleep(500 * time.Millisecond)
	}
}
