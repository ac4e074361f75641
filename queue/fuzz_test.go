package queue_test

import (
	"errors"
	"testing"

	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
)

type fuzzArgs struct {
	Name  string            `json:"name"`
	N     int               `json:"n"`
	Tags  []string          `json:"tags"`
	Attrs map[string]string `json:"attrs"`
}

var fuzzTask = queue.NewTask[fuzzArgs, queue.None]("fuzz.task", queue.TaskOptions{})

// Payloads are stored data a worker decodes: any bytes give args or an
// ErrMalformedPayload error, never a panic.
func FuzzDecodeArgs(f *testing.F) {
	f.Add([]byte(`{"name":"ada","n":3,"tags":["a"],"attrs":{"k":"v"}}`))
	f.Add([]byte(`{"n":"three"}`))
	f.Add([]byte(`not json`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, payload []byte) {
		if _, err := fuzzTask.DecodeArgs(payload); err != nil && !errors.Is(err, job.ErrMalformedPayload) {
			t.Fatalf("DecodeArgs(%q) = %v, not ErrMalformedPayload", payload, err)
		}
	})
}
