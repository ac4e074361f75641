package redisbackend_test

import (
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/conveyorhq/conveyor/backends/redisbackend"
	"github.com/conveyorhq/conveyor/internal/faulttest"
	"github.com/conveyorhq/conveyor/internal/testenv"
)

// An enqueue whose script ran but whose reply was lost says that its
// outcome is unknown and names the job; go-redis's own resends of the
// script are duplicates by ID, not second jobs.
func TestLostReplyIsAnUnknownOutcome(t *testing.T) {
	px := faulttest.NewProxy(t, testenv.RedisAddr(t))
	c := redis.NewClient(&redis.Options{Addr: px.Addr()})
	t.Cleanup(func() { _ = c.Close() })
	b := open(t, c, redisbackend.Config{JanitorEvery: -1})
	faulttest.AmbiguousEnqueue(t, b, px, "ambiguous")
}
