package amqpbackend

import (
	"encoding/json"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/conveyorhq/conveyor/job"
)

// A job travels as an ordinary AMQP message: its payload is the body, its
// ID the message-id and its task name the type, so other AMQP tools see
// what it is; the rest of the job is in headers named x-conveyor-*, each
// left out when it is zero (run-at, when it is the creation time). Times
// are Unix nanoseconds. The queue is where the message is: it is not
// carried.
const (
	hHeaders       = "x-conveyor-headers"
	hPriority      = "x-conveyor-priority"
	hRunAt         = "x-conveyor-run-at"
	hCreatedAt     = "x-conveyor-created-at"
	hDeliveries    = "x-conveyor-deliveries" // of earlier messages of the job
	hMaxDeliveries = "x-conveyor-max-deliveries"
	hTimeout       = "x-conveyor-timeout"
	hRetryPolicy   = "x-conveyor-retry-policy"
	hUniqueKey     = "x-conveyor-unique-key"
	hUniqueUntil   = "x-conveyor-unique-until"
	hErrors        = "x-conveyor-errors" // JSON array of attempt errors
	hIncarnation   = "x-conveyor-incarnation"
	hRetriedFrom   = "x-conveyor-retried-from" // the delivery whose retry or snooze published it
	hBounded       = "x-conveyor-bounded"
	// reasonHeader carries a dead letter's reason, for operators reading
	// the dead-letter queue with other tools; hDeadAt when it died; hUserID
	// the user-id of the message that died, which the broker would refuse
	// in a publish of another user.
	reasonHeader = "x-conveyor-reason"
	hDeadAt      = "x-conveyor-dead-at"
	hUserID      = "x-conveyor-user-id"
)

// encode returns the message that carries d.
func encode(d *doc) (amqp.Publishing, error) {
	h := amqp.Table{}
	setInt := func(k string, v int64) {
		if v != 0 {
			h[k] = v
		}
	}
	setTime := func(k string, t time.Time) {
		if !t.IsZero() {
			h[k] = t.UnixNano()
		}
	}
	setString := func(k, v string) {
		if v != "" {
			h[k] = v
		}
	}
	if len(d.Headers) > 0 {
		t := make(amqp.Table, len(d.Headers))
		for k, v := range d.Headers {
			t[k] = v
		}
		h[hHeaders] = t
	}
	setInt(hPriority, int64(d.Priority))
	if !d.RunAt.Equal(d.CreatedAt) {
		setTime(hRunAt, d.RunAt)
	}
	setTime(hCreatedAt, d.CreatedAt)
	setInt(hDeliveries, int64(d.Deliveries))
	setInt(hMaxDeliveries, int64(d.MaxDeliveries))
	setInt(hTimeout, int64(d.Timeout))
	setString(hRetryPolicy, d.RetryPolicy)
	setString(hUniqueKey, d.UniqueKey)
	setTime(hUniqueUntil, d.UniqueUntil)
	setInt(hIncarnation, int64(d.Incarnation))
	setInt(hRetriedFrom, int64(d.RetriedFrom))
	if d.Bounded {
		h[hBounded] = true
	}
	if len(d.Errors) > 0 {
		b, err := json.Marshal(d.Errors)
		if err != nil {
			return amqp.Publishing{}, fmt.Errorf("amqpbackend: encode job %s: %w", d.ID, err)
		}
		h[hErrors] = string(b)
	}
	return amqp.Publishing{MessageId: d.ID, Type: d.Task, Headers: h, Body: d.Payload, DeliveryMode: amqp.Persistent}, nil
}

// decode reads the job a message of queue q carries, rejecting one that
// cannot be a job (no ID or task name, or a header of the wrong type).
func decode(m amqp.Delivery, q string) (*doc, error) {
	if m.MessageId == "" || m.Type == "" {
		return nil, fmt.Errorf("%w: message has no job ID (message-id) or task name (type)", job.ErrMalformedPayload)
	}
	d := &doc{Record: job.Record{ID: m.MessageId, Queue: q, Task: m.Type, Payload: m.Body, State: job.Pending}}
	var bad string
	num := func(k string) int64 {
		switch v := m.Headers[k].(type) {
		case nil:
			return 0
		case int64:
			return v
		case int32:
			return int64(v)
		case int:
			return int64(v)
		default:
			bad = k
			return 0
		}
	}
	str := func(k string) string {
		v, ok := m.Headers[k].(string)
		if !ok && m.Headers[k] != nil {
			bad = k
		}
		return v
	}
	at := func(k string) time.Time {
		if n := num(k); n != 0 {
			return time.Unix(0, n)
		}
		return time.Time{}
	}
	if t, ok := m.Headers[hHeaders].(amqp.Table); ok {
		d.Headers = make(map[string]string, len(t))
		for k, v := range t {
			if s, ok := v.(string); ok {
				d.Headers[k] = s
			} else {
				bad = hHeaders
			}
		}
	} else if m.Headers[hHeaders] != nil {
		bad = hHeaders
	}
	d.Priority = int(num(hPriority))
	d.RunAt, d.CreatedAt, d.UniqueUntil = at(hRunAt), at(hCreatedAt), at(hUniqueUntil)
	if d.RunAt.IsZero() {
		d.RunAt = d.CreatedAt
	}
	d.Deliveries, d.MaxDeliveries = int(num(hDeliveries)), int(num(hMaxDeliveries))
	d.Timeout = time.Duration(num(hTimeout))
	d.RetryPolicy, d.UniqueKey = str(hRetryPolicy), str(hUniqueKey)
	d.Incarnation, d.RetriedFrom = int(num(hIncarnation)), int(num(hRetriedFrom))
	d.Bounded, _ = m.Headers[hBounded].(bool)
	if e := str(hErrors); e != "" {
		if err := json.Unmarshal([]byte(e), &d.Errors); err != nil {
			bad = hErrors
		}
	}
	if bad != "" {
		return nil, fmt.Errorf("%w: message %s has a malformed %s header", job.ErrMalformedPayload, m.MessageId, bad)
	}
	return d, nil
}
