package open_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/amqpbackend"
	"github.com/conveyorhq/conveyor/backends/membackend"
	"github.com/conveyorhq/conveyor/backends/open"
	"github.com/conveyorhq/conveyor/backends/pgbackend"
	"github.com/conveyorhq/conveyor/backends/redisbackend"
	"github.com/conveyorhq/conveyor/backends/sqlitebackend"
	"github.com/conveyorhq/conveyor/internal/testenv"
	"github.com/conveyorhq/conveyor/job"
)

// Each scheme opens its backend on the test servers; an unknown one is
// refused with the list of those known, never taken for a file name.
func TestURL(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, tc := range []struct {
		url  string
		want func(backends.Backend) bool
	}{
		{filepath.Join(dir, "a.db"), is[*sqlitebackend.Backend]},
		{"sqlite:" + filepath.Join(dir, "b.db"), is[*sqlitebackend.Backend]},
		{"memory:", is[*membackend.Backend]},
		{testenv.PostgresURL(t), is[*pgbackend.Backend]},
		{"redis://" + testenv.RedisAddr(t), is[*redisbackend.Backend]},
		{"redis+cluster://" + strings.Join(testenv.RedisCluster(t), ","), is[*redisbackend.Backend]},
		{testenv.RabbitMQURL(t), is[*amqpbackend.Backend]},
		{testenv.RabbitMQURL(t) + "?store=" + filepath.Join(dir, "state.db"), func(b backends.Backend) bool {
			_, ok := b.(backends.Inspector)
			return ok
		}},
	} {
		b, err := open.URL(ctx, tc.url, open.Options{Migrate: true})
		if err != nil {
			t.Errorf("URL(%q): %v", tc.url, err)
			continue
		}
		if !tc.want(b) {
			t.Errorf("URL(%q) opened a %T", tc.url, b)
		}
		if err := b.Close(); err != nil {
			t.Errorf("Close of %q: %v", tc.url, err)
		}
	}
	for _, bad := range []string{"mysql://localhost/x", "amqp://127.0.0.1:1/?store=amqp://x", "postgres://%zz"} {
		if _, err := open.URL(ctx, bad, open.Options{}); err == nil {
			t.Errorf("URL(%q) opened something", bad)
		} else if bad == "mysql://localhost/x" && !errors.Is(err, job.ErrInvalid) {
			t.Errorf("URL(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

func is[T backends.Backend](b backends.Backend) bool {
	_, ok := b.(T)
	return ok
}
