package redisbackend_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/conveyorhq/conveyor/backends/redisbackend"
	"github.com/conveyorhq/conveyor/queue"
)

// Open connects to the server a URL names (redis+cluster:// for a
// cluster) and owns the client; New takes a redis.UniversalClient the app
// owns. Prefix keeps several apps apart on one server. The address comes
// from the environment scripts/test sets up.
func ExampleOpen() {
	ctx := context.Background()
	prefix := "example-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	b, err := redisbackend.Open(ctx, "redis://"+os.Getenv("CONVEYOR_REDIS_ADDR"), redisbackend.Config{Prefix: prefix})
	if err != nil {
		panic(err)
	}
	defer b.Close()
	hello := queue.NewTask[string, string]("greet.hello", queue.TaskOptions{})
	h, err := hello.Enqueue(ctx, queue.NewClient(b, queue.Config{}), "ada", nil)
	if err != nil {
		panic(err)
	}
	r, _ := h.Status(ctx)
	fmt.Println(r.Task, r.State)
	// Output: greet.hello pending
}
