package worker_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/membackend"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

const releasedMsg = "job released: this worker has no handler for its task; a worker that has one will run it"

// foreignJobs inserts n jobs of a task no worker in the test knows, as
// another app's producer would, and returns their IDs.
func foreignJobs(t *testing.T, b backends.Backend, task string, n int) []string {
	t.Helper()
	var ins []*backends.JobInsert
	var ids []string
	for i := range n {
		id := fmt.Sprintf("%s-%d", task, i)
		ids = append(ids, id)
		ins = append(ins, &backends.JobInsert{ID: id, Queue: "default", Task: task, Payload: []byte(`{}`)})
	}
	if _, err := b.Enqueue(context.Background(), backends.EnqueueParams{Jobs: ins}); err != nil {
		t.Fatal(err)
	}
	return ids
}

// A worker meeting jobs of a task it has no handler for gives them back
// without using an attempt or a delivery, reports them as unknown_task,
// and logs a warning naming the task and itself — one for the whole flood,
// not one per job.
func TestUnknownTaskIsReleasedNotDeadLettered(t *testing.T) {
	var lg logs
	obs := newFeed()
	e := newEnv(t, worker.Config{ID: "old-worker", Observer: obs, Logger: lg.logger(), UnknownTaskDelay: 20 * time.Millisecond})
	worker.Register(e.w, queue.NewTask[Args, queue.None]("known", queue.TaskOptions{}),
		func(context.Context, Args) (queue.None, error) { return queue.None{}, nil })
	ids := foreignJobs(t, e.b, "app.new_task", 20)
	e.start()

	unseen := map[string]bool{}
	for _, id := range ids {
		unseen[id] = true
	}
	releases := 0
	obs.until(t, "every job released once", func(d delivery) bool {
		if d.out != worker.UnknownTask {
			t.Fatalf("job %s: outcome %s, want %s", d.rec.ID, d.out, worker.UnknownTask)
		}
		releases++
		delete(unseen, d.rec.ID)
		return len(unseen) == 0
	})
	if err := e.w.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		r, err := e.c.Job(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if r.State.Finished() || r.Attempts() != 0 || r.Deliveries != 0 {
			t.Fatalf("%s: state %s attempts %d deliveries %d; want waiting with nothing used", id, r.State, r.Attempts(), r.Deliveries)
		}
	}

	warned := lg.lines(t, releasedMsg)
	if len(warned) == 0 {
		t.Fatal("no warning about the unknown task")
	}
	if w := warned[0]; w["level"] != "WARN" || w["task"] != "app.new_task" || w["worker"] != "old-worker" || w["queue"] != "default" {
		t.Fatalf("warning %v; want it to name the task, queue and worker", w)
	}
	// At most one line a minute per task: a line per job would be one per
	// release.
	if len(warned) >= releases {
		t.Fatalf("%d warnings for %d releases; want one per task per minute", len(warned), releases)
	}
}

// Once a job's window has passed and no live worker announces its task, a
// worker without the handler dead-letters it, saying why.
func TestUnknownTaskDeadLettersAfterItsWindow(t *testing.T) {
	var lg logs
	const window = 30 * time.Millisecond
	e := newEnv(t, worker.Config{Logger: lg.logger(), UnknownTaskDelay: 5 * time.Millisecond, UnknownTaskWindow: window})
	worker.Register(e.w, queue.NewTask[Args, queue.None]("known", queue.TaskOptions{}),
		func(context.Context, Args) (queue.None, error) { return queue.None{}, nil })
	ids := foreignJobs(t, e.b, "app.gone", 1)
	e.start()
	r := e.wait(ids[0])
	if r.State != job.Dead || r.Attempts() != 1 || r.Deliveries != 1 {
		t.Fatalf("state %s attempts %d deliveries %d; want dead after one recorded reason", r.State, r.Attempts(), r.Deliveries)
	}
	if msg := r.LastError().Error; !strings.Contains(msg, "unknown task") || !strings.Contains(msg, "waited "+window.String()) || !strings.Contains(msg, "no live worker on queue default announces one") {
		t.Fatalf("dead-letter reason %q", msg)
	}
	if got := lg.lines(t, "job dead-lettered: no worker has a handler for its task"); len(got) != 1 || got[0]["task"] != "app.gone" {
		t.Fatalf("dead-letter warnings %v", got)
	}
}

// A job past its window is still released while a live worker on its
// queue announces its task (here busy with another job): the task is
// known, only not here. That worker runs it once it is free.
func TestUnknownTaskKeptWhileAPeerKnowsIt(t *testing.T) {
	ctx := context.Background()
	b := membackend.New(membackend.Config{})
	c := queue.NewClient(b, queue.Config{})
	blocker := queue.NewTask[Args, queue.None]("peer.blocker", queue.TaskOptions{})
	newTask := queue.NewTask[Args, queue.None]("peer.new", queue.TaskOptions{})

	blocking, free := make(chan struct{}), make(chan struct{})
	peer := worker.New(b, worker.Config{ID: "new-worker", Concurrency: 1, PollInterval: 20 * time.Millisecond})
	worker.Register(peer, blocker, func(context.Context, Args) (queue.None, error) {
		close(blocking)
		<-free
		return queue.None{}, nil
	})
	ranOn := make(chan string, 1)
	worker.Register(peer, newTask, func(context.Context, Args) (queue.None, error) { ranOn <- "new-worker"; return queue.None{}, nil })
	enqueue(t, c, blocker, Args{})
	if err := peer.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer peer.Stop(ctx)
	<-blocking // its one slot is taken: it fetches nothing more for now

	const window = 20 * time.Millisecond
	obs := newFeed()
	old := worker.New(b, worker.Config{ID: "old-worker", Observer: obs, PollInterval: 20 * time.Millisecond,
		UnknownTaskDelay: 5 * time.Millisecond, UnknownTaskWindow: window})
	worker.Register(old, queue.NewTask[Args, queue.None]("known", queue.TaskOptions{}),
		func(context.Context, Args) (queue.None, error) { return queue.None{}, nil })
	h := enqueue(t, c, newTask, Args{})
	if err := old.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer old.Stop(ctx)
	obs.until(t, "a release of a delivery that started past the window", func(d delivery) bool {
		if d.out != worker.UnknownTask {
			t.Fatalf("outcome %s, want %s while the peer knows the task", d.out, worker.UnknownTask)
		}
		return d.rec.StartedAt.Sub(d.rec.CreatedAt) > window
	})
	close(free)
	if who := <-ranOn; who != "new-worker" {
		t.Fatalf("ran on %s", who)
	}
	ctxw, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	r, err := c.WaitFinished(ctxw, h.ID)
	if err != nil || r.State != job.Done || r.Attempts() != 0 {
		t.Fatalf("job %+v, %v; want done with no attempt used", r, err)
	}
}

// A worker announces the tasks it has handlers for, which is how another
// worker knows a task is known somewhere.
func TestWorkersAnnounceTheirTasks(t *testing.T) {
	ctx := context.Background()
	b := membackend.New(membackend.Config{})
	w := worker.New(b, worker.Config{ID: "w-tasks"})
	for _, name := range []string{"tasks.b", "tasks.a"} {
		worker.Register(w, queue.NewTask[Args, queue.None](name, queue.TaskOptions{}),
			func(context.Context, Args) (queue.None, error) { return queue.None{}, nil })
	}
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer w.Stop(ctx)
	list, err := worker.Workers(ctx, b)
	if err != nil || len(list) != 1 || strings.Join(list[0].Tasks, ",") != "tasks.a,tasks.b" {
		t.Fatalf("Workers = %+v, %v; want tasks.a,tasks.b", list, err)
	}
}

// A flood of jobs this worker cannot run does not hold up the ones it can:
// each released job goes to the back, due again only after its delay.
func TestUnknownTaskFloodDoesNotStarveKnownJobs(t *testing.T) {
	task := queue.NewTask[Args, queue.None]("flood.known", queue.TaskOptions{})
	e := newEnv(t, worker.Config{Concurrency: 4, FetchLimit: 4, Logger: discardLogger()})
	worker.Register(e.w, task, func(context.Context, Args) (queue.None, error) { return queue.None{}, nil })
	foreignJobs(t, e.b, "flood.unknown", 500)
	var reqs []queue.Request
	for i := range 20 {
		reqs = append(reqs, task.Request(Args{N: i}, nil))
	}
	refs, err := e.c.EnqueueMany(context.Background(), reqs...) // behind the whole flood
	if err != nil {
		t.Fatal(err)
	}
	e.start()
	for _, ref := range refs {
		if r := e.wait(ref.ID); r.State != job.Done {
			t.Fatalf("%s: %s", ref.ID, r.State)
		}
	}
}
