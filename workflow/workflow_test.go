package workflow_test

import (
	"context"
	"testing"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/membackend"
	"github.com/conveyorhq/conveyor/workflow/workflowtest"
)

// The suite on the memory backend here, for a quick run; every backend's
// own tests run it too.
func TestSuiteOnMemory(t *testing.T) {
	workflowtest.Run(t, func(t *testing.T) backends.Backend { return membackend.New(membackend.Config{}) })
}

// TestSuiteWithoutKVBatcher runs the suite on a store that cannot batch,
// the engine's fallback: every shipped backend is a backends.KVBatcher.
func TestSuiteWithoutKVBatcher(t *testing.T) {
	workflowtest.Run(t, func(t *testing.T) backends.Backend {
		b := unbatched{Backend: membackend.New(membackend.Config{})}
		if _, ok := any(b).(backends.KVBatcher); ok {
			t.Fatal("unbatched is a KVBatcher")
		}
		return b
	})
}

// unbatched is the memory backend without its backends.KVBatcher: the
// methods of hideBatch and the backend's collide at the same depth, so
// neither is promoted.
type unbatched struct {
	*membackend.Backend
	hideBatch
}

type hideBatch struct{}

func (hideBatch) GetKVMany(context.Context, backends.GetKVManyParams) ([]backends.KV, error) {
	panic("hidden")
}

func (hideBatch) PutKVMany(context.Context, backends.PutKVManyParams) ([]int64, error) {
	panic("hidden")
}
