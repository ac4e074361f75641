package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/amqpbackend"
)

func needRabbit(cfg config) string {
	conn, err := amqp.DialConfig(cfg.rabbitURL, amqp.Config{Dial: amqp.DefaultDial(time.Second)})
	if err != nil {
		return fmt.Sprintf("no RabbitMQ at %s (set -rabbitmq or CONVEYOR_RABBITMQ_URL): %v", cfg.rabbitURL, err)
	}
	conn.Close()
	return ""
}

// benchNames numbers the broker names of each workload, so none sees
// another's messages; every workload deletes what it declared.
var benchNames atomic.Int64

func benchName(kind string) string {
	return fmt.Sprintf("bench-%s-%d-%d", kind, time.Now().UnixNano(), benchNames.Add(1))
}

// deleteQueues deletes queues and exchanges (missing ones are fine).
func deleteQueues(url string, queues, exchanges []string) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return
	}
	defer conn.Close()
	for _, q := range queues {
		if ch, err := conn.Channel(); err == nil {
			_, _ = ch.QueueDelete(q, false, false, false)
			ch.Close()
		}
	}
	for _, ex := range exchanges {
		if ch, err := conn.Channel(); err == nil {
			_ = ch.ExchangeDelete(ex, false, false)
			ch.Close()
		}
	}
}

// openAMQP opens the Conveyor row: the broker alone, no job-state store,
// which is what the raw client it is compared with does too.
func openAMQP(ctx context.Context, cfg config) (backends.Backend, func(), error) {
	prefix := benchName("conveyor")
	b, err := amqpbackend.Open(ctx, amqpbackend.Config{URL: cfg.rabbitURL, Prefix: prefix})
	if err != nil {
		return nil, nil, err
	}
	return b, func() {
		b.Close()
		deleteQueues(cfg.rabbitURL, []string{prefix + ".q.default", prefix + ".dead.default"},
			[]string{prefix + ".work", prefix + ".dead"})
	}, nil
}

// rawPrefetch is the raw consumer's prefetch, as a hand-written amqp091
// consumer would set it.
const rawPrefetch = 100

// The amqp091 row: the same workloads with the raw client on a quorum
// queue: publisher confirms (one at a time for single enqueues, a batch's
// worth in flight for batches), and a consumer with prefetch 100 whose
// goroutines ack each message after running it.
func runRawAMQP(ctx context.Context, cfg config) (row, error) {
	r := row{name: "amqp091"}
	conn, err := amqp.Dial(cfg.rabbitURL)
	if err != nil {
		return r, err
	}
	defer conn.Close()
	pub, err := conn.Channel()
	if err == nil {
		err = pub.Confirm(false)
	}
	if err != nil {
		return r, err
	}
	// pub only publishes; a declare the broker refuses closes the channel
	// it ran on, so each has its own.
	fresh := func() (string, func(), error) {
		q := benchName("raw")
		ch, err := conn.Channel()
		if err != nil {
			return "", nil, err
		}
		defer ch.Close()
		if _, err := ch.QueueDeclare(q, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
			return "", nil, fmt.Errorf("declare %s: %w", q, err)
		}
		return q, func() { deleteQueues(cfg.rabbitURL, []string{q}, nil) }, nil
	}
	publish := func(q string, args noopArgs) (*amqp.DeferredConfirmation, error) {
		body, _ := json.Marshal(args)
		return pub.PublishWithDeferredConfirmWithContext(ctx, "", q, false, false,
			amqp.Publishing{DeliveryMode: amqp.Persistent, ContentType: "application/json", Body: body})
	}
	publishWait := func(q string, args noopArgs) error {
		dc, err := publish(q, args)
		if err == nil && !dc.Wait() {
			err = fmt.Errorf("broker nacked a publish to %s", q)
		}
		return err
	}

	q, drop, err := fresh()
	if err != nil {
		return r, err
	}
	start := time.Now()
	for range cfg.single {
		if err := publishWait(q, noopArgs{}); err != nil {
			return r, err
		}
	}
	r.single = float64(cfg.single) / time.Since(start).Seconds()
	drop()

	burn := func(n, c int, args noopArgs, enqueueRate *float64) (float64, error) {
		q, drop, err := fresh()
		if err != nil {
			return 0, err
		}
		defer drop()
		batch := cfg.batch
		if args != (noopArgs{}) {
			batch = min(batch, 10)
		}
		start := time.Now()
		for i := 0; i < n; i += batch {
			var dcs []*amqp.DeferredConfirmation
			for range min(batch, n-i) {
				dc, err := publish(q, args)
				if err != nil {
					return 0, err
				}
				dcs = append(dcs, dc)
			}
			for _, dc := range dcs {
				if !dc.Wait() {
					return 0, fmt.Errorf("broker nacked a publish to %s", q)
				}
			}
		}
		if enqueueRate != nil {
			*enqueueRate = float64(n) / time.Since(start).Seconds()
		}
		done := newCountdown(n)
		start = time.Now()
		stop, err := rawConsume(conn, q, c, func(a noopArgs) { a.work(); done.ran1() })
		if err != nil {
			return 0, err
		}
		defer stop()
		if err := done.wait("amqp091 burn-down"); err != nil {
			return 0, err
		}
		return float64(n) / time.Since(start).Seconds(), nil
	}
	if err := runDrains(cfg, &r, burn); err != nil {
		return r, err
	}

	q, drop, err = fresh()
	if err != nil {
		return r, err
	}
	defer drop()
	rec := newRecorder(int(cfg.duration.Seconds() * float64(cfg.rate)))
	stop, err := rawConsume(conn, q, cfg.concurrency[0], func(a noopArgs) { rec.record(a.At) })
	if err != nil {
		return r, err
	}
	defer stop()
	err = r.measureLatency(rec, cfg.rate, func() error { return publishWait(q, noopArgs{At: time.Now().UnixNano()}) })
	return r, err
}

// rawConsume consumes q with prefetch rawPrefetch on a channel of its own,
// running fn on c goroutines and acking each message after it.
func rawConsume(conn *amqp.Connection, q string, c int, fn func(noopArgs)) (stop func(), err error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	if err := ch.Qos(rawPrefetch, 0, false); err != nil {
		return nil, err
	}
	deliveries, err := ch.Consume(q, "bench", false, false, false, false, nil)
	if err != nil {
		return nil, err
	}
	var wg sync.WaitGroup
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range deliveries {
				var a noopArgs
				if err := json.Unmarshal(d.Body, &a); err != nil {
					_ = d.Nack(false, false)
					continue
				}
				fn(a)
				_ = d.Ack(false)
			}
		}()
	}
	// Cancel, let the goroutines ack what they hold, then close: an ack
	// racing a closing channel is a connection error for the broker when
	// the channel number is already reused.
	return func() { _ = ch.Cancel("bench", false); wg.Wait(); ch.Close() }, nil
}
