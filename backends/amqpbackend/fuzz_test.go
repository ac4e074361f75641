package amqpbackend

import (
	"reflect"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/conveyorhq/conveyor/job"
)

// Messages come from anyone who can publish to the broker: decode must turn
// any message-id, type, body and x-conveyor-* headers into a job or an
// error, never a panic, and a job it accepts must survive encode and decode
// unchanged.
func FuzzDecodeMessage(f *testing.F) {
	f.Add("01J0", "bench.noop", []byte(`{"at":1}`), "default", int64(1700000000000000000), int64(2), `[{"attempt":1,"error":"x"}]`, "trace", true)
	f.Add("", "t", []byte("x"), "", int64(0), int64(0), "", "", false)
	f.Add("id", "t", []byte(nil), "q", int64(-5), int64(-1), "not json", "", false)
	f.Fuzz(func(t *testing.T, id, task string, body []byte, queue string, runAt, deliveries int64, errs, header string, bounded bool) {
		h := amqp.Table{hCreatedAt: runAt / 2, hRunAt: runAt, hDeliveries: deliveries, hBounded: bounded, hErrors: errs}
		if header != "" {
			h[hHeaders] = amqp.Table{"traceparent": header}
		}
		d, err := decode(amqp.Delivery{MessageId: id, Type: task, Body: body, Headers: h}, queue)
		if err != nil {
			return
		}
		if d.ID != id || d.Task != task || d.Queue != queue || d.State != job.Pending {
			t.Fatalf("decoded %+v from id %q task %q", d, id, task)
		}
		pub, err := encode(d)
		if err != nil {
			t.Fatalf("encode(decoded): %v", err)
		}
		again, err := decode(amqp.Delivery{MessageId: pub.MessageId, Type: pub.Type, Body: pub.Body, Headers: pub.Headers}, queue)
		if err != nil {
			t.Fatalf("decode(encode(decoded)): %v", err)
		}
		if !sameJob(d, again) {
			t.Fatalf("round trip changed the job:\n%+v\n%+v", d, again)
		}
	})
}

func sameJob(a, b *doc) bool {
	eqTime := func(x, y time.Time) bool { return x.Equal(y) }
	return a.ID == b.ID && a.Task == b.Task && string(a.Payload) == string(b.Payload) && a.Queue == b.Queue &&
		eqTime(a.RunAt, b.RunAt) && a.Deliveries == b.Deliveries && a.Bounded == b.Bounded &&
		len(a.Headers) == len(b.Headers) && (len(a.Errors) == 0 && len(b.Errors) == 0 || reflect.DeepEqual(a.Errors, b.Errors))
}
