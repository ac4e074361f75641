package celery

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
)

func v2(id string) map[string]any {
	return map[string]any{"lang": "py", "task": "t.x", "id": id, "timelimit": []any{nil, nil}}
}

// Each malformed message is refused with its reason, never mapped to a job.
func TestDecodeRefuses(t *testing.T) {
	good := []byte(`[[1], {"a": 2}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]`)
	cases := []struct {
		name, reason string
		m            message
	}{
		{"protocol 1", "protocol 1", message{Headers: map[string]any{}, Body: []byte(`{"task":"t.x","id":"1","args":[]}`), ContentType: "application/json"}},
		{"pickle", "pickle is never accepted", message{Headers: v2("1"), Body: []byte{0x80, 0x04}, ContentType: "application/x-python-serialize"}},
		{"yaml", "only application/json", message{Headers: v2("1"), Body: good, ContentType: "application/x-yaml"}},
		{"encoding", "content-encoding", message{Headers: v2("1"), Body: good, ContentType: "application/json", ContentEncoding: "binary"}},
		{"garbage", "not a JSON array", message{Headers: v2("1"), Body: []byte("{{{"), ContentType: "application/json"}},
		{"args", "args are not", message{Headers: v2("1"), Body: []byte(`[{}, {}, {}]`), ContentType: "application/json"}},
		{"no id", "no id", message{Headers: map[string]any{"task": "t.x"}, Body: good, ContentType: "application/json"}},
		{"canvas", "canvas", message{Headers: v2("1"), Body: []byte(`[[], {}, {"callbacks": [{"task": "t.y"}]}]`), ContentType: "application/json"}},
		{"eta", "eta", message{Headers: map[string]any{"task": "t.x", "id": "1", "eta": "tomorrow"}, Body: good, ContentType: "application/json"}},
		{"timelimit", "timelimit", message{Headers: map[string]any{"task": "t.x", "id": "1", "timelimit": "soon"}, Body: good, ContentType: "application/json"}},
	}
	for _, c := range cases {
		_, err := decode(&c.m, "q", time.Now())
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.reason) {
			t.Errorf("%s: %v, want ErrMalformed saying %q", c.name, err, c.reason)
		}
	}
}

// A Celery client's message becomes {"args", "kwargs"} with its eta,
// expires and time limit; a Go client's job comes back as it was sent.
func TestDecodeCeleryAndGoMessages(t *testing.T) {
	now := time.Now()
	h := v2("id-1")
	h["eta"], h["expires"] = "2030-01-02T03:04:05.123456+00:00", "2030-01-02T04:00:00+00:00"
	h["timelimit"], h["retries"] = []any{float64(30), float64(10)}, float64(2)
	d, err := decode(&message{Headers: h, Body: []byte(`[[1, "a"], {"k": true}, {}]`), ContentType: "application/json", ContentEncoding: "utf-8"}, "q", now)
	if err != nil {
		t.Fatal(err)
	}
	r := d.rec
	if string(r.Payload) != `{"args":[1,"a"],"kwargs":{"k":true}}` || r.Task != "t.x" || r.ID != "id-1" || r.Timeout != 10*time.Second || d.retries != 2 {
		t.Errorf("record %+v, payload %s", r, r.Payload)
	}
	if want := time.Date(2030, 1, 2, 3, 4, 5, 123456000, time.UTC); !r.RunAt.Equal(want) || !d.expires.Equal(time.Date(2030, 1, 2, 4, 0, 0, 0, time.UTC)) {
		t.Errorf("eta %v expires %v", r.RunAt, d.expires)
	}
	for _, p := range []string{`{"n":1}`, `[1,2]`, `{"args":[3],"kwargs":{"x":1}}`, `not json`, ``, `7`} {
		m, err := encode(&backends.JobInsert{ID: "g", Queue: "q", Task: "t", Payload: []byte(p)}, "test", now)
		if err != nil {
			t.Fatal(err)
		}
		d, err := decode(m, "q", now)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if !bytes.Equal(d.rec.Payload, []byte(p)) {
			t.Errorf("payload %q came back as %q", p, d.rec.Payload)
		}
	}
}
