package daemon

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/v9"
)

// redisLog sends the Redis client's own log lines (a dial failure per
// retry) to the daemon's logger at debug level: the daemon reports the
// error itself, in one line naming the URL.
type redisLog struct{ log *slog.Logger }

func (r redisLog) Printf(ctx context.Context, format string, v ...any) {
	r.log.DebugContext(ctx, fmt.Sprintf(format, v...), "from", "go-redis")
}

// routeDriverLogs points the drivers' process-wide loggers at log.
func routeDriverLogs(log *slog.Logger) { redis.SetLogger(redisLog{log}) }
