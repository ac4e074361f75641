package amqpbackend_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/amqpbackend"
	"github.com/conveyorhq/conveyor/internal/faulttest"
	"github.com/conveyorhq/conveyor/internal/testenv"
	"github.com/conveyorhq/conveyor/job"
)

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// RabbitMQ is restarted while a worker runs and an enqueuer keeps
// enqueuing: the Backend reconnects, declares its topology again and its
// consumers resume; every job whose enqueue the broker confirmed runs.
func TestWorkerRidesOutBrokerRestart(t *testing.T) {
	srv := testenv.StartRabbitMQ(t)
	b := open(t, amqpbackend.Config{URL: srv.URL, Store: sqliteStore(t), ReconnectWait: 200 * time.Millisecond})
	faulttest.RideOutRestart(t, b, srv, faulttest.RestartParams{Server: "RabbitMQ", Queue: "restart", Poll: 100 * time.Millisecond,
		Jobs: 100, After: 60 * time.Second})
}

// rawChannel returns a channel of a plain amqp091 connection to the
// shared broker, for tests that write or read the broker directly.
func rawChannel(t testing.TB) *amqp.Channel {
	t.Helper()
	conn, err := amqp.Dial(testenv.RabbitMQURL(t))
	must(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	must(t, err)
	return ch
}

// Messages that are no job (no message-id, or no task name) do not stop
// the consumer: they move, as they are (properties, headers and body) and
// with the reason, to the queue's dead-letter queue, where ListDead shows
// their message-id and headers, and the jobs around them run.
func TestMalformedMessagesGoToDeadLetter(t *testing.T) {
	b := open(t, amqpbackend.Config{})
	ctx := context.Background()
	q := fresh("malformed")
	ins := func(id string) *backends.JobInsert { return &backends.JobInsert{ID: id, Queue: q, Task: "t"} }
	_, err := b.Enqueue(ctx, backends.EnqueueParams{Jobs: []*backends.JobInsert{ins("before")}})
	must(t, err)
	ch := rawChannel(t)
	bad := map[string]amqp.Publishing{
		"bad-body": {MessageId: "bad-body", Body: []byte("not json at all"), CorrelationId: "corr-1",
			ContentType: "text/plain", Headers: amqp.Table{"tenant": "acme", "attempt": int32(3)}},
		"no-task": {MessageId: "no-task", Body: []byte(`{"ID":"x","Queue":"` + q + `"}`), CorrelationId: "corr-2",
			ContentType: "application/json", Headers: amqp.Table{"tenant": "acme"}},
		"": {Body: []byte("no id either")},
	}
	for _, m := range bad {
		must(t, ch.PublishWithContext(ctx, "", testPrefix+".q."+q, false, false, m))
	}
	_, err = b.Enqueue(ctx, backends.EnqueueParams{Jobs: []*backends.JobInsert{ins("after")}})
	must(t, err)

	var got []string
	testenv.WaitFor(t, 10*time.Second, "both jobs", func() bool {
		recs, err := b.Reserve(ctx, backends.ReserveParams{Queue: q, Limit: 10, Lease: time.Minute})
		must(t, err)
		for _, r := range recs {
			got = append(got, r.ID)
			must(t, b.Complete(ctx, backends.CompleteParams{Lease: r.Lease}))
		}
		return len(got) == 2
	})
	if got[0] != "before" || got[1] != "after" {
		t.Fatalf("ran %v, want before, after", got)
	}
	var dead []*job.Record
	testenv.WaitFor(t, 10*time.Second, "the malformed messages in dead letter", func() bool {
		dead, err = b.(*amqpbackend.Backend).ListDead(ctx, amqpbackend.DeadParams{Queue: q})
		must(t, err)
		return len(dead) == len(bad)
	})
	for _, r := range dead {
		m, ok := bad[r.ID]
		if !ok || string(r.Payload) != string(m.Body) || r.LastError() == nil || r.LastError().Error == "" {
			t.Fatalf("dead letter %+v; want one of the malformed messages by ID, with a reason", r)
		}
		want := map[string]string{}
		for k, v := range m.Headers {
			want[k] = fmt.Sprint(v)
		}
		if !maps.Equal(r.Headers, want) {
			t.Fatalf("dead letter %s has headers %v, want those published: %v", r.ID, r.Headers, m.Headers)
		}
		t.Logf("dead letter %q: %s", r.ID, r.LastError().Error)
	}
	// The dead-letter queue is up (ListDead read it): read the properties
	// ListDead does not show straight from the broker.
	for range bad {
		d, ok, err := ch.Get(testPrefix+".dead."+q, true)
		must(t, err)
		if !ok {
			t.Fatal("dead letters gone after ListDead")
		}
		if m := bad[d.MessageId]; d.CorrelationId != m.CorrelationId || d.ContentType != m.ContentType {
			t.Fatalf("dead letter %q has correlation-id %q, content-type %q; want %q, %q",
				d.MessageId, d.CorrelationId, d.ContentType, m.CorrelationId, m.ContentType)
		}
	}
}

// A job dead-lettered by its handler, or as poison, keeps the properties
// and headers of the message it came in, so an operator can correlate it.
func TestDeadLettersKeepTheMessageProperties(t *testing.T) {
	b := open(t, amqpbackend.Config{})
	ctx := context.Background()
	q := fresh("dead-props")
	_, err := b.Enqueue(ctx, backends.EnqueueParams{Jobs: []*backends.JobInsert{{ID: "own", Queue: q, Task: "t"}}})
	must(t, err)
	ch := rawChannel(t)
	props := func(id string, h amqp.Table) amqp.Publishing {
		h["tenant"] = "acme"
		return amqp.Publishing{MessageId: id, Type: "t", CorrelationId: "corr-" + id, ContentType: "application/json",
			AppId: "billing", Headers: h, Body: []byte(`{}`)}
	}
	must(t, ch.PublishWithContext(ctx, testPrefix+".work", q, false, false, props("explicit", amqp.Table{})))
	must(t, ch.PublishWithContext(ctx, testPrefix+".work", q, false, false, props("poison", amqp.Table{
		"x-conveyor-deliveries": int64(1), "x-conveyor-max-deliveries": int64(1)}))) // delivered once already: this one is past the limit
	var explicit *job.Record
	testenv.WaitFor(t, 10*time.Second, "the explicit job", func() bool { // the poison one never runs
		recs, err := b.Reserve(ctx, backends.ReserveParams{Queue: q, Limit: 10, Lease: time.Minute})
		must(t, err)
		for _, r := range recs {
			if r.ID == "poison" {
				t.Fatal("the poison message ran")
			}
			if r.ID == "explicit" {
				explicit = r
			}
		}
		return explicit != nil
	})
	must(t, b.DeadLetter(ctx, backends.DeadLetterParams{Lease: explicit.Lease, Error: job.AttemptError{Attempt: 1, Error: "declined"}}))
	seen := map[string]amqp.Delivery{}
	testenv.WaitFor(t, 10*time.Second, "both dead letters", func() bool {
		// The poison message is found when a Reserve hands it out.
		if recs, err := b.Reserve(ctx, backends.ReserveParams{Queue: q, Limit: 10, Lease: time.Minute}); err != nil || len(recs) > 0 {
			t.Fatalf("Reserve = %v, %v; want nothing (the poison message is dead)", recs, err)
		}
		// Read through the backend first: the dead-letter queue was just declared.
		_, err := b.(*amqpbackend.Backend).ListDead(ctx, amqpbackend.DeadParams{Queue: q})
		must(t, err)
		d, ok, err := ch.Get(testPrefix+".dead."+q, true)
		if isNotFound(err) {
			ch = rawChannel(t)
			return false
		}
		must(t, err)
		if ok {
			seen[d.MessageId] = d
		}
		return len(seen) == 2
	})
	for id, d := range seen {
		if d.CorrelationId != "corr-"+id || d.AppId != "billing" || d.ContentType != "application/json" || d.Headers["tenant"] != "acme" || d.Type != "t" {
			t.Fatalf("dead letter %s lost the message's properties: %+v", id, d)
		}
		if d.Headers["x-conveyor-reason"] == nil || d.Headers["x-conveyor-errors"] == nil {
			t.Fatalf("dead letter %s has no reason or errors: %v", id, d.Headers)
		}
	}
}

func isNotFound(err error) bool {
	var ae *amqp.Error
	return errors.As(err, &ae) && ae.Code == amqp.NotFound
}

// Without a store the broker itself bounds the queue: concurrent
// publishers get at most the bound accepted on a classic queue, and at
// most one more on a quorum queue (it learns it is full asynchronously;
// the Backend publishes one at a time per bounded queue to keep the race to
// that one). The rest fail with job.ErrQueueFull, and the queue holds
// exactly what was accepted.
func TestBrokerBoundsConcurrentPublishers(t *testing.T) {
	for _, kind := range []string{"quorum", "classic"} {
		t.Run(kind, func(t *testing.T) { testBrokerBound(t, kind) })
	}
}

func testBrokerBound(t *testing.T, kind string) {
	b := open(t, amqpbackend.Config{QueueType: kind})
	q := fresh("bounded-" + kind)
	ctx := context.Background()
	const bound, publishers, each = 20, 16, 10
	var mu sync.Mutex
	ok, full := 0, 0
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				_, err := b.Enqueue(ctx, backends.EnqueueParams{Jobs: []*backends.JobInsert{{
					ID: string(rune('a'+p)) + "-" + string(rune('a'+i)), Queue: q, Task: "t", MaxDepth: bound}}})
				mu.Lock()
				switch {
				case err == nil:
					ok++
				case errors.Is(err, job.ErrQueueFull):
					full++
				default:
					t.Errorf("Enqueue: %v", err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	most := bound
	if kind == "quorum" {
		most++
	}
	if ok < bound || ok > most || ok+full != publishers*each {
		t.Fatalf("%d accepted, %d refused as full; want %d to %d accepted of %d", ok, full, bound, most, publishers*each)
	}
	held, err := rawChannel(t).QueueDeclarePassive(testPrefix+".q."+q, true, false, false, false, nil)
	must(t, err)
	if held.Messages != ok {
		t.Fatalf("the queue holds %d messages, %d were accepted", held.Messages, ok)
	}
	t.Logf("%d accepted, %d refused", ok, full)
}

// Dead letters can be read and replayed from the broker alone: the job
// comes back with a fresh delivery count and its attempt history, and a
// message that is no job stays in the dead-letter queue.
func TestReplayDeadWithoutStore(t *testing.T) {
	b, err := amqpbackend.Open(context.Background(), amqpbackend.Config{URL: testenv.RabbitMQURL(t), Prefix: testPrefix})
	must(t, err)
	defer b.Close()
	ctx := context.Background()
	q := fresh("replay-dead")
	_, err = b.Enqueue(ctx, backends.EnqueueParams{Jobs: []*backends.JobInsert{{ID: "d1", Queue: q, Task: "t", Payload: []byte("p")}}})
	must(t, err)
	recs, err := b.Reserve(ctx, backends.ReserveParams{Queue: q, Limit: 1, Lease: time.Minute})
	must(t, err)
	must(t, b.DeadLetter(ctx, backends.DeadLetterParams{Lease: recs[0].Lease, Error: job.AttemptError{Attempt: 1, Error: "card declined"}}))
	must(t, rawChannel(t).PublishWithContext(ctx, testPrefix+".dead", q, false, false, amqp.Publishing{Body: []byte("garbage")}))

	var dead []*job.Record
	testenv.WaitFor(t, 10*time.Second, "two dead letters", func() bool {
		dead, err = b.ListDead(ctx, amqpbackend.DeadParams{Queue: q})
		must(t, err)
		return len(dead) == 2
	})
	if dead[0].ID != "d1" || dead[0].LastError() == nil || dead[0].LastError().Error != "card declined" {
		t.Fatalf("first dead letter = %+v", dead[0])
	}
	n, err := b.ReplayDead(ctx, amqpbackend.DeadParams{Queue: q})
	if err != nil || n != 1 {
		t.Fatalf("ReplayDead = %d, %v; want 1", n, err)
	}
	var again []*job.Record
	testenv.WaitFor(t, 10*time.Second, "the replayed job", func() bool {
		again, err = b.Reserve(ctx, backends.ReserveParams{Queue: q, Limit: 1, Lease: time.Minute})
		must(t, err)
		return len(again) == 1
	})
	if r := again[0]; r.ID != "d1" || r.Deliveries != 1 || r.Attempts() != 1 || string(r.Payload) != "p" {
		t.Fatalf("replayed job: %+v", r)
	}
	left, err := b.ListDead(ctx, amqpbackend.DeadParams{Queue: q})
	must(t, err)
	if len(left) != 1 || string(left[0].Payload) != "garbage" {
		t.Fatalf("left in dead letter: %+v, want the garbage message", left)
	}
}

// A payload past the broker's size limit is refused before it reaches the
// broker (which would close the channel), and the backend carries on.
func TestOversizedPayloadIsRefused(t *testing.T) {
	b := open(t, amqpbackend.Config{MaxMessageBytes: 1024})
	ctx := context.Background()
	q := fresh("oversized")
	_, err := b.Enqueue(ctx, backends.EnqueueParams{Jobs: []*backends.JobInsert{
		{ID: "small", Queue: q, Task: "t", Payload: make([]byte, 10)},
		{ID: "big", Queue: q, Task: "t", Payload: make([]byte, 2048)},
	}})
	if !errors.Is(err, job.ErrPayloadTooLarge) {
		t.Fatalf("Enqueue of 2 KiB = %v, want ErrPayloadTooLarge", err)
	}
	_, err = b.Enqueue(ctx, backends.EnqueueParams{Jobs: []*backends.JobInsert{{ID: "ok", Queue: q, Task: "t", Payload: make([]byte, 1024)}}})
	must(t, err)
	recs, err := b.Reserve(ctx, backends.ReserveParams{Queue: q, Limit: 10, Lease: time.Minute})
	must(t, err)
	if len(recs) != 1 || recs[0].ID != "ok" {
		t.Fatalf("reserved %v, want only the job that fit (nothing of the refused batch)", recs)
	}
}

// Delays hop down the power-of-two TTL queues: a job never becomes due
// before its run-at, and the lateness each delay got, from its run-at to
// the Reserve its announcement triggered, is logged (it depends on the
// machine, so it is reported, not asserted).
func TestDelaysNeverRunEarly(t *testing.T) {
	b := open(t, amqpbackend.Config{})
	ctx := context.Background()
	q := fresh("delays")
	delays := []time.Duration{10 * time.Millisecond, 100 * time.Millisecond, 333 * time.Millisecond, 1500 * time.Millisecond}
	runAt := map[string]time.Time{}
	now := time.Now()
	var batch []*backends.JobInsert
	for i, d := range delays {
		id := fmt.Sprint("delay-", i)
		runAt[id] = now.Add(d)
		batch = append(batch, &backends.JobInsert{ID: id, Queue: q, Task: "t", RunAt: runAt[id]})
	}
	events, err := b.(backends.Notifier).Listen(ctx, backends.ListenParams{Queues: []string{q}})
	must(t, err)
	_, err = b.Enqueue(ctx, backends.EnqueueParams{Jobs: batch})
	must(t, err)
	deadline := time.After(20 * time.Second)
	for got := 0; got < len(delays); {
		select { // a job that becomes due is announced; reserve then
		case <-events:
		case <-deadline:
			t.Fatalf("%d of %d delayed jobs became due", got, len(delays))
		}
		recs, err := b.Reserve(ctx, backends.ReserveParams{Queue: q, Limit: 10, Lease: time.Minute})
		must(t, err)
		at := time.Now()
		for _, r := range recs {
			if at.Before(runAt[r.ID]) {
				t.Fatalf("job %s reserved %s before its run-at", r.ID, runAt[r.ID].Sub(at))
			}
			t.Logf("%s (delay %s) reserved %s late", r.ID, runAt[r.ID].Sub(now).Round(time.Millisecond), at.Sub(runAt[r.ID]).Round(100*time.Microsecond))
			must(t, b.Complete(ctx, backends.CompleteParams{Lease: r.Lease}))
			got++
		}
	}
}

// With a store, a finished job is kept for KeepDone (KeepDead if dead),
// then forgotten, as the other backends prune theirs.
func TestStoreForgetsFinishedJobsAfterRetention(t *testing.T) {
	// KeepDone is long enough for the GetJob right after the Complete on
	// a loaded machine, short enough to wait for.
	b := open(t, amqpbackend.Config{Store: sqliteStore(t), KeepDone: 3 * time.Second, KeepDead: time.Hour})
	in := b.(backends.Inspector)
	ctx := context.Background()
	q := fresh("retention")
	_, err := b.Enqueue(ctx, backends.EnqueueParams{Jobs: []*backends.JobInsert{{ID: "done", Queue: q, Task: "t"}, {ID: "dead", Queue: q, Task: "t"}}})
	must(t, err)
	recs, err := b.Reserve(ctx, backends.ReserveParams{Queue: q, Limit: 2, Lease: time.Minute})
	must(t, err)
	if len(recs) != 2 {
		t.Fatalf("reserved %d jobs, want 2", len(recs))
	}
	must(t, b.Complete(ctx, backends.CompleteParams{Lease: recs[0].Lease}))
	must(t, b.DeadLetter(ctx, backends.DeadLetterParams{Lease: recs[1].Lease, Error: job.AttemptError{Error: "x"}}))
	if r, err := in.GetJob(ctx, backends.GetJobParams{ID: "done"}); err != nil || r.State != job.Done {
		t.Fatalf("GetJob(done) right after = %+v, %v", r, err)
	}
	testenv.WaitFor(t, 20*time.Second, "the done job to be forgotten", func() bool {
		_, err := in.GetJob(ctx, backends.GetJobParams{ID: "done"})
		return errors.Is(err, job.ErrNotFound)
	})
	if r, err := in.GetJob(ctx, backends.GetJobParams{ID: "dead"}); err != nil || r.State != job.Dead {
		t.Fatalf("the dead job, kept for an hour: %+v, %v", r, err)
	}
}

// Once running jobs hold the whole prefetch, the broker pushes nothing
// more: Reserve pulls with basic.get, so a worker still gets every job.
func TestReservePastThePrefetch(t *testing.T) {
	b := open(t, amqpbackend.Config{Prefetch: 2})
	ctx := context.Background()
	q := fresh("prefetch")
	var batch []*backends.JobInsert
	for i := range 5 {
		batch = append(batch, &backends.JobInsert{ID: fmt.Sprint("p-", i), Queue: q, Task: "t"})
	}
	_, err := b.Enqueue(ctx, backends.EnqueueParams{Jobs: batch})
	must(t, err)
	var held []*job.Record
	testenv.WaitFor(t, 10*time.Second, "all five jobs held at once", func() bool {
		recs, err := b.Reserve(ctx, backends.ReserveParams{Queue: q, Limit: 1, Lease: time.Minute})
		must(t, err)
		held = append(held, recs...)
		return len(held) == 5
	})
	for i, r := range held {
		if r.ID != fmt.Sprint("p-", i) {
			t.Fatalf("reserved %s at %d, want enqueue order", r.ID, i)
		}
		must(t, b.Complete(ctx, backends.CompleteParams{Lease: r.Lease}))
	}
}

// A quorum queue another process is declaring exists (a passive declare
// finds it) a moment before its Raft member has started; a consume then
// fails with 541 noproc, which closes the whole connection. Reserve finds
// such a queue and waits for it to serve reads instead of consuming at
// once. Here Reserve looks again and again while another connection
// declares the queue, as a worker's Reserve does while a producer's first
// Enqueue declares it.
func TestReserveWaitsForAQueueBeingDeclared(t *testing.T) {
	b := open(t, amqpbackend.Config{})
	ch := rawChannel(t)
	ctx := context.Background()
	for i := range 20 {
		q := fresh("declaring" + strconv.Itoa(i))
		declared := make(chan error, 1)
		go func() {
			_, err := ch.QueueDeclare(testPrefix+".q."+q, true, false, false, false, amqp.Table{"x-queue-type": "quorum"})
			declared <- err
		}()
		for done := false; !done; {
			select {
			case err := <-declared:
				must(t, err)
				done = true
			default:
			}
			recs, err := b.Reserve(ctx, backends.ReserveParams{Queue: q, Limit: 1, Lease: time.Minute})
			if err != nil || len(recs) != 0 {
				t.Fatalf("Reserve on queue %d while it is declared = %v, %v; want nothing, no error", i, recs, err)
			}
		}
	}
}
