package redisbackend

import (
	"context"
	"fmt"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/internal/record"
	"github.com/conveyorhq/conveyor/job"
)

var _ backends.Debouncer = (*Backend)(nil)

// debounceScript is the prelude and lua/debounce.lua: one script run looks
// up the key's job in <base>:deb and replaces it if it is still waiting,
// or inserts the new job and files it, atomically with the reserve script,
// which runs on the same queue's keys.
var debounceScript = sync.OnceValue(func() *redis.Script {
	return redis.NewScript(mustRead("prelude") + mustRead("debounce"))
})

// Debounce implements backends.Debouncer. Times come from this client's
// clock, as for every script.
func (b *Backend) Debounce(ctx context.Context, p backends.DebounceParams) (backends.EnqueueResult, error) {
	if err := b.gate.Valid(ctx, p); err != nil {
		return backends.EnqueueResult{}, err
	}
	ins := p.Job
	if err := b.register(ctx, ins.Queue); err != nil {
		return backends.EnqueueResult{}, err
	}
	v, err := debounceScript().Run(ctx, b.rdb, []string{b.base(ins.Queue)},
		b.cfg.Clock.Now().UnixMilli(), p.Key, p.Window.Milliseconds(), p.MaxWait.Milliseconds(), ins.MaxDepth,
		ins.ID, ins.Task, ins.Payload, ins.Priority, ins.MaxDeliveries, ins.Timeout.Milliseconds(), ins.RetryPolicy,
		record.Headers(ins.Headers)).Slice()
	if err != nil {
		return backends.EnqueueResult{}, fmt.Errorf("redisbackend: debounce: %w", err)
	}
	if len(v) == 4 && v[0] == "full" {
		return backends.EnqueueResult{}, backends.QueueFullError(ins.Queue, integer(v[1]), integer(v[2]), integer(v[3]))
	}
	if len(v) != 3 {
		return backends.EnqueueResult{}, fmt.Errorf("redisbackend: debounce: unexpected reply of %d values", len(v))
	}
	return backends.EnqueueResult{ID: str(v[0]), State: job.State(str(v[1])), Duplicate: integer(v[2]) == 1}, nil
}
