package chaos_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/workflow"
)

// chordResult is one backend's row of the chord report.
type chordResult struct {
	name                      string
	chords, notEnqueued       int
	enqRetries, enqDuplicates int64
	done                      int // workflows ended done
	unfinishedSteps           int // steps left blocked or enqueued, or not done
	membersLost, wrongJobs    int // step jobs not found; found in the wrong state or with the wrong result
	callbackRuns, readErrs    int // callback runs in all; those that could not read their results
	wrong, early              int // callback runs that received wrong results; that ran before a member had
	cb, members               duplicates
	memberRuns                int
	openMarkers, phantom      int
	kills, stops, restarts    int
	total                     time.Duration
	settled                   bool
	stuck                     []string // chords not done, whose log lines the report shows
	problems                  []string
}

func (r *chordResult) problem(format string, args ...any) {
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

// accountChords checks every chord, after the workers stopped, against the
// ledger and the backend:
//
//   - its workflow is done, with every step done (none blocked or
//     enqueued), and no workflow is left open (the reconciler's markers);
//   - every member's job is there (none lost), done, with its value;
//   - its callback's job is done with the sum of the members' values, and
//     every run of the callback received exactly the members' 10 results,
//     in order, and began after each member had run to success;
//   - the callback ran once per delivery lease: no two runs share a
//     delivery number (two holders of one lease). Each run of an attempt
//     after the first is counted by what took the earlier run's lease: a
//     SIGKILL, a SIGSTOP past the lease, the server's crash-restart, or
//     other (a lease lost under load: on an overloaded machine a 2 s lease
//     is not always renewed in time, which at-least-once allows);
//   - no count of waiting or running jobs is left in the chord queue.
func accountChords(t *testing.T, o *opened, c *queue.Client, led *ledger, enq *chordEnqueuer, f *fleet, outages []outage) *chordResult {
	ctx := context.Background()
	r := &chordResult{name: t.Name(), chords: enq.total, enqRetries: enq.retries.Load(), enqDuplicates: enq.dupes.Load()}
	for e, n := range enq.errs {
		t.Logf("enqueue failed %d times, then tried again: %s", n, e)
	}
	for n, err := range enq.failed {
		r.notEnqueued++
		r.problem("chord %d was never enqueued: %v", n, err)
	}
	callbacks := &ledger{jobs: map[string][]execution{}}
	members := &ledger{jobs: map[string][]execution{}}
	for id, es := range led.jobs {
		if strings.HasSuffix(id, "-"+callbackStep) {
			callbacks.jobs[id] = es
		} else {
			members.jobs[id] = es
		}
	}
	var examples []string
	note := func(format string, args ...any) {
		if len(examples) < 5 {
			examples = append(examples, fmt.Sprintf(format, args...))
		}
	}
	for n := range enq.total {
		if _, failed := enq.failed[n]; failed {
			continue
		}
		id := chordID(n)
		lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		r.checkWorkflow(lctx, c, o, id, n, led, note)
		cancel()
	}
	if len(examples) > 0 {
		r.problem("chords not as they should be: %s", strings.Join(examples, "; "))
	}

	// Reruns, by what made the earlier run not count.
	cr := &result{}
	cr.classifyDuplicates(callbacks, f, outages, false, false)
	r.cb, r.callbackRuns = cr.dups, cr.executions
	mr := &result{}
	mr.classifyDuplicates(members, f, outages, false, false)
	r.members, r.memberRuns = mr.dups, mr.executions
	if r.cb.sameDelivery+r.members.sameDelivery > 0 {
		r.problem("runs with the delivery number of another run of their step's job (two holders of one lease): %s",
			strings.Join(append(r.cb.examples, r.members.examples...), "; "))
	}
	if r.wrong > 0 {
		r.problem("%d callback runs received other than their 10 members' results in order (worker logs: %s)", r.wrong, "chord callback")
	}
	if r.early > 0 {
		r.problem("%d callbacks ran before each of their members had run to success", r.early)
	}

	// Nothing left open or counted.
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	kv, _ := o.Backend.(backends.KVStore)
	if kv == nil {
		kv = o.kv
	}
	marks, err := kv.ListKV(cctx, backends.ListKVParams{Prefix: "workflow-open/", Now: time.Now()})
	if err != nil {
		r.problem("listing the open workflows: %v", err)
	}
	r.openMarkers = len(marks)
	if r.openMarkers > 0 {
		r.problem("%d workflows left open (their reconciler marker is there): %s", r.openMarkers, marks[0].Key)
	}
	// Counts a killed worker had not flushed are repaired by a recount
	// (AMQP's store janitor, every amqpJanitorEvery here): they get a few
	// recounts' time to come back to zero.
	for deadline := time.Now().Add(4 * amqpJanitorEvery); ; time.Sleep(200 * time.Millisecond) {
		depths, err := depthsAtEnd(cctx, o)
		r.phantom = depths[chordQueue]
		if err == nil && r.phantom == 0 {
			break
		}
		if time.Now().After(deadline) {
			if err != nil {
				r.problem("QueueStats at the end: %v", err)
			}
			break
		}
	}
	if r.phantom != 0 {
		r.problem("%d jobs counted as waiting or running in %s with every chord final", r.phantom, chordQueue)
	}
	return r
}

// checkWorkflow checks chord n (workflow id) against the backend and the
// ledger.
func (r *chordResult) checkWorkflow(ctx context.Context, c *queue.Client, o *opened, id string, n int, led *ledger, note func(string, ...any)) {
	in, err := workflow.Status(ctx, c, id)
	if err != nil {
		r.unfinishedSteps += chordMembers + 1
		note("%s: status: %v", id, err)
		return
	}
	if in.State == workflow.Done {
		r.done++
	} else {
		r.stuck = append(r.stuck, id)
		note("%s is %s", id, in.State)
	}
	for _, st := range in.Steps {
		if st.State != workflow.StepDone {
			r.unfinishedSteps++
			note("%s step %s is %s %s", id, st.Name, st.State, st.Reason)
		}
	}
	// Each member's job: there, done, its value; its earliest success.
	var lastMember time.Time
	for m := range chordMembers {
		jid := workflow.JobID(id, fmt.Sprintf("m%d", m))
		r.checkJob(ctx, o, jid, memberValue(n, m), note)
		first := time.Time{}
		for _, e := range led.jobs[jid] {
			if e.outcome == "ok" && (first.IsZero() || e.at.Before(first)) {
				first = e.at
			}
		}
		if first.IsZero() {
			note("%s never ran to success", jid)
		}
		if first.After(lastMember) {
			lastMember = first
		}
	}
	cb := workflow.JobID(id, callbackStep)
	r.checkJob(ctx, o, cb, chordSum(n), note)
	runs := led.jobs[cb]
	if len(runs) == 0 {
		note("%s never ran", cb)
	}
	for i, e := range runs {
		switch e.outcome {
		case outcomeReadErr:
			r.readErrs++
		case outcomeWrong:
			r.wrong++
		}
		// A run's line is written at its end: it began at least its
		// sleep earlier, which cannot be before the members' lines.
		if e.at.Before(lastMember) {
			r.early++
			note("%s run %d at %s, before its last member's success at %s", cb, i, e.at.Format("15:04:05.000"), lastMember.Format("15:04:05.000"))
		}
	}
}

// checkJob checks that step job id is there, done, with result want.
func (r *chordResult) checkJob(ctx context.Context, o *opened, id string, want int, note func(string, ...any)) {
	rec, err := o.insp.GetJob(ctx, backends.GetJobParams{ID: id})
	if errors.Is(err, job.ErrNotFound) {
		r.membersLost++
		note("%s is lost", id)
		return
	}
	if err != nil {
		r.wrongJobs++
		note("%s: %v", id, err)
		return
	}
	var got int
	if rec.State != job.Done || json.Unmarshal(rec.Result, &got) != nil || got != want {
		r.wrongJobs++
		note("%s is %s with result %q, want done with %d (delivery %d, lease expires %s)", id, rec.State, rec.Result, want,
			rec.Deliveries, rec.Lease.ExpiresAt.Format(time.StampMilli))
	}
}

const chordHeader = "| backend | result | chords | enqueue retries (duplicate) | workflows done | steps unfinished | jobs lost/wrong | callback runs | callback reruns kill/stop/restart/other | read errors | wrong results | early | member runs | member reruns kill/stop/restart/other | same delivery | open left | phantom | kills/stops/restarts | time |"

// logStuck logs what the processes' logs say of the callback runs that
// failed and of the chords not done (a few lines each), to tell where one
// stopped.
func (r *chordResult) logStuck(t *testing.T, logs string) {
	if len(r.stuck) == 0 && r.readErrs+r.wrong == 0 {
		return
	}
	text := readLogs(t, logs)
	var cbs []string
	for line := range strings.Lines(text) {
		if strings.Contains(line, "chord callback") && len(cbs) < 10 {
			cbs = append(cbs, strings.TrimSpace(line))
		}
	}
	if len(cbs) > 0 {
		t.Logf("callback runs that failed:\n%s", strings.Join(cbs, "\n"))
	}
	for _, id := range r.stuck[:min(len(r.stuck), 3)] {
		var lines []string
		for line := range strings.Lines(text) {
			if strings.Contains(line, id+"-") || strings.Contains(line, id+" ") {
				lines = append(lines, strings.TrimSpace(line))
			}
		}
		t.Logf("the logs on %s (%d lines):\n%s", id, len(lines), strings.Join(lines[:min(len(lines), 20)], "\n"))
	}
}

// report logs the row, appends it to CONVEYOR_CHAOS_REPORT if set (under
// its own header, the source of docs/reliability.md's chord table) and
// fails the test on any problem.
func (r *chordResult) report(t *testing.T) {
	if !r.settled {
		r.problem("chords stopped finishing: none became final for %s", stallLimit)
	}
	ok := "ok"
	if len(r.problems) > 0 {
		ok = "FAIL"
	}
	row := fmt.Sprintf("| %s | %s | %d | %d (%d) | %d | %d | %d/%d | %d | %d/%d/%d/%d | %d | %d | %d | %d | %d/%d/%d/%d | %d (+%d explained) | %d | %d | %d/%d/%d | %s |",
		strings.TrimPrefix(r.name, "TestChord/"), ok, r.chords-r.notEnqueued, r.enqRetries, r.enqDuplicates, r.done, r.unfinishedSteps,
		r.membersLost, r.wrongJobs, r.callbackRuns, r.cb.kill, r.cb.stop, r.cb.restart, r.cb.other, r.readErrs, r.wrong, r.early,
		r.memberRuns, r.members.kill, r.members.stop, r.members.restart, r.members.other,
		r.cb.sameDelivery+r.members.sameDelivery, r.cb.sameDeliveryCrash+r.members.sameDeliveryCrash,
		r.openMarkers, r.phantom, r.kills, r.stops, r.restarts, r.total.Round(time.Second))
	t.Log(chordHeader)
	t.Log(row)
	if path := os.Getenv("CONVEYOR_CHAOS_REPORT"); path != "" {
		if f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			fmt.Fprintln(f, chordHeader)
			fmt.Fprintln(f, row)
			f.Close()
		}
	}
	for _, p := range r.problems {
		t.Error(p)
	}
}
