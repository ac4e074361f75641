package amqpbackend

import (
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Delay levels are powers of two milliseconds, from 1ms to about 12 days;
// a longer delay hops through the top level several times.
const maxDelayLevel = 30

// names builds the broker's exchange and queue names from the prefix.
type names string

func (n names) work(q string) string   { return string(n) + ".q." + q }
func (n names) dead(q string) string   { return string(n) + ".dead." + q }
func (n names) workExchange() string   { return string(n) + ".work" }
func (n names) deadExchange() string   { return string(n) + ".dead" }
func (n names) delay(level int) string { return string(n) + ".delay." + strconv.Itoa(1<<level) }

// delayLevel returns the level a message waits in when it is due in d > 0:
// the largest whose TTL is not above d, so it never arrives early.
func delayLevel(d time.Duration) int {
	ms := d.Milliseconds()
	if ms < 1 {
		return 0
	}
	return min(bits.Len64(uint64(ms))-1, maxDelayLevel)
}

// declareBase declares the two exchanges every queue uses.
func declareBase(ch *amqp.Channel, n names) error {
	for _, ex := range []string{n.workExchange(), n.deadExchange()} {
		if err := ch.ExchangeDeclare(ex, amqp.ExchangeDirect, true, false, false, false, nil); err != nil {
			return fmt.Errorf("declare exchange %s: %w", ex, err)
		}
	}
	return nil
}

// declareQueue declares queue q's work queue of the given type, bounded by
// x-max-length when bound > 0, and returns what the broker said of it.
func declareQueue(ch *amqp.Channel, n names, q, kind string, bound int) (amqp.Queue, error) {
	args := amqp.Table{
		"x-queue-type":              kind,
		"x-dead-letter-exchange":    n.deadExchange(),
		"x-dead-letter-routing-key": q,
	}
	if bound > 0 {
		args["x-max-length"] = int64(bound)
		args["x-overflow"] = "reject-publish"
	}
	st, err := ch.QueueDeclare(n.work(q), true, false, false, false, args)
	if err != nil {
		return st, fmt.Errorf("declare queue %s: %w", n.work(q), err)
	}
	if err := ch.QueueBind(n.work(q), q, n.workExchange(), false, nil); err != nil {
		return st, fmt.Errorf("bind queue %s: %w", n.work(q), err)
	}
	return st, nil
}

// declareDead declares queue q's dead-letter queue. It is declared with
// the first dead letter, not with the queue: the broker dead-letters
// nothing on its own (no TTL, no delivery limit, overflow rejects
// publishes), and a quorum queue costs the broker a Raft group.
func declareDead(ch *amqp.Channel, n names, q string) (amqp.Queue, error) {
	st, err := ch.QueueDeclare(n.dead(q), true, false, false, false, amqp.Table{"x-queue-type": "quorum"})
	if err != nil {
		return st, fmt.Errorf("declare queue %s: %w", n.dead(q), err)
	}
	if err := ch.QueueBind(n.dead(q), q, n.deadExchange(), false, nil); err != nil {
		return st, fmt.Errorf("bind queue %s: %w", n.dead(q), err)
	}
	return st, nil
}

// declareDelay declares one delay level: a fanout exchange into a queue
// whose messages all live exactly 2^level ms, then dead-letter, with their
// routing key (the queue name), into the work exchange. One TTL per queue
// keeps expiry in FIFO order; at-least-once dead-lettering loses none.
func declareDelay(ch *amqp.Channel, n names, level int) error {
	name := n.delay(level)
	if err := ch.ExchangeDeclare(name, amqp.ExchangeFanout, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare exchange %s: %w", name, err)
	}
	args := amqp.Table{
		"x-queue-type":           "quorum",
		"x-message-ttl":          int64(1) << level,
		"x-dead-letter-exchange": n.workExchange(),
		"x-dead-letter-strategy": "at-least-once",
		"x-overflow":             "reject-publish",
	}
	if _, err := ch.QueueDeclare(name, true, false, false, false, args); err != nil {
		return fmt.Errorf("declare queue %s: %w", name, err)
	}
	if err := ch.QueueBind(name, "", name, false, nil); err != nil {
		return fmt.Errorf("bind queue %s: %w", name, err)
	}
	return nil
}

// isPrecondition reports whether err is the broker refusing a declare whose
// arguments differ from the existing queue's (406 PRECONDITION_FAILED).
func isPrecondition(err error) bool {
	var ae *amqp.Error
	return errors.As(err, &ae) && ae.Code == amqp.PreconditionFailed
}
