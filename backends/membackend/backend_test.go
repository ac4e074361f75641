package membackend_test

import (
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/backendtest"
	"github.com/conveyorhq/conveyor/backends/membackend"
	"github.com/conveyorhq/conveyor/workflow/workflowtest"
)

func TestConformance(t *testing.T) {
	backendtest.Suite{New: func(t *testing.T, clock backends.Clock) backends.Backend {
		return membackend.New(membackend.Config{Clock: clock})
	}, FairGroups: func(_ *testing.T, b backends.Backend, q string) []string {
		return membackend.FairGroups(b.(*membackend.Backend), q)
	}, TimePrecision: time.Nanosecond}.Run(t)
}

// TestWorkflows runs the workflow engine's suite on the backend's KV store.
func TestWorkflows(t *testing.T) {
	workflowtest.Run(t, func(t *testing.T) backends.Backend { return membackend.New(membackend.Config{}) })
}
