package daemon

import (
	"regexp"
	"strconv"
	"syscall"
	"testing"

	"github.com/conveyorhq/conveyor/daemon/testdata/tasks"
	"github.com/conveyorhq/conveyor/job"
)

var batchRe = regexp.MustCompile(`msg="batch done" .*\bbatch=(\d+)`)

// A job working through 100 batches with a checkpoint after each, its
// worker process SIGKILLed after batch 60: a second process takes the job
// once its lease ends and resumes after the last checkpoint. Every batch
// ran, and only the one in flight at the kill may have run twice.
func TestIteratingJobResumesAfterSIGKILL(t *testing.T) {
	bin := binary(t)
	db := newDB(t)
	a := start(t, bin, dbEnv(db), "-lease", "2s")
	a.wait("worker started")
	ids := enqueue(t, db, tasks.Batches, tasks.BatchesArgs{N: 100}, 1)
	a.wait("batch done", "batch=60")
	if err := syscall.Kill(a.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-a.done
	b := start(t, bin, dbEnv(db), "-lease", "2s")
	if st := db.waitFinished(t, ids...)[ids[0]]; st != job.Done {
		t.Fatalf("the job ended %s", st)
	}
	runs := map[int]int{}
	first := -1
	for i, p := range []*daemonProc{a, b} {
		for _, l := range p.lines() {
			if m := batchRe.FindStringSubmatch(l); m != nil {
				n, _ := strconv.Atoi(m[1])
				runs[n]++
				if i == 1 && first < 0 {
					first = n
				}
			}
		}
	}
	twice := 0
	for n := range 100 {
		switch runs[n] {
		case 0:
			t.Errorf("batch %d never ran", n)
		case 1:
		case 2:
			twice++
		default:
			t.Errorf("batch %d ran %d times", n, runs[n])
		}
	}
	if twice > 1 || first < 60 || first > 62 {
		t.Fatalf("%d batches ran twice (at most the one in flight may) and the second process started at batch %d (want right after the kill, 61 or the one in flight)", twice, first)
	}
}
