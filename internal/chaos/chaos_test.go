package chaos_test

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/pgbackend"
	"github.com/conveyorhq/conveyor/backends/redisbackend"
	"github.com/conveyorhq/conveyor/backends/sqlitebackend"
	"github.com/conveyorhq/conveyor/internal/testenv"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

type chaosArgs struct {
	N int `json:"n"`
}

var chaosTask = queue.NewTask[chaosArgs, queue.None]("chaos.job", queue.TaskOptions{Queue: "chaos"})

// The worker processes' lease: a SIGSTOPped worker is stopped for longer.
const lease = 2 * time.Second

type store interface {
	backends.Backend
	backends.Inspector
}

func open(ctx context.Context, db string) (store, error) {
	switch {
	case strings.HasPrefix(db, "redis://"):
		return redisbackend.Open(ctx, db, redisbackend.Config{})
	case strings.HasPrefix(db, "postgres://"):
		return pgbackend.Open(ctx, db, pgbackend.Config{Migrate: true})
	}
	return sqlitebackend.Open(ctx, sqlitebackend.Config{Path: db})
}

// TestMain turns the test binary into a worker process when the test
// starts it with CONVEYOR_CHAOS_WORKER set.
func TestMain(m *testing.M) {
	if os.Getenv("CONVEYOR_CHAOS_WORKER") == "1" {
		if err := runWorker(os.Getenv("CONVEYOR_CHAOS_DB"), os.Getenv("CONVEYOR_CHAOS_LEDGER")); err != nil {
			fmt.Fprintln(os.Stderr, "chaos worker:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runWorker runs jobs until SIGTERM; each execution appends
// "<job> <n> <pid> <delivery>" to the ledger before it returns.
func runWorker(db, ledger string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	b, err := open(context.Background(), db)
	if err != nil {
		return err
	}
	defer b.Close()
	f, err := os.OpenFile(ledger, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	w := worker.New(b, worker.Config{Queues: []worker.QueueConfig{{Name: "chaos"}}, Concurrency: 4,
		LeaseDuration: lease, PollInterval: 100 * time.Millisecond})
	worker.Register(w, chaosTask, func(ctx context.Context, a chaosArgs) (queue.None, error) {
		time.Sleep(time.Duration(5+rand.IntN(20)) * time.Millisecond)
		rec, _ := worker.JobFromContext(ctx)
		// One write of one short line: O_APPEND keeps lines whole.
		_, err := fmt.Fprintf(f, "%s %d %d %d\n", rec.ID, a.N, os.Getpid(), rec.Deliveries)
		return queue.None{}, err
	})
	if err := w.Start(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return w.Stop(sctx)
}

func jobCount() int {
	if n, err := strconv.Atoi(os.Getenv("CONVEYOR_CHAOS_JOBS")); err == nil && n > 0 {
		return n
	}
	return 2000
}

// server is a backend's server the test can restart; nil for SQLite.
type server interface {
	Stop()
	Start()
}

func TestChaos(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		runChaos(t, filepath.Join(t.TempDir(), "chaos.db"), nil)
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		srv := testenv.StartRedis(t)
		runChaos(t, "redis://"+srv.Addr+"/0", srv)
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		srv := testenv.StartPostgres(t)
		runChaos(t, srv.URL, srv)
	})
}

// execution is one ledger line.
type execution struct {
	id       string
	pid      int
	delivery int
}

func runChaos(t *testing.T, db string, srv server) {
	ctx := context.Background()
	total := jobCount()
	b, err := open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c := queue.NewClient(b, queue.Config{})
	for i := 0; i < total; i += 500 {
		var reqs []queue.Request
		for n := i; n < min(i+500, total); n++ {
			reqs = append(reqs, chaosTask.Request(chaosArgs{N: n}, nil))
		}
		if _, err := c.EnqueueMany(ctx, reqs...); err != nil {
			t.Fatal(err)
		}
	}
	ledger := filepath.Join(t.TempDir(), "ledger")

	var mu sync.Mutex
	workers := map[int]*exec.Cmd{}
	suspects := map[int]string{} // pid -> what was done to it
	start := func() {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "CONVEYOR_CHAOS_WORKER=1", "CONVEYOR_CHAOS_DB="+db, "CONVEYOR_CHAOS_LEDGER="+ledger)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		mu.Lock()
		workers[cmd.Process.Pid] = cmd
		mu.Unlock()
	}
	victim := func() *exec.Cmd {
		mu.Lock()
		defer mu.Unlock()
		for _, cmd := range workers {
			return cmd
		}
		return nil
	}
	for range 3 {
		start()
	}
	counts := func() map[job.State]int {
		st, err := b.QueueStats(ctx, backends.QueueStatsParams{Queue: "chaos"})
		if err != nil || len(st) == 0 {
			return map[job.State]int{} // the server may be restarting
		}
		return st[0].Counts
	}
	kills, stops, restarts := 0, 0, 0
	events := []struct {
		at   float64
		name string
		do   func()
	}{
		{0.10, "kill", nil}, {0.25, "stop", nil}, {0.35, "kill", nil}, {0.50, "restart", nil}, {0.65, "kill", nil},
	}
	deadline := time.Now().Add(5 * time.Minute)
	var outageStart, outageEnd time.Time
	for next := 0; ; {
		n := counts()
		if n[job.Done] == total {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not every job finished in 5 minutes: %v", n)
		}
		if next < len(events) && float64(n[job.Done]) >= events[next].at*float64(total) {
			switch events[next].name {
			case "kill":
				v := victim()
				mu.Lock()
				suspects[v.Process.Pid] = "killed"
				delete(workers, v.Process.Pid)
				mu.Unlock()
				_ = v.Process.Signal(syscall.SIGKILL)
				start()
				kills++
			case "stop":
				v := victim()
				mu.Lock()
				suspects[v.Process.Pid] = "stopped"
				mu.Unlock()
				_ = v.Process.Signal(syscall.SIGSTOP)
				time.AfterFunc(lease+time.Second, func() { _ = v.Process.Signal(syscall.SIGCONT) })
				stops++
			case "restart":
				if srv != nil {
					outageStart = time.Now()
					srv.Stop()
					srv.Start()
					outageEnd = time.Now()
					restarts++
				}
			}
			next++
			continue
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	for _, cmd := range workers {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Signal(syscall.SIGTERM)
	}
	mu.Unlock()

	n := counts()
	if n[job.Done] != total || n[job.Dead] != 0 || n[job.Running] != 0 || n[job.Pending]+n[job.Retrying]+n[job.Scheduled] != 0 {
		t.Fatalf("final counts %v, want all %d done", n, total)
	}
	runs := readLedger(t, ledger)
	byJob := map[string][]execution{}
	seen := map[int]bool{}
	for _, e := range runs {
		byJob[e.id] = append(byJob[e.id], e)
	}
	if len(byJob) != total {
		t.Fatalf("%d jobs in the ledger, want %d: %d lost", len(byJob), total, total-len(byJob))
	}
	dups, byKill, byStop, other := 0, 0, 0, 0
	for id, es := range byJob {
		deliveries := map[int]bool{}
		for _, e := range es {
			if deliveries[e.delivery] {
				t.Fatalf("job %s ran twice in delivery %d: two workers held one lease: %v", id, e.delivery, es)
			}
			deliveries[e.delivery] = true
			seen[e.pid] = true
		}
		if len(es) < 2 {
			continue
		}
		// The ledger is in order of writing, not of delivery: a stopped
		// worker writes its line when it resumes, after the next delivery.
		slices.SortFunc(es, func(x, y execution) int { return x.delivery - y.delivery })
		dups += len(es) - 1
		// Each run had its own delivery (checked above), so each rerun
		// followed a lease that expired: its worker was killed, stopped
		// past its lease, lost its completion with the server restart, or
		// could not renew in time on a loaded machine. At-least-once
		// allows all of them; the counts say which.
		switch suspects[es[0].pid] {
		case "killed":
			byKill++
		case "stopped":
			byStop++
		default:
			other++
		}
	}
	t.Logf("%s: %d jobs done, 0 lost, 0 dead; %d executions, %d duplicates (%d after a kill, %d after a stop, %d after another lease expiry: the server restart at %s for %s, or load); %d kills, %d stops, %d restarts; %d worker processes",
		t.Name(), total, len(runs), dups, byKill, byStop, other, outageStart.Format("15:04:05.000"), outageEnd.Sub(outageStart).Round(time.Millisecond), kills, stops, restarts, len(seen))
}

func readLedger(t *testing.T, path string) []execution {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []execution
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e execution
		var n int
		if _, err := fmt.Sscanf(sc.Text(), "%s %d %d %d", &e.id, &n, &e.pid, &e.delivery); err != nil {
			t.Fatalf("ledger line %q: %v", sc.Text(), err)
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
