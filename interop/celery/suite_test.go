package celery

import (
	"context"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/backendtest"
	"github.com/conveyorhq/conveyor/internal/testenv"
)

// testDB is the Redis database of these tests: kombu's keys (unacked,
// the queue lists) are not prefixed, so they get a database of their own.
const testDB = 7

// used lists the queues and exchanges the tests declared on RabbitMQ, for
// cleanup; Celery's names carry no prefix to delete by.
var used = struct {
	sync.Mutex
	names map[string]bool
}{names: map[string]bool{}}

func init() {
	declareHook = func(name string) {
		used.Lock()
		used.names[name] = true
		used.Unlock()
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if url := os.Getenv("CONVEYOR_RABBITMQ_URL"); url != "" {
		if conn, err := amqp.Dial(url); err == nil {
			if ch, err := conn.Channel(); err == nil {
				for name := range used.names {
					_, _ = ch.QueueDelete(name, false, false, false)
					_ = ch.ExchangeDelete(name, false, false)
				}
			}
			_ = conn.Close()
		}
	}
	os.Exit(code)
}

// stateless hides GetJob from the suite: Celery's result backend keeps
// only Celery's states (no scheduled, no attempt list), which the cases'
// state checks expect; GetJob is tested against Celery's own layout in
// the end-to-end tests.
type stateless struct{ backends.Backend }

func redisClient(t testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t), DB: testDB})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func newBroker(t testing.TB, cfg Config) *Broker {
	t.Helper()
	b, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// TestSuiteRedis runs the stateless core suite over kombu's Redis layout.
func TestSuiteRedis(t *testing.T) {
	backendtest.Suite{New: func(t *testing.T, clock backends.Clock) backends.Backend {
		return stateless{newBroker(t, Config{Redis: redisClient(t), Clock: clock})}
	}}.RunStateless(t)
}

// TestSuiteRabbitMQ runs the stateless core suite over Celery's RabbitMQ
// topology.
func TestSuiteRabbitMQ(t *testing.T) {
	url := testenv.RabbitMQURL(t)
	backendtest.Suite{New: func(t *testing.T, clock backends.Clock) backends.Backend {
		return stateless{newBroker(t, Config{AMQPURL: url, Clock: clock})}
	}}.RunStateless(t)
}

// fresh returns a queue name no earlier test of this run used.
func fresh(name string) string {
	return "celery-test-" + name + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
}
