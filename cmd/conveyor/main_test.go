package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/open"
	"github.com/conveyorhq/conveyor/backends/pgbackend"
	"github.com/conveyorhq/conveyor/backends/sqlitebackend"
	"github.com/conveyorhq/conveyor/internal/demo"
	"github.com/conveyorhq/conveyor/internal/testenv"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
)

// TestMain lets a test start this package's own binary as a real worker
// process: with CONVEYOR_RUN_MAIN=1 the test binary is the command.
func TestMain(m *testing.M) {
	if os.Getenv("CONVEYOR_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// conveyor runs the command line in this process and returns what it
// printed; it fails the test unless the command exits 0.
func conveyor(t *testing.T, args ...string) string {
	t.Helper()
	var out, errs bytes.Buffer
	if code := run(context.Background(), args, &out, &errs); code != 0 {
		t.Fatalf("conveyor %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errs.String())
	}
	return out.String()
}

// openStore opens db as the CLI does, with the inspection the tests read
// jobs through.
func openStore(ctx context.Context, db string) (interface {
	backends.Backend
	backends.Inspector
}, error) {
	b, err := open.URL(ctx, db, open.Options{})
	if err != nil {
		return nil, err
	}
	return b.(interface {
		backends.Backend
		backends.Inspector
	}), nil
}

func startWorker(t *testing.T, db string, lease time.Duration) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "worker", "--db", db, "-queues", "default,payments", "-concurrency", "8", "-lease", lease.String(), "-drain", "10s")
	cmd.Env = append(os.Environ(), "CONVEYOR_RUN_MAIN=1")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr // visible with -v
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return cmd
}

// stats counts the jobs in each state by listing them, not from
// QueueStats: on RabbitMQ with a store the counts a killed worker had not
// flushed stay off until the store's recount, and this test is about the
// jobs, not the counts.
func stats(t *testing.T, in backends.Inspector) map[job.State]int {
	t.Helper()
	total := map[job.State]int{}
	for _, st := range job.States() {
		p := backends.ListJobsParams{State: st, Limit: 500}
		for {
			page, err := in.ListJobs(context.Background(), p)
			if err != nil {
				t.Fatal(err)
			}
			total[st] += len(page.Jobs)
			if page.Next == "" {
				break
			}
			p.Cursor = page.Next
		}
	}
	return total
}

// A worker process killed with SIGKILL mid-job loses nothing: another worker
// picks its jobs up once their leases expire, and every job ends as its
// policy says.
func TestSIGKILLedWorkerLosesNoJob(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testSIGKILL(t, filepath.Join(t.TempDir(), "kill.db")) })
	t.Run("redis", func(t *testing.T) {
		// Database 3 of the shared server is this test's own.
		url := "redis://" + testenv.RedisAddr(t) + "/3"
		opt, err := redis.ParseURL(url)
		if err != nil {
			t.Fatal(err)
		}
		c := redis.NewClient(opt)
		defer c.Close()
		if err := c.FlushDB(context.Background()).Err(); err != nil {
			t.Fatal(err)
		}
		testSIGKILL(t, url)
	})
	t.Run("postgres", func(t *testing.T) {
		url := testenv.PostgresURL(t)
		// A clean schema, then the migrate command builds it.
		conveyor(t, "migrate", "--db", url, "--to", "-1")
		latest := fmt.Sprintf("at version %d", pgbackend.LatestVersion())
		if out := conveyor(t, "migrate", "--db", url); !strings.Contains(out, latest) {
			t.Fatalf("migrate: %s", out)
		}
		testSIGKILL(t, url)
	})
	t.Run("amqp", func(t *testing.T) {
		// Queues of their own: messages an earlier run left on a shared
		// broker would run here too (a message without a store record is
		// restored from its body).
		prefix := fmt.Sprintf("sigkill-%d", time.Now().UnixNano())
		testSIGKILL(t, testenv.RabbitMQURL(t)+"?prefix="+prefix+"&store="+filepath.Join(t.TempDir(), "state.db"))
	})
}

// testSIGKILL runs a real worker process on db, SIGKILLs it mid-batch and
// checks that a second worker finishes every job, the orphans included.
func testSIGKILL(t *testing.T, db string) {
	ctx := context.Background()
	b, err := openStore(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c := queue.NewClient(b, queue.Config{})
	// The first job, taken in the first reserve, runs 3 s: it is running
	// when the worker dies, however late the kill comes after the listing
	// (the 300 ms ones started together and could all finish in between
	// on a loaded machine, leaving no orphan).
	reqs := []queue.Request{demo.Sleep.Request(demo.SleepArgs{Millis: 3000}, nil)}
	const sleepers, flaky = 40, 10
	for range sleepers - 1 {
		reqs = append(reqs, demo.Sleep.Request(demo.SleepArgs{Millis: 300}, nil))
	}
	for range flaky {
		reqs = append(reqs, demo.Flaky.Request(demo.FlakyArgs{FailTimes: 1}, nil))
	}
	reqs = append(reqs, demo.Charge.Request(demo.ChargeArgs{Card: "declined"}, nil))
	if _, err := c.EnqueueMany(ctx, reqs...); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Enqueue(ctx, backends.EnqueueParams{Jobs: []*backends.JobInsert{
		{ID: "poison", Queue: "default", Task: demo.Sleep.Name(), Payload: []byte(`not json`)},
	}}); err != nil {
		t.Fatal(err)
	}
	total := len(reqs) + 1

	const lease = time.Second
	first := startWorker(t, db, lease)
	testenv.WaitFor(t, 30*time.Second, "the first worker to be mid-batch", func() bool {
		s := stats(t, b)
		return s[job.Running] >= 4 && s[job.Done] >= 4
	})
	page, err := b.ListJobs(ctx, backends.ListJobsParams{State: job.Running, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	// Jobs that finished between the listing and the kill are fine; the
	// ones still running at the kill must come back. A completion the
	// worker wrote to its socket just before it died may still land, so
	// the orphans are the jobs still running once their leases ran out.
	expiry := time.Now().Add(lease) // no heartbeat extends a lease after the kill
	testenv.WaitFor(t, 30*time.Second, "the killed worker's leases to run out", func() bool { return time.Now().After(expiry) })
	var orphans []string
	for _, r := range page.Jobs {
		if cur, err := b.GetJob(ctx, backends.GetJobParams{ID: r.ID}); err == nil && !cur.State.Finished() { // running, or back to pending by a janitor
			orphans = append(orphans, r.ID)
		}
	}
	if len(orphans) == 0 {
		t.Fatal("no job was running when the worker died; the test proves nothing")
	}

	second := startWorker(t, db, lease)
	testenv.WaitFor(t, 60*time.Second, "every job to finish", func() bool {
		s := stats(t, b)
		return s[job.Done]+s[job.Dead] == total
	})
	if err := second.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := second.Wait(); err != nil {
		t.Fatalf("worker did not exit cleanly on SIGTERM: %v", err)
	}

	s := stats(t, b)
	if s[job.Done] != sleepers+flaky || s[job.Dead] != 2 {
		t.Fatalf("final counts %v; want %d done and 2 dead (declined card, poison)", s, sleepers+flaky)
	}
	for _, id := range orphans {
		// Each orphan finished on a later delivery: done, or dead if it
		// was the declined card, which fails for good on any delivery.
		r, err := b.GetJob(ctx, backends.GetJobParams{ID: id})
		declined := r != nil && r.Task == demo.Charge.Name() && r.State == job.Dead
		if err != nil || (r.State != job.Done && !declined) || r.Deliveries < 2 {
			t.Fatalf("orphaned job %s: %+v, %v; want finished on a second delivery", id, r, err)
		}
	}
	dead, err := b.ListJobs(ctx, backends.ListJobsParams{State: job.Dead})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range dead.Jobs {
		if r.Attempts() != 1 {
			t.Fatalf("dead job %s (%s) used %d attempts; permanent failures use one", r.ID, r.Task, r.Attempts())
		}
	}
}

func TestDemo(t *testing.T) {
	// The outage is long enough for three charges to fail in a row and trip
	// the breaker even on a loaded machine (500ms was not, beside the chaos
	// test).
	out := conveyor(t, "demo", "--greetings", "10", "-flaky", "2", "-charges", "4", "-outage", "1500ms")
	if !strings.Contains(out, "all jobs finished: 16 done, 2 dead") || !strings.Contains(out, "breaker payments: open") ||
		!strings.Contains(out, "dashboard on http://127.0.0.1:") {
		t.Fatalf("demo output:\n%s", out)
	}
}

// Two worker processes run the scheduler on one SQLite file; the leader is
// SIGKILLed mid-run. The other takes over within the lease and catches up:
// every second has exactly one tick, none lost, none doubled.
func TestSchedulerLeaderKilled(t *testing.T) {
	ctx := context.Background()
	db := filepath.Join(t.TempDir(), "sched.db")
	conveyor(t, "schedule", "add", "--db", db, "--misfire", "catchup", "tick", "* * * * * *", "demo.greet", `{"name":"tick"}`)
	b, err := sqlitebackend.Open(ctx, sqlitebackend.Config{Path: db})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ticks := func() []int64 {
		var got []int64
		page, err := b.ListJobs(ctx, backends.ListJobsParams{Queue: "default", State: job.Pending, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Jobs {
			tk, err := time.Parse(time.RFC3339, r.Headers["scheduler-tick"])
			if err != nil {
				t.Fatalf("job %s has no tick: %v", r.ID, r.Headers)
			}
			got = append(got, tk.Unix())
		}
		return got
	}
	start := func() *exec.Cmd {
		// The workers serve another queue, so the ticks' jobs stay pending
		// for counting.
		cmd := exec.Command(os.Args[0], "worker", "--db", db, "-queues", "elsewhere", "-lease", "3s", "-drain", "5s")
		cmd.Env = append(os.Environ(), "CONVEYOR_RUN_MAIN=1")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill() })
		return cmd
	}
	a, c := start(), start()
	testenv.WaitFor(t, 30*time.Second, "3 ticks", func() bool { return len(ticks()) >= 3 })
	if out := conveyor(t, "inspect", "workers", "--db", db); strings.Count(out, "elsewhere") != 2 {
		t.Fatalf("inspect workers with two running:\n%s", out)
	}
	lease, err := b.GetKV(ctx, backends.GetKVParams{Key: "scheduler/leader"})
	if err != nil {
		t.Fatal(err)
	}
	leader, other := a, c
	if strings.HasSuffix(string(lease.Value), fmt.Sprintf("-%d", c.Process.Pid)) {
		leader, other = c, a
	} else if !strings.HasSuffix(string(lease.Value), fmt.Sprintf("-%d", a.Process.Pid)) {
		t.Fatalf("the leader %q is neither worker", lease.Value)
	}
	if err := leader.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = leader.Wait()
	atKill := len(ticks())
	testenv.WaitFor(t, 30*time.Second, "4 more ticks after the kill", func() bool { return len(ticks()) >= atKill+4 })
	if err := other.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := other.Wait(); err != nil {
		t.Fatalf("worker did not exit cleanly: %v", err)
	}
	got := ticks()
	slices.Sort(got)
	for i := 1; i < len(got); i++ {
		if got[i] != got[i-1]+1 {
			t.Fatalf("ticks %v: second %d is %s", got, got[i-1]+1, map[bool]string{true: "doubled", false: "lost"}[got[i] == got[i-1]])
		}
	}
	t.Logf("%d consecutive ticks, %d of them after the leader was killed", len(got), len(got)-atKill)
	// The killed worker's entry expires with its heartbeats; the one
	// stopped cleanly withdrew its own.
	testenv.WaitFor(t, 30*time.Second, "no worker listed", func() bool {
		return strings.Count(conveyor(t, "inspect", "workers", "--db", db), "\n") == 1 // the header alone
	})
	if out := conveyor(t, "schedule", "list", "--db", db); !regexp.MustCompile(`(?m)^tick +\* \* \* \* \* \* +demo\.greet +catchup +false `).MatchString(out) {
		t.Fatalf("schedule list:\n%s", out)
	}
}
