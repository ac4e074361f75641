package chaos_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/amqpbackend"
	"github.com/conveyorhq/conveyor/job"
)

// result is one backend's row of the report.
type result struct {
	name                             string
	acked, refused                   int
	ambFound, ambMissing, ambUnknown int // ambiguous enqueues: found afterwards, not found, not resolvable
	typedUnknown                     int // ambiguous errors that were *queue.OutcomeUnknownError naming the job
	finished, lost, stuck, wrongEnd  int
	refusedStored, phantomRuns       int
	executions                       int
	dups                             duplicates
	samples                          depthSamples
	exactBound                       bool
	corrupted, corruptBad, unapplied int            // unapplied: refused by the storage or no longer waiting
	phantom                          map[string]int // unfinished counts left at the end
	kills, stops, restarts           int
	outages                          []outage
	chaos, total                     time.Duration
	settled                          bool
	lossAllowed                      bool     // lost jobs are measured, not a failure (see chaosCase)
	lostIDs                          []string // examples of the lost jobs
	failover                         bool     // see chaosCase.failover
	unlogged                         int      // deleted hashes removed without the finder's log line (failover cases)
	problems                         []string
}

// problem records one failed expectation, with a few examples.
func (r *result) problem(format string, args ...any) {
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

// account checks every job the test enqueued or corrupted against the
// ledger and the backend, after the workers stopped.
func account(t *testing.T, o *opened, led *ledger, log []*enqueued, corrupted []*target, f *fleet, c chaosCase) *result {
	ctx := context.Background()
	r := &result{name: t.Name(), exactBound: o.insp != nil, phantom: map[string]int{}, lossAllowed: c.lossAllowed, failover: c.failover}
	lookup := func(id string) (*job.Record, error) {
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return o.insp.GetJob(lctx, backends.GetJobParams{ID: id})
	}
	dead := map[string]*job.Record{} // without a store, the dead letters are all there is to look at
	if o.insp == nil {
		for _, q := range []string{mainQueue, boundedQueue} {
			recs, err := o.amqp.ListDead(ctx, amqpbackend.DeadParams{Queue: q, Limit: 1 << 20})
			if err != nil {
				t.Fatalf("ListDead %s: %v", q, err)
			}
			for _, rec := range recs {
				dead[rec.ID] = rec
				if rec.Task == "" { // no job: its body names it (see amqpGarbage)
					if f := strings.Fields(string(rec.Payload)); len(f) > 0 {
						dead[f[len(f)-1]] = rec
					}
				}
			}
		}
	}
	var lost, stuck, wrong, refusedStored, phantomRuns []string
	errs := map[string]int{} // enqueue errors by text, IDs left out, for the log
	for _, e := range log {
		if e.err != nil {
			errs[idPattern.ReplaceAllString(e.err.Error(), "<id>")]++
		}
		if e.status == ambiguous && e.outcomeUnknown {
			r.typedUnknown++
		}
		expected := e.status == acked
		switch {
		case e.status == refused:
			r.refused++
		case e.status == ambiguous && o.insp == nil:
			r.ambUnknown++ // it may or may not exist: whatever it did is allowed
			continue
		case e.status == ambiguous:
			_, err := lookup(e.id)
			switch {
			case err == nil:
				r.ambFound++
				expected = true
			case errors.Is(err, job.ErrNotFound):
				r.ambMissing++
			default:
				r.ambUnknown++
				r.problem("ambiguous enqueue of %s could not be looked up: %v", e.id, err)
				continue
			}
		default:
			r.acked++
		}
		if !expected {
			if len(led.jobs[e.id]) > 0 {
				phantomRuns = append(phantomRuns, e.id)
			}
			if e.status == refused && o.insp != nil {
				if _, err := lookup(e.id); !errors.Is(err, job.ErrNotFound) {
					refusedStored = append(refusedStored, fmt.Sprintf("%s (%v)", e.id, err))
				}
			}
			continue
		}
		want := job.Done
		if e.args.Kind == perm {
			want = job.Dead
		}
		var rec *job.Record
		var err error
		if o.insp != nil {
			rec, err = lookup(e.id)
		} else if rec = dead[e.id]; rec == nil {
			err = job.ErrNotFound
			if want == job.Done && led.ranToEnd(e.id) {
				rec, err = &job.Record{State: job.Done}, nil // the broker forgets an acked job
			}
		}
		switch {
		case errors.Is(err, job.ErrNotFound):
			lost = append(lost, e.id)
		case err != nil:
			t.Fatalf("GetJob %s: %v", e.id, err)
		case !rec.State.Finished():
			stuck = append(stuck, fmt.Sprintf("%s (%s)", e.id, rec.State))
		case rec.State != want || !led.ranToEnd(e.id) || (want == job.Dead && rec.LastError() == nil):
			wrong = append(wrong, fmt.Sprintf("%s (%s %s, ran to end %v)", e.id, e.args.Kind, rec.State, led.ranToEnd(e.id)))
		default:
			r.finished++
		}
	}
	r.lost, r.stuck, r.wrongEnd, r.refusedStored, r.phantomRuns = len(lost), len(stuck), len(wrong), len(refusedStored), len(phantomRuns)
	if len(stuck) > 0 && o.insp != nil {
		explainStuck(t, o, led, f, stuck)
	}
	r.lostIDs = lost
	for what, ids := range map[string][]string{"stuck (not finished)": stuck,
		"finished in the wrong state": wrong, "refused yet stored": refusedStored, "never stored yet run": phantomRuns} {
		if len(ids) > 0 {
			r.problem("%d jobs %s: %s", len(ids), what, examples(ids))
		}
	}
	for text, n := range errs {
		t.Logf("%d enqueue errors: %s", n, text)
	}
	took, count := map[string]time.Duration{}, map[string]int{}
	for _, e := range log {
		took[e.queue] += e.took
		count[e.queue]++
	}
	for q, d := range took {
		t.Logf("queue %s: %d enqueues, %v each on average", q, count[q], d/time.Duration(count[q]))
	}
	r.checkCorrupted(t, o, led, corrupted, dead)
	r.checkPhantoms(ctx, o)
	return r
}

// explainStuck logs what is known of a few stuck jobs: the stored record,
// every run the ledger has, what was done to the workers that ran it, and
// each worker log line naming it (CONVEYOR_CHAOS_DEBUG=1 adds the
// backend's debug lines: dropped messages and their reasons).
func explainStuck(t *testing.T, o *opened, led *ledger, f *fleet, stuck []string) {
	files, _ := filepath.Glob(filepath.Join(filepath.Dir(led.path), "logs", "*.log"))
	for _, s := range stuck[:min(len(stuck), 5)] {
		id, _, _ := strings.Cut(s, " ")
		if rec, err := o.insp.GetJob(context.Background(), backends.GetJobParams{ID: id}); err == nil {
			t.Logf("stuck %s: stored %s, deliveries %d, attempts %d, started %s, lease expires %s, run at %s",
				id, rec.State, rec.Deliveries, rec.Attempts(), rec.StartedAt.Format(time.StampMilli),
				rec.Lease.ExpiresAt.Format(time.StampMilli), rec.RunAt.Format(time.StampMilli))
		}
		for _, e := range led.jobs[id] {
			t.Logf("stuck %s: ran on %s (%s), delivery %d, attempt %d, at %s: %s", id, e.who, f.fateOf(e.who), e.delivery, e.attempt, e.at.Format(time.StampMilli), e.outcome)
		}
		word := regexp.MustCompile(`\b` + id + `\b`)
		for _, file := range files {
			data, _ := os.ReadFile(file)
			for line := range strings.Lines(string(data)) {
				if word.MatchString(line) {
					t.Logf("stuck %s: %s: %s", id, filepath.Base(file), strings.TrimSpace(line))
				}
			}
		}
	}
}

// idPattern matches the test's job IDs in error texts.
var idPattern = regexp.MustCompile(`\b[jbx][0-9]+\b`)

func examples(ids []string) string {
	if len(ids) > 5 {
		return strings.Join(ids[:5], ", ") + fmt.Sprintf(" and %d more", len(ids)-5)
	}
	return strings.Join(ids, ", ")
}

// checkCorrupted holds every corrupted job to its expectation.
func (r *result) checkCorrupted(t *testing.T, o *opened, led *ledger, corrupted []*target, dead map[string]*job.Record) {
	logs := readLogs(t, filepath.Join(filepath.Dir(led.path), "logs"))
	logged := func(id string) bool { return regexp.MustCompile(`\b` + id + `\b`).MatchString(logs) }
	if n := strings.Count(logs, "stopped expiring its messages"); n > 0 {
		t.Logf("amqp: %d delay levels had stopped expiring their messages after a node stopped, and were nudged (amqpbackend/delaysweep.go)", n)
	}
	for _, tg := range corrupted {
		r.corrupted++
		if tg.expect == expectIntact {
			r.unapplied++
		}
		var rec *job.Record
		var err error
		if o.insp != nil {
			rec, err = o.insp.GetJob(context.Background(), backends.GetJobParams{ID: tg.id})
		} else if rec = dead[tg.id]; rec == nil {
			err = job.ErrNotFound
		}
		isDead := err == nil && rec.State == job.Dead && rec.LastError() != nil && rec.LastError().Error != ""
		gone := errors.Is(err, job.ErrNotFound)
		if gone && r.lossAllowed && tg.expect != expectGone && tg.either != expectGone && len(led.jobs[tg.id]) == 0 {
			// Acknowledged, never run, gone: a failover's loss, measured
			// with the main queue's.
			r.lost++
			r.lostIDs = append(r.lostIDs, tg.id)
			continue
		}
		ran := led.ranToEnd(tg.id)
		state := fmt.Sprint(err)
		if err == nil {
			state = string(rec.State)
		}
		expect := tg.expect
		if expect == expectEither {
			expect = tg.either
			if err == nil && rec.State == job.Done && ran {
				expect = expectIntact // the damage did not land
			}
		}
		switch expect {
		case expectDead:
			if !isDead || ran {
				tg.verdict = fmt.Sprintf("want dead with a reason, not run; got %s, ran %v", state, ran)
			}
		case expectGone:
			if !gone || len(led.jobs[tg.id]) > 0 {
				tg.verdict = fmt.Sprintf("want gone, never run; got %s, runs %d", state, len(led.jobs[tg.id]))
			} else if !logged(tg.id) && r.failover {
				r.unlogged++ // removed, but its finder's reply was lost with the node
			} else if !logged(tg.id) {
				tg.verdict = "gone, but no process logged its ID"
			}
		case expectRestored:
			if err != nil || rec.State != job.Done || !ran {
				tg.verdict = fmt.Sprintf("want restored and done; got %s, ran %v", state, ran)
			} else if !logged(tg.id) {
				tg.verdict = "restored, but no process logged its ID"
			}
		case expectIntact:
			if err != nil || rec.State != job.Done || !ran {
				tg.verdict = fmt.Sprintf("damage not applied (%s): want done; got %s, ran %v", tg.note, state, ran)
			}
		}
		if tg.verdict != "" {
			r.corruptBad++
			r.problem("corrupted job %s in %s (%s): %s", tg.id, tg.queue, tg.how, tg.verdict)
		}
	}
}

// readLogs is every process's log, for the IDs of jobs found damaged.
func readLogs(t *testing.T, dir string) string {
	files, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, f := range files {
		data, _ := os.ReadFile(f)
		b.Write(data)
	}
	return b.String()
}

// checkPhantoms: once every job finished, no count of waiting or running
// jobs may be left: not in the backend's counts, not in the depth bound's
// counter, not in the broker.
func (r *result) checkPhantoms(ctx context.Context, o *opened) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if o.insp != nil {
		depths, err := depthsAtEnd(ctx, o)
		if err != nil {
			r.problem("QueueStats at the end: %v", err)
		}
		for q, n := range depths {
			if n != 0 {
				r.phantom[q] = n
			}
		}
	}
	if o.kv != nil {
		// A worker killed between finishing a job and giving its depth
		// slot back leaks the slot until the store's janitor recounts
		// (JanitorEvery, 3s here): that repair is the guarantee, so the
		// counter gets a few recounts' time to come back to zero.
		for _, q := range []string{mainQueue, boundedQueue} {
			deadline := time.Now().Add(4 * amqpJanitorEvery)
			for {
				n, err := depthCounter(ctx, o, q)
				if err == nil && n == 0 {
					break
				}
				if time.Now().After(deadline) {
					r.phantom[q+" depth counter"] = n
					break
				}
				time.Sleep(200 * time.Millisecond) // the janitor announces nothing
			}
		}
	}
	if o.insp == nil {
		for _, q := range []string{mainQueue, boundedQueue} {
			if n, err := brokerReady(ctx, o, q); err != nil || n != 0 {
				r.phantom[q+" ready in the broker"] = n
			}
		}
	}
	if len(r.phantom) > 0 {
		r.problem("unfinished counts left with every job finished: %v", r.phantom)
	}
}

// report logs the row, appends it to CONVEYOR_CHAOS_REPORT if set (the
// source of docs/reliability.md) and fails the test on any problem.
func (r *result) report(t *testing.T) {
	switch {
	case r.lost > 0 && r.lossAllowed:
		t.Logf("loss window: %d acknowledged jobs lost in the failovers: %s", r.lost, examples(r.lostIDs))
	case r.lost > 0:
		r.problem("%d jobs lost (stored, never finished, gone): %s", r.lost, examples(r.lostIDs))
	}
	if !r.settled {
		r.problem("jobs stopped finishing: nothing finished for %s", stallLimit)
	}
	if r.dups.sameDelivery > 0 {
		r.problem("%d runs had the delivery number of another run of their job (two holders of one lease, or a count gone back): %s",
			r.dups.sameDelivery, examples(r.dups.examples))
	}
	if r.exactBound && r.samples.over > 0 {
		r.problem("%d of %d depth samples of the bounded queue were over its bound %d (worst %d)",
			r.samples.over, r.samples.n, maxDepth, r.samples.worst)
	}
	ok := "ok"
	if len(r.problems) > 0 {
		ok = "FAIL"
	}
	bound := "exact"
	if !r.exactBound {
		bound = "broker's"
	}
	row := fmt.Sprintf("| %s | %s | %d | %d | %d/%d/%d (%d typed) | %d | %d | %d | %d | %d/%d/%d/%d | %d (+%d explained) | %s: %d/%d over, worst %d | %d (%d not applied), %d bad, %d unlogged | %v | %d/%d/%d | %s |",
		strings.TrimPrefix(r.name, "TestChaos/"), ok, r.acked, r.refused, r.ambFound, r.ambMissing, r.ambUnknown, r.typedUnknown,
		r.finished, r.lost, r.stuck, r.executions, r.dups.kill, r.dups.stop, r.dups.restart, r.dups.other, r.dups.sameDelivery, r.dups.sameDeliveryCrash,
		bound, r.samples.over, r.samples.n, r.samples.worst, r.corrupted, r.unapplied, r.corruptBad, r.unlogged, len(r.phantom) > 0,
		r.kills, r.stops, r.restarts, r.total.Round(time.Second))
	t.Log("| backend | result | stored | refused | ambiguous found/missing/unresolvable | finished | lost | stuck | executions | duplicates kill/stop/restart/other | same delivery | bound samples | corrupted | phantom counts | kills/stops/restarts | time |")
	t.Log(row)
	if path := os.Getenv("CONVEYOR_CHAOS_REPORT"); path != "" {
		if f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			fmt.Fprintln(f, row)
			f.Close()
		}
	}
	for _, p := range r.problems {
		t.Error(p)
	}
}
