package amqpbackend

import (
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// delaySweepEvery is how often a backend looks for delay levels whose
// messages have stopped expiring.
const delaySweepEvery = 2 * time.Second

// A quorum queue expires messages when it applies a command (an enqueue, a
// checkout) or when a timer it set for its head fires. After a leader
// change (a node stopped) RabbitMQ 3.10 may not set that timer again, so a
// delay level that receives no more messages keeps expired ones forever
// and the jobs in it never come back: seen in the RabbitMQ cluster's
// chaos run, 109 jobs ready in the 64ms level a minute after they were due.
// sweepDelays guards against it: a level whose message count has stayed
// the same, above zero, for longer than its TTL (every message in it
// should have expired in that time) gets one basic.get. The get is a
// command, so the queue expires its head first; the message it returns,
// if one is not due yet, goes down the levels as a consumer's early
// delivery does (hop). A healthy level costs one passive declare per
// sweep.
func (b *Backend) sweepDelays() {
	defer b.bg.Done()
	t := time.NewTicker(delaySweepEvery)
	defer t.Stop()
	type seen struct {
		count int
		since time.Time
	}
	last := map[int]seen{}
	for {
		select {
		case <-b.closing:
			return
		case <-t.C:
		}
		s, err := b.session(b.ctx)
		if err != nil {
			continue // reconnecting; the next sweep looks again
		}
		for level := 0; level <= maxDelayLevel; level++ {
			name := b.names.delay(level)
			if !b.isDeclared(name) {
				continue
			}
			now := time.Now()
			_ = onChannel(s.conn, func(ch *amqp.Channel) error {
				q, err := ch.QueueDeclarePassive(name, true, false, false, false, nil)
				if err != nil {
					return err
				}
				prev, ok := last[level]
				if !ok || q.Messages != prev.count || q.Messages == 0 {
					last[level] = seen{q.Messages, now}
					return nil
				}
				if now.Sub(prev.since) <= time.Duration(1<<level)*time.Millisecond+delaySweepEvery {
					return nil
				}
				last[level] = seen{q.Messages, now}
				b.nudgeLevel(ch, name)
				return nil
			})
		}
	}
}

// nudgeLevel takes one message from a delay level: the get makes the
// queue expire its head, and the message it returns (not due yet, or the
// broker would have expired it) is sent down the levels again.
func (b *Backend) nudgeLevel(ch *amqp.Channel, name string) {
	d, ok, err := ch.Get(name, false)
	if err != nil || !ok {
		return
	}
	b.cfg.Logger.Info("amqpbackend: a delay level had stopped expiring its messages; nudged it", "queue", name, "job", d.MessageId)
	dc, err := decode(d, d.RoutingKey)
	if err != nil {
		b.rejectMalformed(d, d.RoutingKey, err)
		return
	}
	b.hop(d, dc)
}
