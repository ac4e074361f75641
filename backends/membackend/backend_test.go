package membackend_test

import (
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/backendtest"
	"github.com/conveyorhq/conveyor/backends/membackend"
)

func TestConformance(t *testing.T) {
	backendtest.Suite{New: func(t *testing.T, clock backends.Clock) backends.Backend {
		return membackend.New(membackend.Config{Clock: clock})
	}, TimePrecision: time.Nanosecond}.Run(t)
}
