package chaos_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/redisbackend"
	"github.com/conveyorhq/conveyor/backends/sqlitebackend"
	"github.com/conveyorhq/conveyor/job"
)

// What a corrupted job must end as.
const (
	expectDead     = "dead"     // dead, with a reason in its last attempt error
	expectGone     = "gone"     // not found, never run, its ID in some process's log
	expectRestored = "restored" // a store record lost: restored from the message, the job runs, its ID logged
	expectIntact   = "intact"   // the damage was not applied (or refused): the job finishes as any other
	// expectEither: applying the damage failed without saying whether it
	// landed (a reply lost as the server restarted, and the client's
	// retry met the server loading: seen on Redis), so the job ends as
	// the damage's expectation says, or as an intact job.
	expectEither = "either"
)

// corruptor damages one waiting job in its backend's own storage format.
// apply fails when the job was no longer waiting (so nothing was changed),
// or with errRefused when the storage itself refused the damage.
type corruptor struct {
	name   string
	expect string
	// noTarget: apply makes the job itself (a message published past the
	// backend), so no job is enqueued first.
	noTarget bool
	apply    func(ctx context.Context, id, queue string) error
}

var (
	errNotWaiting = errors.New("the job was no longer waiting")
	errRefused    = errors.New("the storage refused the damage")
)

// target is one corrupted job and what became of the corruption.
type target struct {
	id, queue, how string
	expect         string
	note           string // why the damage was not applied, or was refused
	either         string // with expectEither, the damage's own expectation
	verdict        string // set by the accounting: "" when the job ended as expected
}

// targetDelay keeps the targets waiting (scheduled) while they are
// damaged; the damage checks that they still are.
const targetDelay = 5 * time.Second

// inject enqueues a few delayed jobs per corruptor, half of them into the
// bounded queue (where damage can leak the depth bound's count), and
// damages them.
func inject(t *testing.T, enq *enqueuers, cs []corruptor, total int) []*target {
	per := max(4, total/400)
	var log enqueueLog // targets are accounted for by their expectation, not as ordinary jobs
	var out []*target
	for ci, c := range cs {
		for i := range per {
			// Fixed width, so no ID is part of another: the logs are searched for them.
			id := fmt.Sprintf("x%02d%04d", ci, i)
			q := mainQueue
			if i%2 == 1 {
				q = boundedQueue
			}
			tg := &target{id: id, queue: q, how: c.name, expect: c.expect}
			if !c.noTarget && !enqueueTarget(enq, &log, tg) {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := c.apply(ctx, id, q)
			cancel()
			switch {
			case errors.Is(err, errRefused), errors.Is(err, errNotWaiting):
				tg.expect, tg.note = expectIntact, err.Error()
			case err != nil && c.noTarget:
				continue // no message was published: there is nothing to check
			case err != nil:
				tg.either, tg.expect, tg.note = tg.expect, expectEither, err.Error()
			}
			out = append(out, tg)
		}
	}
	return out
}

// enqueueTarget enqueues a target, trying a full bounded queue again for a
// while; it reports whether the job is stored.
func enqueueTarget(enq *enqueuers, log *enqueueLog, tg *target) bool {
	deadline := time.Now().Add(3 * time.Second)
	for {
		e := enqueueOne(enq.c, log, tg.id, tg.queue, chaosArgs{Kind: quick, Sleep: 1}, targetDelay)
		if e.status == acked {
			return true
		}
		if e.status == ambiguous || time.Now().After(deadline) {
			return false // an ambiguous one stays out of the check: it may not exist
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func sqliteCorruptors(path string) []corruptor {
	var once sync.Once
	var db *sql.DB
	var openErr error
	exec := func(query string) func(ctx context.Context, id, _ string) error {
		return func(ctx context.Context, id, _ string) error {
			once.Do(func() { db, openErr = sqlitebackend.OpenDB(path, 5*time.Second) })
			if openErr != nil {
				return openErr
			}
			return affectedOne(db.ExecContext(ctx, query, id))
		}
	}
	const where = ` WHERE id = ? AND state = 'scheduled'`
	return []corruptor{
		{name: "UPDATE state='bogus'", expect: expectDead, apply: exec(`UPDATE conveyor_jobs SET state = 'bogus'` + where)},
		{name: "UPDATE run_at='abc'", expect: expectDead, apply: exec(`UPDATE conveyor_jobs SET run_at = 'abc'` + where)},
		{name: "UPDATE payload=garbage", expect: expectDead, apply: exec(`UPDATE conveyor_jobs SET payload = x'00ff'` + where)},
	}
}

func affectedOne(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("%w (%d rows, %v)", errNotWaiting, n, err)
	}
	return nil
}

// pgCorruptors damages jobs in the tables of schema.
func pgCorruptors(url, schema string) []corruptor {
	jobs := pgx.Identifier{schema, "jobs"}.Sanitize()
	exec := func(query string) func(ctx context.Context, id, _ string) error {
		return func(ctx context.Context, id, _ string) error {
			conn, err := pgx.Connect(ctx, url)
			if err != nil {
				return err
			}
			defer conn.Close(ctx)
			tag, err := conn.Exec(ctx, query, id)
			var pe *pgconn.PgError
			if errors.As(err, &pe) && pe.Code == "23514" { // check_violation: the schema knows the states
				return fmt.Errorf("%w: %s", errRefused, pe.Message)
			}
			if err != nil {
				return err
			}
			if tag.RowsAffected() != 1 {
				return errNotWaiting
			}
			return nil
		}
	}
	const where = ` WHERE id = $1 AND state = 'scheduled'`
	return []corruptor{
		{name: "UPDATE state='bogus'", expect: expectDead, apply: exec(`UPDATE ` + jobs + ` SET state = 'bogus'` + where)},
		{name: "UPDATE payload=garbage", expect: expectDead, apply: exec(`UPDATE ` + jobs + ` SET payload = '\x00ff'::bytea` + where)},
	}
}

// redisClient connects to the case's Redis or Redis Cluster, without
// go-redis's retries: a damage whose reply a restart lost would be sent
// again, find its own work done, and answer "not waiting" for a job it
// had damaged (CI, 2026-12-08: a deleted hash held to finish intact). An
// error instead leaves the damage's outcome open (expectEither).
func redisClient(sp spec) redis.UniversalClient {
	if rest, ok := strings.CutPrefix(sp.URL, "redis+cluster://"); ok {
		return redis.NewClusterClient(&redis.ClusterOptions{Addrs: strings.Split(rest, ","), MaxRetries: -1})
	}
	opt, err := redis.ParseURL(sp.URL)
	if err != nil {
		panic(err) // the test built the URL
	}
	opt.MaxRetries = -1
	return redis.NewClient(opt)
}

// ifScheduled runs the damage only while the job hash says scheduled.
const ifScheduled = `if redis.call('HGET', KEYS[1], 's') ~= 'scheduled' then return 0 end `

func redisCorruptors(sp spec) []corruptor {
	script := func(body string) func(ctx context.Context, id, q string) error {
		return func(ctx context.Context, id, q string) error {
			rdb := redisClient(sp)
			defer rdb.Close()
			key := sp.Prefix + ":{" + q + "}:j:" + id
			n, err := rdb.Eval(ctx, ifScheduled+body+` return 1`, []string{key}).Int()
			if err == nil && n != 1 {
				err = errNotWaiting
			}
			return err
		}
	}
	return []corruptor{
		{name: "HSET s bogus", expect: expectDead, apply: script(`redis.call('HSET', KEYS[1], 's', 'bogus')`)},
		{name: "DEL job hash", expect: expectGone, apply: script(`redis.call('DEL', KEYS[1])`)},
		{name: "HSET p garbage", expect: expectDead, apply: script(`redis.call('HSET', KEYS[1], 'p', '\0garbage')`)},
	}
}

func amqpStoreCorruptors(sp spec) []corruptor {
	// A record gone without the tombstone an operator's delete leaves is
	// the store's loss, not the job's end: the message still carries the
	// whole job.
	return []corruptor{{name: "delete store record", expect: expectRestored, apply: func(ctx context.Context, id, _ string) error {
		st, err := redisbackend.Open(ctx, sp.Store, redisbackend.Config{Prefix: "store", JanitorEvery: -1})
		if err != nil {
			return err
		}
		defer st.Close()
		key := sp.Prefix + "/amqp/job/" + id
		kv, err := st.GetKV(ctx, backends.GetKVParams{Key: key})
		if err != nil {
			return err
		}
		var d struct{ State job.State }
		if err := json.Unmarshal(kv.Value, &d); err != nil || d.State != job.Scheduled {
			return fmt.Errorf("%w: %s (%v)", errNotWaiting, d.State, err)
		}
		return st.DeleteKV(ctx, backends.DeleteKVParams{Key: key, IfVersion: kv.Version})
	}}}
}

// amqpGarbage publishes messages that are no job into the work queues,
// past the backend: one without a task name, one whose body does not
// decode into the task's arguments. The body names the message, as a dead
// letter of a message that is no job keeps its body but not its
// message-id.
func amqpGarbage(sp spec) []corruptor {
	publish := func(msg amqp.Publishing) func(ctx context.Context, id, q string) error {
		return func(ctx context.Context, id, q string) error {
			msg.MessageId, msg.DeliveryMode = id, amqp.Persistent
			msg.Body = append(append([]byte(nil), msg.Body...), " "+id...)
			return publishConfirmed(ctx, sp.URL, sp.Prefix+".work", q, msg)
		}
	}
	return []corruptor{
		{name: "publish without task name", expect: expectDead, noTarget: true, apply: publish(amqp.Publishing{Body: []byte("garbage")})},
		{name: "publish garbage body", expect: expectDead, noTarget: true, apply: publish(amqp.Publishing{Type: "chaos.job", Body: []byte("\x00garbage")})},
	}
}

// publishConfirmed publishes one message and waits for the broker's
// confirm; a nack (a full bounded queue) is an error.
func publishConfirmed(ctx context.Context, url, exchange, key string, msg amqp.Publishing) error {
	conn, err := amqp.Dial(url)
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	if err := ch.Confirm(false); err != nil {
		return err
	}
	dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, false, false, msg)
	if err != nil {
		return err
	}
	ok, err := dc.WaitContext(ctx)
	if err == nil && !ok {
		err = errors.New("the broker nacked the publish")
	}
	return err
}
