package pgbackend

import "testing"

// NOTIFY payloads on our channel may come from any session.
func FuzzEvents(f *testing.F) {
	f.Add("a:emails")
	f.Add("f:emails:id1,id2")
	f.Add("f:a:b:c")
	f.Add("f:")
	f.Fuzz(func(t *testing.T, payload string) {
		for _, ev := range events(payload) {
			if ev.Kind == 0 {
				t.Fatalf("event without a kind from %q", payload)
			}
		}
	})
}
