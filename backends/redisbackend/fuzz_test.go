package redisbackend

import (
	"strings"
	"testing"
)

// Job hashes come from Redis, where anything may have written them: decode
// must turn any field values into a record or an error, never a panic.
func FuzzDecode(f *testing.F) {
	f.Add("running\x00bench.noop\x00{}\x00\x000\x001700000000000\x001700000000000\x00\x00\x001\x0025\x00\x00\x00\x00\x00\x00\x00q/ab.1\x001700000030000\x00\x00w\x007")
	f.Add("pending\x00t\x00p\x00{\"a\":\"b\"}\x00-5\x00x\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00{\"n\":1}\n\x00\x00\x00\x00\x00\x00")
	f.Add("dead\x00t\x00\x00[1]\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00not json\n\x00\x00\x00\x00\x00\x00")
	f.Fuzz(func(t *testing.T, s string) {
		parts := strings.Split(s, "\x00")
		vals := make([]any, len(recordFields))
		for i := range vals {
			if i < len(parts) && parts[i] != "" {
				vals[i] = parts[i]
			}
		}
		r, err := decode("id", "q", vals)
		if r == nil {
			t.Fatal("decode returned no record")
		}
		if err == nil && !r.State.Valid() {
			t.Fatalf("decoded an invalid state %q without an error", r.State)
		}
	})
}

// Pub/sub messages may come from anyone who can PUBLISH.
func FuzzEvents(f *testing.F) {
	f.Add("conveyor:{emails}:avail", "")
	f.Add("conveyor:{emails}:fin", "a\nb")
	f.Add("conveyor:{x}y}:fin", "")
	f.Fuzz(func(t *testing.T, channel, payload string) {
		b := &Backend{cfg: Config{Prefix: "conveyor"}}
		for _, ev := range b.events(channel, payload) {
			if ev.Kind == 0 {
				t.Fatalf("event without a kind from %q %q", channel, payload)
			}
		}
	})
}
