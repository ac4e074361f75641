package scheduler

import (
	"fmt"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
)

// Misfire says what happens to ticks missed while no scheduler ran.
type Misfire string

const (
	// Skip fires only ticks that are on time (within a few polls); missed
	// ones are dropped. The default, as with cron.
	Skip Misfire = "skip"
	// FireOnce fires one job for all the missed ticks.
	FireOnce Misfire = "once"
	// CatchUp fires every missed tick, oldest first, up to CatchUpLimit.
	CatchUp Misfire = "catchup"
)

// Entry is one periodic task.
type Entry struct {
	// Name identifies the entry cluster-wide. Required.
	Name string `json:"name"`
	// Schedule is a cron expression (see the package doc). Required.
	Schedule string `json:"schedule"`
	// Task is the name of the task to enqueue; the Scheduler must know it
	// (Config.Tasks). Required.
	Task string `json:"task"`
	// Args is the task's encoded arguments.
	Args []byte `json:"args"`
	// Queue and Priority override the task's defaults when set.
	Queue    string `json:"queue,omitempty"`
	Priority int    `json:"priority,omitempty"`
	// Misfire is the policy for missed ticks. Default Skip.
	Misfire Misfire `json:"misfire,omitempty"`
	// CatchUpLimit bounds the ticks CatchUp fires at once. Default 100.
	CatchUpLimit int `json:"catch_up_limit,omitempty"`
}

// State is an entry with what the scheduler keeps of it.
type EntryState struct {
	Entry
	Paused bool      `json:"paused,omitempty"`
	Last   time.Time `json:"last"` // the latest tick handled; zero if none
	Next   time.Time `json:"next"` // the next tick due
}

// NewEntry builds an entry for a typed task, encoding args with the task's
// codec.
func NewEntry[A, R any](name, schedule string, task *queue.Task[A, R], args A) (Entry, error) {
	payload, err := task.Options().Codec.Encode(args)
	if err != nil {
		return Entry{}, fmt.Errorf("%w: entry %s: %w", job.ErrMalformedPayload, name, err)
	}
	return Entry{Name: name, Schedule: schedule, Task: task.Name(), Args: payload}, nil
}

var parser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Schedule is a parsed cron schedule.
type Schedule interface {
	// Next returns the first fire time after t, or the zero time if
	// there is none.
	Next(t time.Time) time.Time
}

// Parse checks a schedule and returns it.
func Parse(schedule string) (s Schedule, err error) {
	// robfig/cron v3.0.1 panics on some malformed input ("TZ=" with
	// nothing after it, found by FuzzParse); that is bad input too.
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, fmt.Errorf("%w: schedule %q: %v", job.ErrInvalid, schedule, r)
		}
	}()
	s, err = parser.Parse(schedule)
	if err != nil {
		return nil, fmt.Errorf("%w: schedule %q: %w", job.ErrInvalid, schedule, err)
	}
	return s, nil
}

// check validates an entry and fills its defaults.
func (e *Entry) check() (Schedule, error) {
	switch {
	case e.Name == "":
		return nil, fmt.Errorf("%w: an entry needs a name", job.ErrInvalid)
	case e.Task == "":
		return nil, fmt.Errorf("%w: entry %s needs a task", job.ErrInvalid, e.Name)
	}
	switch e.Misfire {
	case "":
		e.Misfire = Skip
	case Skip, FireOnce, CatchUp:
	default:
		return nil, fmt.Errorf("%w: entry %s: misfire policy %q is not skip, once or catchup", job.ErrInvalid, e.Name, e.Misfire)
	}
	if e.CatchUpLimit <= 0 {
		e.CatchUpLimit = 100
	}
	s, err := Parse(e.Schedule)
	if err != nil {
		return nil, fmt.Errorf("entry %s: %w", e.Name, err)
	}
	return s, nil
}
