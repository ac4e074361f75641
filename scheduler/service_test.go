package scheduler_test

import (
	"context"
	"testing"

	"github.com/conveyorhq/conveyor/backends/membackend"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/scheduler"
)

// A scheduler runs one loop: a second Start fails instead of leaking a
// loop that Stop would never end; Stop may be called more than once.
func TestStartTwiceFailsAndStopIsIdempotent(t *testing.T) {
	ctx := context.Background()
	s, err := scheduler.New(queue.NewClient(membackend.New(membackend.Config{}), queue.Config{}), scheduler.Config{Tasks: []queue.Definition{ping}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err == nil {
		t.Fatal("second Start succeeded")
	}
	for range 2 {
		if err := s.Stop(ctx); err != nil {
			t.Fatal(err)
		}
	}
}
