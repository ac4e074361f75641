package chaos_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

// execution is one ledger line: one run of a handler.
type execution struct {
	id, kind, who     string
	delivery, attempt int
	at                time.Time
	outcome           string // ok, fail or perm
}

// ledger is the append-only file every handler writes to, read as it
// grows.
type ledger struct {
	path  string
	off   int64
	lines int
	jobs  map[string][]execution
}

// read takes in the lines written since the last read. A line is taken
// only once its newline is there.
func (l *ledger) read(t *testing.T) {
	t.Helper()
	f, err := os.Open(l.path)
	if os.IsNotExist(err) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(l.off, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	end := bytes.LastIndexByte(b, '\n') + 1
	l.off += int64(end)
	for _, line := range strings.Split(string(b[:end]), "\n") {
		if line == "" {
			continue
		}
		e, err := parseExecution(line)
		if err != nil {
			t.Fatalf("ledger line %q: %v", line, err)
		}
		l.jobs[e.id] = append(l.jobs[e.id], e)
		l.lines++
	}
}

func parseExecution(line string) (execution, error) {
	f := strings.Fields(line)
	if len(f) != 7 {
		return execution{}, fmt.Errorf("%d fields, want 7", len(f))
	}
	e := execution{id: f[0], kind: f[1], who: f[2], outcome: f[6]}
	var ms int64
	var errs [3]error
	e.delivery, errs[0] = strconv.Atoi(f[3])
	e.attempt, errs[1] = strconv.Atoi(f[4])
	ms, errs[2] = strconv.ParseInt(f[5], 10, 64)
	e.at = time.UnixMilli(ms)
	for _, err := range errs {
		if err != nil {
			return e, err
		}
	}
	return e, nil
}

// ranToEnd reports whether some run of the job reached its final outcome:
// success, or the permanent failure that dead-letters it.
func (l *ledger) ranToEnd(id string) bool {
	for _, e := range l.jobs[id] {
		if e.outcome == "ok" || e.outcome == "perm" {
			return true
		}
	}
	return false
}

func (l *ledger) finished() int {
	n := 0
	for id := range l.jobs {
		if l.ranToEnd(id) {
			n++
		}
	}
	return n
}

// finishedShare is the part of the jobs stored so far whose handler ran to
// its end.
func (l *ledger) finishedShare(enq *enqueuers) float64 {
	stored, done := 0, 0
	for _, e := range enq.log.all() {
		if e.status == acked {
			stored++
			if l.ranToEnd(e.id) {
				done++
			}
		}
	}
	if stored == 0 {
		return 0
	}
	return float64(done) / float64(stored)
}

// drained reports whether nothing is left to run: no job waits or runs in
// either queue (by the backend's counts) and every corrupted job has met
// its fate, or, where the backend cannot count, every stored job ran to
// its end and the broker holds nothing.
//
// The counts alone are not enough: a job whose store record the damage
// deleted is counted nowhere until a worker takes its message and restores
// it, and a job damaged just as it left the waiting set finishes a little
// later, so a run judged by counts could end before either did.
func drained(t *testing.T, o *opened, led *ledger, enq *enqueuers, corrupted []*target, c chaosCase) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if o.insp != nil {
		depths, err := depthsAtEnd(ctx, o)
		return err == nil && depths[mainQueue] == 0 && depths[boundedQueue] == 0 &&
			targetsSettled(ctx, t, o, led, corrupted, c)
	}
	for _, e := range enq.log.all() {
		if e.status == acked && !led.ranToEnd(e.id) {
			return false
		}
	}
	for _, q := range []string{mainQueue, boundedQueue} {
		if n, err := brokerReady(ctx, o, q); err != nil || n != 0 {
			return false
		}
	}
	return true
}

// targetsSettled reports whether every corrupted job has reached a state
// it cannot leave by itself: finished, or gone with its finder's log line
// written (checkCorrupted then judges whether that state is the one its
// damage calls for). A job that is not found may still be restored from
// its message, unless the case may lose jobs; a failover's finder may lose
// its log line with the node (chaosCase.failover), so there gone suffices.
func targetsSettled(ctx context.Context, t *testing.T, o *opened, led *ledger, corrupted []*target, c chaosCase) bool {
	needLog := false
	for _, tg := range corrupted {
		rec, err := o.insp.GetJob(ctx, backends.GetJobParams{ID: tg.id})
		switch {
		case err == nil && rec.State.Finished():
		case errors.Is(err, job.ErrNotFound) && tg.expect == expectGone:
			needLog = needLog || !c.failover
		case errors.Is(err, job.ErrNotFound) && c.lossAllowed:
		default:
			return false
		}
	}
	if !needLog {
		return true
	}
	logs := readLogs(t, filepath.Join(filepath.Dir(led.path), "logs"))
	for _, tg := range corrupted {
		if tg.expect == expectGone && !strings.Contains(logs, tg.id) {
			return false
		}
	}
	return true
}

// depthsAtEnd is each queue's count of unfinished jobs, in any state that
// is not final, including states no job should have.
func depthsAtEnd(ctx context.Context, o *opened) (map[string]int, error) {
	st, err := o.insp.QueueStats(ctx, backends.QueueStatsParams{})
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, s := range st {
		out[s.Queue] = s.Depth()
	}
	return out, nil
}

// duplicates counts the runs beyond the first of one attempt of a job, by
// what made its earlier run not count.
type duplicates struct {
	kill, stop, restart, other int
	// sameDelivery counts runs that shared a delivery number with another
	// run of the job outside a server's crash: two workers held one lease,
	// or the count went back. It must be zero. sameDeliveryCrash counts
	// those next to a crash-restart, which may lose the count's last
	// change, and those of superseded messages no store could detect.
	sameDelivery, sameDeliveryCrash int
	examples                        []string
}

// classifyDuplicates: each attempt of a job should run once. A rerun of an
// attempt follows a run whose outcome never reached the backend: its
// worker was killed (SIGKILL), frozen past its lease (SIGSTOP), ran while
// the server was crashed and restarted, or lost its lease otherwise (load).
//
// Without a job-state store, an AMQP backend cannot tell a message a retry
// superseded from the current one: when a worker dies between publishing
// the retry and acking the old delivery, both run, and their delivery
// numbers, counted per message, may meet (staleRuns). With a store the
// same happens when the worker is frozen (SIGSTOP) between publishing the
// retry and recording it: its lease runs out, the old delivery is claimed
// and run again under the next number, which the retry's message carries
// too (amqpRetry; seen in CI). Neither is two holders of one lease.
func (r *result) classifyDuplicates(led *ledger, f *fleet, outages []outage, staleRuns, amqpRetry bool) {
	during := func(at time.Time) bool {
		for _, o := range outages {
			if at.After(o.from.Add(-time.Second)) && at.Before(o.to.Add(lease+time.Second)) {
				return true
			}
		}
		return false
	}
	d := &r.dups
	for id, es := range led.jobs {
		r.executions += len(es)
		seen := map[int]execution{}
		for _, e := range es {
			prev, dup := seen[e.delivery]
			switch {
			case dup && (staleRuns || during(prev.at) || during(e.at) ||
				amqpRetry && (f.fateOf(prev.who) == "stopped" || f.fateOf(e.who) == "stopped")):
				// A backend may commit a reservation without waiting for
				// its flush (PostgreSQL's Reserve does): a crash loses it,
				// and the job's next delivery has the same number.
				d.sameDeliveryCrash++
			case dup:
				d.sameDelivery++
				d.examples = append(d.examples, fmt.Sprintf("%s delivery %d: %s", id, e.delivery, describe(es)))
			}
			seen[e.delivery] = e
		}
		// The ledger is in order of writing, not of delivery: a stopped
		// worker writes its line when it resumes, after the next delivery.
		es = slices.Clone(es)
		slices.SortFunc(es, func(x, y execution) int {
			if x.attempt != y.attempt {
				return x.attempt - y.attempt
			}
			return x.delivery - y.delivery
		})
		for i := 1; i < len(es); i++ {
			prev := es[i-1]
			if prev.attempt != es[i].attempt {
				continue
			}
			switch {
			case f.fateOf(prev.who) == "killed":
				d.kill++
			case f.fateOf(prev.who) == "stopped":
				d.stop++
			case during(prev.at):
				d.restart++
			default:
				d.other++
			}
		}
	}
}

// describe lists a job's runs for a failure message.
func describe(es []execution) string {
	var parts []string
	for _, e := range es {
		parts = append(parts, fmt.Sprintf("%s delivery %d attempt %d %s at %s", e.who, e.delivery, e.attempt, e.outcome, e.at.Format("15:04:05.000")))
	}
	return "[" + strings.Join(parts, "; ") + "]"
}
