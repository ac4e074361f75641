package workflow_test

import (
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
