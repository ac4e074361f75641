package celery

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// restoreScript puts one unacked message back on its queues if it is
// still unacked as it was read (ARGV[2]), and removes it from kombu's
// unacked hash and index in the same step: a message is never lost
// between the two, nor restored twice by two processes (or by a Celery
// worker restoring at the same time, which removes it first).
var restoreScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
for i = 4, #ARGV do redis.call('LPUSH', ARGV[i], ARGV[3]) end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
`)

// restoreBatch bounds the messages one restore round reads.
const restoreBatch = 500

// restoreLoop runs restoreVisible every tenth of the visibility timeout
// (at most every minute) until ctx ends.
func (t *redisTransport) restoreLoop(ctx context.Context) {
	every := min(t.cfg.VisibilityTimeout/10, time.Minute)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if _, err := t.restoreVisible(ctx, time.Now()); err != nil && ctx.Err() == nil {
				t.cfg.Logger.Warn("celery: restoring unacked messages", "err", err)
			}
		}
	}
}

// restoreVisible is kombu's restore_visible: every message taken before
// now minus the visibility timeout and still unacked goes back on the
// queues its exchange and routing key are bound to. The index holds wall
// times, as kombu writes them, so now is the wall clock's.
func (t *redisTransport) restoreVisible(ctx context.Context, now time.Time) (int, error) {
	ceiling := float64(now.Add(-t.cfg.VisibilityTimeout).UnixNano()) / 1e9
	tags, err := t.rdb.ZRangeByScore(ctx, unackedIndex, &redis.ZRangeBy{
		Min: "-inf", Max: fmt.Sprintf("%f", ceiling), Count: restoreBatch,
	}).Result()
	if err != nil {
		return 0, fmt.Errorf("celery: Redis unacked index: %w", err)
	}
	restored := 0
	for _, tag := range tags {
		entry, err := t.rdb.HGet(ctx, unackedKey, tag).Result()
		if err == redis.Nil { // acked or restored since: only the index is left
			t.rdb.ZRem(ctx, unackedIndex, tag)
			continue
		}
		if err != nil {
			return restored, fmt.Errorf("celery: Redis unacked %s: %w", tag, err)
		}
		// [message, exchange, routing key], as kombu and popScript file it;
		// the message's bytes are kept as they are.
		var parts []json.RawMessage
		var ex, rk string
		if json.Unmarshal([]byte(entry), &parts) != nil || len(parts) != 3 ||
			json.Unmarshal(parts[1], &ex) != nil || json.Unmarshal(parts[2], &rk) != nil {
			t.cfg.Logger.Warn("celery: an unacked entry is not [message, exchange, routing key]; left as it is", "tag", tag)
			continue
		}
		queues, err := t.boundQueues(ctx, ex, rk)
		if err != nil {
			return restored, err
		}
		args := append([]any{tag, entry, string(parts[0])}, queues...)
		n, err := restoreScript.Run(ctx, t.rdb, []string{unackedKey, unackedIndex}, args...).Int()
		if err != nil {
			return restored, fmt.Errorf("celery: Redis restore %s: %w", tag, err)
		}
		restored += n
	}
	if restored > 0 {
		t.cfg.Logger.Info("celery: restored unacked messages past the visibility timeout", "messages", restored)
	}
	return restored, nil
}

// boundQueues lists the queues exchange ex routes routing key rk to, from
// kombu's binding sets (_kombu.binding.<exchange>: rk, pattern, queue
// joined by kombu's separator); with no binding, the queue named rk, as
// Celery's default direct exchange routes.
func (t *redisTransport) boundQueues(ctx context.Context, ex, rk string) ([]any, error) {
	members, err := t.rdb.SMembers(ctx, "_kombu.binding."+ex).Result()
	if err != nil {
		return nil, fmt.Errorf("celery: Redis bindings of %q: %w", ex, err)
	}
	var queues []any
	for _, m := range members {
		if f := strings.Split(m, kombuSep); len(f) == 3 && (f[0] == rk || ex == "") {
			queues = append(queues, f[2])
		}
	}
	if len(queues) == 0 {
		queues = append(queues, rk)
	}
	return queues, nil
}
