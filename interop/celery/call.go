package celery

import (
	"encoding/json"
	"fmt"

	"github.com/conveyorhq/conveyor/job"
)

// Call is the payload of a Celery task: its positional arguments and its
// keyword arguments, decoded into K (a struct with json tags, or a map).
// Use it as a task's argument type, queue.NewTask[celery.Call[K], R], for
// tasks Python sends or runs: a Python client's
// send_task("billing.charge", args=[7], kwargs={"cents": 250}) reaches the
// handler as Call{Args: [7], Kwargs: K{Cents: 250}}, and a Go client's
// Call is sent as those args and kwargs.
//
// A task whose argument type is any other JSON object is sent with that
// object as the kwargs (and no args), and one whose argument type is a
// JSON array as the args, which suits tasks a Go client sends to Python.
type Call[K any] struct {
	Args   Args `json:"args"`
	Kwargs K    `json:"kwargs"`
}

// Args are a task's positional arguments, each decoded on demand.
type Args []json.RawMessage

// Decode decodes the i-th argument into v. The error wraps
// job.ErrMalformedPayload, so a handler that returns it dead-letters the job.
func (a Args) Decode(i int, v any) error {
	if i < 0 || i >= len(a) {
		return fmt.Errorf("%w: argument %d of %d", job.ErrMalformedPayload, i, len(a))
	}
	if err := json.Unmarshal(a[i], v); err != nil {
		return fmt.Errorf("%w: argument %d: %w", job.ErrMalformedPayload, i, err)
	}
	return nil
}

// Values builds Args from Go values, for a Go client's Call.
func Values(vs ...any) (Args, error) {
	out := make(Args, len(vs))
	for i, v := range vs {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("argument %d: %w", i, err)
		}
		out[i] = b
	}
	return out, nil
}

// MarshalJSON writes no args as [], as Celery requires a list.
func (a Args) MarshalJSON() ([]byte, error) {
	if a == nil {
		return []byte("[]"), nil
	}
	return json.Marshal([]json.RawMessage(a))
}
