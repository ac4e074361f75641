package queue_test

import (
	"context"
	"errors"
	"testing"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/membackend"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
)

// A caller-chosen ID makes a repeated enqueue idempotent: the second one
// returns the stored job as a duplicate.
func TestCallerChosenID(t *testing.T) {
	ctx := context.Background()
	c := queue.NewClient(membackend.New(membackend.Config{}), queue.Config{})
	h, err := send.Enqueue(ctx, c, Args{To: "a"}, &queue.EnqueueOptions{ID: "order-42-receipt"})
	if err != nil || h.ID != "order-42-receipt" || h.Duplicate {
		t.Fatalf("first enqueue = %+v, %v", h, err)
	}
	h, err = send.Enqueue(ctx, c, Args{To: "b"}, &queue.EnqueueOptions{ID: "order-42-receipt"})
	if err != nil || h.ID != "order-42-receipt" || !h.Duplicate {
		t.Fatalf("second enqueue = %+v, %v; want the stored job as a duplicate", h, err)
	}
	for _, bad := range []string{"has space", "tab\there", "é", string(make([]byte, 129))} {
		if _, err := send.Enqueue(ctx, c, Args{}, &queue.EnqueueOptions{ID: bad}); !errors.Is(err, queue.ErrInvalid) {
			t.Errorf("ID %q: err = %v, want ErrInvalid", bad, err)
		}
	}
}

// failing is a backend whose Enqueue fails with err, every time, or with
// then[i] on the call after the i-th.
type failing struct {
	backends.Backend
	err   error
	then  []error
	calls int
}

func (f *failing) Enqueue(context.Context, backends.EnqueueParams) ([]backends.EnqueueResult, error) {
	f.calls++
	if f.calls > 1 && f.calls-2 < len(f.then) {
		return nil, f.then[f.calls-2]
	}
	return nil, f.err
}

// A refusal on a retry after an attempt whose outcome is unknown (a broker
// connection lost mid-publish, then the bound full) leaves the outcome
// unknown: the first attempt may have stored the jobs out of the retry's
// sight. The chaos test TestClusterRabbitMQ saw such jobs reported refused
// and then run.
func TestRefusalAfterAnUnknownAttemptIsUnknown(t *testing.T) {
	lost := errors.New("write tcp 127.0.0.1:5672: connection reset by peer")
	f := &failing{Backend: membackend.New(membackend.Config{}), err: lost, then: []error{job.ErrQueueFull}}
	c := queue.NewClient(f, queue.Config{})
	_, err := send.Enqueue(context.Background(), c, Args{To: "a"}, &queue.EnqueueOptions{ID: "j1"})
	var oue *queue.OutcomeUnknownError
	if f.calls != 2 || !errors.As(err, &oue) || !errors.Is(err, lost) || errors.Is(err, queue.ErrQueueFull) {
		t.Fatalf("after %d calls: err = %v; want an unknown outcome naming the lost connection, not ErrQueueFull", f.calls, err)
	}
}

// An enqueue error is either a refusal (nothing stored) or an unknown
// outcome naming the jobs, never a plain error that hides a stored job.
func TestEnqueueErrorsSayWhetherAnythingWasStored(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		err     error
		unknown bool
	}{
		{job.ErrQueueFull, false},
		{job.ErrInvalid, false},
		{job.ErrClosed, false},
		{errors.New("read tcp 127.0.0.1:5432: connection reset by peer"), true},
		{context.DeadlineExceeded, true},
	} {
		f := &failing{Backend: membackend.New(membackend.Config{}), err: tc.err}
		c := queue.NewClient(f, queue.Config{})
		_, err := c.EnqueueMany(ctx, send.Request(Args{To: "a"}, &queue.EnqueueOptions{ID: "j1"}), send.Request(Args{To: "b"}, nil))
		var oue *queue.OutcomeUnknownError
		isUnknown := errors.As(err, &oue)
		if isUnknown != tc.unknown || isUnknown != errors.Is(err, queue.ErrOutcomeUnknown) || !errors.Is(err, tc.err) {
			t.Errorf("backend error %v: client error %v, unknown outcome %v, want %v", tc.err, err, isUnknown, tc.unknown)
			continue
		}
		if isUnknown && (len(oue.IDs) != 2 || oue.IDs[0] != "j1" || oue.IDs[1] == "") {
			t.Errorf("unknown outcome names %v, want j1 and the second job's ID", oue.IDs)
		}
	}
}
