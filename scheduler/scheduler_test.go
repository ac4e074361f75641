package scheduler_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/membackend"
	"github.com/conveyorhq/conveyor/backends/sqlitebackend"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/scheduler"
	"github.com/conveyorhq/conveyor/scheduler/schedulertest"
)

var ping = queue.NewTask[struct{}, queue.None]("sched.ping", queue.TaskOptions{Queue: "cron"})

func memory(*testing.T) backends.Backend { return membackend.New(membackend.Config{}) }

// TestScheduler runs the scheduler's suite on the backends of this module;
// the server backends run it from their own modules' tests.
func TestScheduler(t *testing.T) {
	t.Run("memory", func(t *testing.T) { schedulertest.Run(t, memory) })
	t.Run("sqlite", func(t *testing.T) {
		schedulertest.Run(t, func(t *testing.T) backends.Backend {
			b, err := sqlitebackend.Open(context.Background(), sqlitebackend.Config{Path: filepath.Join(t.TempDir(), "s.db")})
			if err != nil {
				t.Fatal(err)
			}
			return b
		})
	})
}

func TestDaylightSavingTime(t *testing.T) { schedulertest.RunCalendar(t, memory) }

func TestInvalidEntriesFailAtRegistration(t *testing.T) {
	s, err := scheduler.New(queue.NewClient(membackend.New(membackend.Config{}), queue.Config{}), scheduler.Config{Tasks: []queue.Definition{ping}})
	must(t, err)
	bad := scheduler.Entry{Name: "x", Schedule: "61 * * * *", Task: ping.Name()}
	if err := s.Register(bad); !errors.Is(err, job.ErrInvalid) || !strings.Contains(err.Error(), "61 * * * *") {
		t.Fatalf("Register(bad cron) = %v", err)
	}
	unknown := scheduler.Entry{Name: "y", Schedule: "@hourly", Task: "no.such.task"}
	if err := s.Register(unknown); !errors.Is(err, job.ErrUnknownTask) {
		t.Fatalf("Register(unknown task) = %v", err)
	}
	policy := scheduler.Entry{Name: "z", Schedule: "@hourly", Task: ping.Name(), Misfire: "sometimes"}
	if err := s.Register(policy); !errors.Is(err, job.ErrInvalid) {
		t.Fatalf("Register(bad misfire) = %v", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
