package celery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/internal/testenv"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/retry"
	"github.com/conveyorhq/conveyor/worker"
)

// A broker kind of the end-to-end tests: how the Go side and the Python
// side reach the same broker and result backend.
type kind struct {
	name string
	// goCfg is the Go side's Config; rpc says the Python client reads
	// results over RabbitMQ (rpc://) rather than Redis.
	goCfg func(t *testing.T, rpc bool) Config
	// broker is Celery's broker_url.
	broker func(t *testing.T) string
}

func redisURL(t *testing.T) string {
	return fmt.Sprintf("redis://%s/%d", testenv.RedisAddr(t), testDB)
}

var kinds = []kind{
	{
		name: "RabbitMQ",
		goCfg: func(t *testing.T, rpc bool) Config {
			if rpc {
				return Config{AMQPURL: testenv.RabbitMQURL(t), RPCResults: true}
			}
			return Config{AMQPURL: testenv.RabbitMQURL(t), Results: redisClient(t)}
		},
		broker: func(t *testing.T) string { return testenv.RabbitMQURL(t) },
	},
	{
		name:   "Redis",
		goCfg:  func(t *testing.T, _ bool) Config { return Config{Redis: redisClient(t)} },
		broker: redisURL,
	},
}

// pyEnv is the environment of the Python processes for queue q.
func pyEnv(t *testing.T, k kind, q string, rpc bool) []string {
	backend := redisURL(t)
	if rpc {
		backend = "rpc://"
	}
	return append(os.Environ(), "CELERY_BROKER="+k.broker(t), "CELERY_BACKEND="+backend, "CELERY_QUEUE="+q,
		"PYTHONDONTWRITEBYTECODE=1")
}

// python runs testdata/client.py and decodes the JSON it prints into out.
func python(t *testing.T, env []string, out any, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, testenv.Python(t), append([]string{"client.py"}, args...)...)
	cmd.Dir, cmd.Env = "testdata", env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("client.py %v: %v\n%s", args, err, stderr.String())
	}
	if err := json.Unmarshal(stdout, out); err != nil {
		t.Fatalf("client.py %v printed %q: %v\n%s", args, stdout, err, stderr.String())
	}
}

type scaleKwargs struct {
	Scale int `json:"scale"`
}

// goWorker is a Conveyor worker on queue q running the go.* tasks the
// Python client sends.
type goWorker struct {
	seen  sync.Map // job IDs go.add ran
	never atomic.Int32
	runs  atomic.Int32 // go.flaky's attempts
}

func startGoWorker(t *testing.T, b *Broker, q string) *goWorker {
	g := &goWorker{}
	opts := queue.TaskOptions{Queue: q, Retry: &retry.Policy{Stop: retry.StopAfterAttempt(1)}}
	w := worker.New(b, worker.Config{Queues: []worker.QueueConfig{{Name: q}}, Concurrency: 64,
		QuietFailedAttempts: true, Logger: slog.New(slog.DiscardHandler)})
	worker.Register(w, queue.NewTask[Call[scaleKwargs], int]("go.add", opts), func(ctx context.Context, c Call[scaleKwargs]) (int, error) {
		rec, _ := worker.JobFromContext(ctx)
		g.seen.Store(rec.ID, true)
		var x, y int
		if err := errors.Join(c.Args.Decode(0, &x), c.Args.Decode(1, &y)); err != nil {
			return 0, retry.Permanent(err)
		}
		return (x + y) * c.Kwargs.Scale, nil
	})
	worker.Register(w, queue.NewTask[Call[struct{}], queue.None]("go.fail", opts), func(ctx context.Context, c Call[struct{}]) (queue.None, error) {
		var msg string
		if err := c.Args.Decode(0, &msg); err != nil {
			return queue.None{}, retry.Permanent(err)
		}
		return queue.None{}, retry.Permanent(errors.New(msg))
	})
	flaky := opts
	flaky.Retry = &retry.Policy{Stop: retry.StopAfterAttempt(3), Wait: retry.WaitFixed(100 * time.Millisecond)}
	worker.Register(w, queue.NewTask[Call[struct{}], string]("go.flaky", flaky), func(ctx context.Context, _ Call[struct{}]) (string, error) {
		g.runs.Add(1)
		rec, _ := worker.JobFromContext(ctx)
		if rec.Attempts() == 0 {
			return "", errors.New("first attempt fails")
		}
		return fmt.Sprintf("ok after %d failed attempt(s)", rec.Attempts()), nil
	})
	worker.Register(w, queue.NewTask[Call[struct{}], map[string]bool]("go.eta", opts), func(ctx context.Context, _ Call[struct{}]) (map[string]bool, error) {
		rec, _ := worker.JobFromContext(ctx)
		return map[string]bool{"early": time.Now().Before(rec.RunAt), "eta_carried": rec.RunAt.After(rec.CreatedAt)}, nil
	})
	worker.Register(w, queue.NewTask[Call[struct{}], queue.None]("go.never", opts), func(context.Context, Call[struct{}]) (queue.None, error) {
		g.never.Add(1)
		return queue.None{}, nil
	})
	worker.Register(w, queue.NewTask[Call[struct{}], queue.None]("go.sleep", opts), func(ctx context.Context, _ Call[struct{}]) (queue.None, error) {
		<-ctx.Done() // the message's time limit ends it
		return queue.None{}, context.Cause(ctx)
	})
	if err := w.Start(context.Background()); err != nil {
		t.Fatalf("worker Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = w.Stop(ctx)
	})
	return g
}

// TestPythonToGo: a Python Celery client sends to a Conveyor worker and
// reads every result: 1,000 tasks (send_task and a stub's .delay()), then
// failure, retry, countdown, expires and time limit.
func TestPythonToGo(t *testing.T) {
	for _, k := range kinds {
		for _, rpc := range []bool{false, true} {
			if rpc && k.name != "RabbitMQ" {
				continue
			}
			name := k.name + "/results=redis"
			if rpc {
				name = k.name + "/results=rpc"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				q := fresh("py2go")
				g := startGoWorker(t, newBroker(t, k.goCfg(t, rpc)), q)
				env := pyEnv(t, k, q, rpc)
				var bulk struct {
					Sent  int     `json:"sent"`
					Wrong [][]any `json:"wrong"`
				}
				python(t, env, &bulk, "bulk", "1000")
				if bulk.Sent != 1000 || len(bulk.Wrong) != 0 {
					t.Fatalf("bulk: sent %d, wrong results %v", bulk.Sent, bulk.Wrong)
				}
				var f map[string]any
				python(t, env, &f, "features")
				want := map[string]string{
					"fail":      ErrorType + ": permanent: card declined", // the worker's text of retry.Permanent
					"flaky":     "ok after 1 failed attempt(s)",
					"expired":   "revoked: expired",
					"timelimit": ErrorType + ": ",
				}
				for key, w := range want {
					if got := fmt.Sprint(f[key]); !strings.HasPrefix(got, w) {
						t.Errorf("%s: Python saw %q, want %q...", key, got, w)
					}
				}
				if eta, _ := f["eta"].(map[string]any); eta["early"] != false || eta["eta_carried"] != true {
					t.Errorf("countdown: handler saw %v, want it run no earlier than its eta", f["eta"])
				}
				if n := g.never.Load(); n != 0 {
					t.Errorf("an expired task ran %d times", n)
				}
				if n := g.runs.Load(); n != 2 {
					t.Errorf("go.flaky ran %d times, want 2", n)
				}
			})
		}
	}
}

// TestMalformedMessages: protocol 1, pickle, a garbage body and an unknown
// content-encoding are dead-lettered with the reason, never run, and the
// consumer goes on to run the next good message.
func TestMalformedMessages(t *testing.T) {
	eachKind(t, "malformed", func(t *testing.T, k kind, q string) {
		b := newBroker(t, k.goCfg(t, false))
		g := startGoWorker(t, b, q)
		var res struct {
			IDs  map[string]string `json:"ids"`
			Good int               `json:"good"`
		}
		python(t, pyEnv(t, k, q, false), &res, "malformed")
		if res.Good != 42 {
			t.Fatalf("the good task after the malformed ones returned %d, want 42", res.Good)
		}
		for name, id := range res.IDs {
			if _, ran := g.seen.Load(id); ran {
				t.Errorf("the %s message ran", name)
			}
		}
		reasons := deadReasons(t, b, q)
		for _, want := range []string{"protocol 1", "pickle is never accepted", "not a JSON array", `content-encoding "x-rot13"`} {
			found := false
			for _, r := range reasons {
				found = found || strings.Contains(r, want)
			}
			if !found {
				t.Errorf("no dead letter says %q; reasons: %q", want, reasons)
			}
		}
		if len(reasons) != 4 {
			t.Errorf("%d dead letters, want 4: %q", len(reasons), reasons)
		}
		// The client of a malformed message with an id learns why.
		for _, name := range []string{"pickle", "garbage", "encoding"} {
			rec, err := b.GetJob(context.Background(), backends.GetJobParams{ID: res.IDs[name]})
			if err != nil || rec.State != job.Dead || rec.LastError() == nil || !strings.Contains(rec.LastError().Error, "malformed") {
				t.Errorf("result of the %s message: %+v, %v; want FAILURE with the reason", name, rec, err)
			}
		}
	})
}

// eachKind runs fn as a parallel subtest per broker kind, on a queue of
// its own.
func eachKind(t *testing.T, name string, fn func(t *testing.T, k kind, q string)) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			t.Parallel()
			fn(t, k, fresh(name))
		})
	}
}

// deadReasons reads the reason header of every message in q's dead-letter
// queue, through the broker's own client.
func deadReasons(t *testing.T, b *Broker, q string) []string {
	t.Helper()
	ctx := context.Background()
	dead := b.cfg.DeadQueue(q)
	var out []string
	if b.amqp != nil {
		declareHook(dead)
		err := b.amqp.usePub(func(ch *amqp.Channel) error {
			for {
				d, ok, err := ch.Get(dead, true)
				if err != nil || !ok {
					return err
				}
				r, _ := d.Headers[ReasonHeader].(string)
				out = append(out, r)
			}
		})
		if err != nil {
			t.Fatalf("read %s: %v", dead, err)
		}
		return out
	}
	raws, err := b.cfg.Redis.LRange(ctx, dead, 0, -1).Result()
	if err != nil {
		t.Fatalf("read %s: %v", dead, err)
	}
	for _, raw := range raws {
		var e envelope
		if err := json.Unmarshal([]byte(raw), &e); err != nil {
			t.Fatalf("dead letter %q is no envelope: %v", raw, err)
		}
		r, _ := e.Headers[ReasonHeader].(string)
		out = append(out, r)
	}
	b.cfg.Redis.Del(ctx, dead)
	return out
}

// TestGoToPython: a Conveyor client enqueues 1,000 tasks to an unmodified
// Celery worker (prefork) and reads every result, then kwargs from a plain
// struct and a failure's text.
func TestGoToPython(t *testing.T) {
	eachKind(t, "go2py", func(t *testing.T, k kind, q string) {
		b := newBroker(t, k.goCfg(t, false))
		startCelery(t, pyEnv(t, k, q, false), q)
		c := queue.NewClient(b, queue.Config{})
		add := queue.NewTask[Call[scaleKwargs], int]("py.add", queue.TaskOptions{Queue: q})
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		const n = 1000
		var reqs []queue.Request
		for i := range n {
			args, _ := Values(i, 1)
			reqs = append(reqs, add.Request(Call[scaleKwargs]{Args: args, Kwargs: scaleKwargs{Scale: 3}}, nil))
		}
		refs, err := c.EnqueueMany(ctx, reqs...)
		if err != nil {
			t.Fatalf("EnqueueMany: %v", err)
		}
		var wg sync.WaitGroup
		sem := make(chan struct{}, 32)
		var wrong atomic.Int32
		for i, ref := range refs {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				got, err := add.Handle(c, ref.ID).Wait(ctx)
				if err != nil || got != (i+1)*3 {
					if wrong.Add(1) <= 3 {
						t.Errorf("py.add(%d, 1, scale=3) = %d, %v", i, got, err)
					}
				}
			}()
		}
		wg.Wait()
		if w := wrong.Load(); w > 0 {
			t.Fatalf("%d of %d results wrong", w, n)
		}

		type greeting struct {
			Name  string `json:"name"`
			Punct string `json:"punct"`
		}
		greet := queue.NewTask[greeting, string]("py.greet", queue.TaskOptions{Queue: q})
		h, err := greet.Enqueue(ctx, c, greeting{Name: "ada", Punct: "?"}, nil)
		if err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
		if s, err := h.Wait(ctx); err != nil || s != "hello ada?" {
			t.Errorf("py.greet(name=ada, punct=?) = %q, %v", s, err)
		}
		fail := queue.NewTask[[]string, queue.None]("py.fail", queue.TaskOptions{Queue: q})
		hf, err := fail.Enqueue(ctx, c, []string{"boom"}, nil)
		if err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
		if _, err := hf.Wait(ctx); !errors.Is(err, job.ErrDeadLettered) || !strings.Contains(err.Error(), "ValueError: boom") {
			t.Errorf("py.fail(boom) = %v, want a dead letter saying ValueError: boom", err)
		}
	})
}

// startCelery runs `celery worker` (prefork, 4 processes) on queue q and
// kills its process group when the test ends.
func startCelery(t *testing.T, env []string, q string) {
	t.Helper()
	cmd := exec.Command(testenv.Python(t), "-m", "celery", "-A", "celeryapp", "worker", "-Q", q, "-c", "4",
		"-P", "prefork", "-l", "warning", "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", q+"@%h")
	cmd.Dir, cmd.Env = "testdata", env
	logPath := filepath.Join(t.TempDir(), "celery.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start celery worker: %v", err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		_ = logFile.Close()
		if t.Failed() {
			if out, err := os.ReadFile(logPath); err == nil {
				t.Logf("celery worker log:\n%s", out)
			}
		}
	})
}
