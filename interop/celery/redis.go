package celery

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// kombu's Redis layout: a queue is a list (LPUSH to publish, RPOP or
// BRPOP to consume) and one more list per priority step, named
// <queue>\x06\x16<step>; a consumer's unacknowledged messages sit in the
// hash "unacked" (delivery tag -> [envelope, exchange, routing key]) and
// the sorted set "unacked_index" (delivery tag -> when taken).
const (
	kombuSep     = "\x06\x16"
	unackedKey   = "unacked"
	unackedIndex = "unacked_index"
)

var priorityLists = []string{"", "3", "6", "9"} // kombu's PRIORITY_STEPS, served in this order

func listsOf(queue string) []string {
	out := make([]string, len(priorityLists))
	for i, p := range priorityLists {
		out[i] = queue
		if p != "" {
			out[i] = queue + kombuSep + p
		}
	}
	return out
}

// envelope is kombu's JSON message on Redis.
type envelope struct {
	Body            string         `json:"body"`
	ContentEncoding string         `json:"content-encoding"`
	ContentType     string         `json:"content-type"`
	Headers         map[string]any `json:"headers"`
	Properties      properties     `json:"properties"`
}

type properties struct {
	CorrelationID string       `json:"correlation_id,omitempty"`
	ReplyTo       string       `json:"reply_to,omitempty"`
	DeliveryMode  int          `json:"delivery_mode"`
	DeliveryInfo  deliveryInfo `json:"delivery_info"`
	Priority      int          `json:"priority"`
	BodyEncoding  string       `json:"body_encoding"`
	DeliveryTag   string       `json:"delivery_tag"`
}

type deliveryInfo struct {
	Exchange   string `json:"exchange"`
	RoutingKey string `json:"routing_key"`
}

type redisReceipt struct {
	tag   string // empty for a message that could not be read
	queue string
	raw   string
}

type redisTransport struct {
	cfg       Config
	rdb       redis.UniversalClient
	restoring sync.Once // one restoreLoop per transport, from the first start
}

func newRedisTransport(cfg Config) *redisTransport {
	return &redisTransport{cfg: cfg, rdb: cfg.Redis}
}

// popScript takes up to ARGV[1] messages from the queue's lists in
// kombu's priority order and files each in the unacked hash and index in
// the same step, so a message is never in neither place.
var popScript = redis.NewScript(`
local n = tonumber(ARGV[1])
local out = {}
for i = 1, #KEYS - 2 do
  while #out < n do
    local m = redis.call('RPOP', KEYS[i])
    if not m then break end
    local ok, env = pcall(cjson.decode, m)
    if ok and type(env) == 'table' and type(env.properties) == 'table' and type(env.properties.delivery_tag) == 'string' then
      local di = env.properties.delivery_info
      local ex, rk = '', ''
      if type(di) == 'table' then
        if type(di.exchange) == 'string' then ex = di.exchange end
        if type(di.routing_key) == 'string' then rk = di.routing_key end
      end
      redis.call('HSET', KEYS[#KEYS - 1], env.properties.delivery_tag, '[' .. m .. ',' .. cjson.encode(ex) .. ',' .. cjson.encode(rk) .. ']')
      redis.call('ZADD', KEYS[#KEYS], ARGV[2], env.properties.delivery_tag)
    end
    table.insert(out, m)
  end
end
return out
`)

func (t *redisTransport) envelope(queue string, m *message) ([]byte, error) {
	e := envelope{
		Body: base64.StdEncoding.EncodeToString(m.Body), ContentEncoding: m.ContentEncoding,
		ContentType: m.ContentType, Headers: m.Headers,
		Properties: properties{
			CorrelationID: m.CorrelationID, ReplyTo: m.ReplyTo, DeliveryMode: 2,
			DeliveryInfo: deliveryInfo{Exchange: queue, RoutingKey: queue}, Priority: m.Priority,
			BodyEncoding: "base64", DeliveryTag: uuid.NewString(),
		},
	}
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("celery: envelope: %w", err)
	}
	return b, nil
}

// bind records the queue's binding as kombu's declare does
// (_kombu.binding.<exchange>), so Celery's workers route restored
// messages back to it.
func (t *redisTransport) bind(ctx context.Context, p redis.Pipeliner, queue string) {
	p.SAdd(ctx, "_kombu.binding."+queue, queue+kombuSep+kombuSep+queue)
}

func (t *redisTransport) publish(ctx context.Context, to dest, ms []*message) error {
	_, err := t.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		return t.push(ctx, p, to, ms)
	})
	if err != nil {
		return fmt.Errorf("celery: Redis publish to %s: %w", to.queue, err)
	}
	return nil
}

func (t *redisTransport) push(ctx context.Context, p redis.Pipeliner, to dest, ms []*message) error {
	if !to.dead {
		t.bind(ctx, p, to.queue)
	}
	for _, m := range ms {
		b, err := t.envelope(to.queue, m)
		if err != nil {
			return err
		}
		p.LPush(ctx, to.queue, b)
	}
	return nil
}

// start consumes the queue: batches through popScript while there is
// room, and BRPOP (as kombu does) when the lists are empty.
func (t *redisTransport) start(ctx context.Context, queue string, b *Broker) error {
	lists := listsOf(queue)
	keys := append(append([]string(nil), lists...), unackedKey, unackedIndex)
	_, err := t.rdb.Pipelined(ctx, func(p redis.Pipeliner) error { t.bind(ctx, p, queue); return nil })
	if err != nil {
		return fmt.Errorf("celery: Redis declare %s: %w", queue, err)
	}
	t.restoring.Do(func() { go t.restoreLoop(ctx) })
	go func() {
		for ctx.Err() == nil {
			n, room := b.room(queue)
			if n <= 0 {
				select {
				case <-room:
				case <-ctx.Done():
				}
				continue
			}
			raws, err := popScript.Run(context.WithoutCancel(ctx), t.rdb, keys, n, unixNow()).StringSlice()
			if err == nil && len(raws) == 0 {
				var res []string
				// Not cancelled by ctx: go-redis would drop the connection
				// mid-command; the server's 1s timeout ends it.
				res, err = t.rdb.BRPop(context.WithoutCancel(ctx), time.Second, lists...).Result()
				if err == nil && len(res) == 2 {
					raws = []string{res[1]}
					t.fileUnacked(ctx, res[1])
				}
			}
			if err != nil && !errors.Is(err, redis.Nil) {
				select { // the server is away: try again shortly
				case <-time.After(100 * time.Millisecond):
				case <-ctx.Done():
				}
				continue
			}
			for _, raw := range raws {
				m, tag, envErr := t.open(raw)
				b.arrive(queue, m, &redisReceipt{tag: tag, queue: queue, raw: raw}, envErr)
			}
		}
	}()
	return nil
}

func unixNow() string {
	return strconv.FormatFloat(float64(time.Now().UnixNano())/1e9, 'f', 6, 64)
}

// fileUnacked files a BRPOP's message as kombu's QoS.append does.
func (t *redisTransport) fileUnacked(ctx context.Context, raw string) {
	var e envelope
	if json.Unmarshal([]byte(raw), &e) != nil || e.Properties.DeliveryTag == "" {
		return
	}
	ex, _ := json.Marshal(e.Properties.DeliveryInfo.Exchange)
	rk, _ := json.Marshal(e.Properties.DeliveryInfo.RoutingKey)
	t.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, unackedKey, e.Properties.DeliveryTag, "["+raw+","+string(ex)+","+string(rk)+"]")
		p.ZAdd(ctx, unackedIndex, redis.Z{Score: float64(time.Now().UnixNano()) / 1e9, Member: e.Properties.DeliveryTag})
		return nil
	})
}

// open takes kombu's envelope apart. A message that is not one yields a
// message holding the raw bytes, for the dead-letter queue, and the error.
func (t *redisTransport) open(raw string) (*message, string, error) {
	var e envelope
	if err := json.Unmarshal([]byte(raw), &e); err != nil {
		return &message{Headers: map[string]any{}, Body: []byte(raw)}, "", fmt.Errorf("%w: not a kombu envelope: %w", ErrMalformed, err)
	}
	m := &message{
		Headers: e.Headers, ContentType: e.ContentType, ContentEncoding: e.ContentEncoding,
		CorrelationID: e.Properties.CorrelationID, ReplyTo: e.Properties.ReplyTo, Priority: e.Properties.Priority,
	}
	if m.Headers == nil {
		m.Headers = map[string]any{}
	}
	switch e.Properties.BodyEncoding {
	case "base64":
		body, err := base64.StdEncoding.DecodeString(e.Body)
		if err != nil {
			m.Body = []byte(e.Body)
			return m, e.Properties.DeliveryTag, fmt.Errorf("%w: body is not base64: %w", ErrMalformed, err)
		}
		m.Body = body
	case "":
		m.Body = []byte(e.Body)
	default:
		m.Body = []byte(e.Body)
		return m, e.Properties.DeliveryTag, fmt.Errorf("%w: body_encoding %q is not supported", ErrMalformed, e.Properties.BodyEncoding)
	}
	return m, e.Properties.DeliveryTag, nil
}

// settle publishes next and acks in one MULTI: both or neither.
func (t *redisTransport) settle(ctx context.Context, r receipt, next *message, to dest) error {
	rr := r.(*redisReceipt)
	_, err := t.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		if next != nil {
			if err := t.push(ctx, p, to, []*message{next}); err != nil {
				return err
			}
		}
		if rr.tag != "" {
			p.ZRem(ctx, unackedIndex, rr.tag)
			p.HDel(ctx, unackedKey, rr.tag)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("celery: Redis ack: %w", err)
	}
	return nil
}

// release puts held messages back at the head of their queue, as kombu
// restores its unacked messages at shutdown.
func (t *redisTransport) release(rs []receipt) {
	if len(rs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, r := range rs {
			rr := r.(*redisReceipt)
			p.RPush(ctx, rr.queue, rr.raw)
			if rr.tag != "" {
				p.ZRem(ctx, unackedIndex, rr.tag)
				p.HDel(ctx, unackedKey, rr.tag)
			}
		}
		return nil
	})
}

func (t *redisTransport) held(string, int) {}

func (t *redisTransport) close() error { return nil }
