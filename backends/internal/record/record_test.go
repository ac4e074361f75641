package record_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/internal/record"
	"github.com/conveyorhq/conveyor/job"
)

func TestHeadersRoundTrip(t *testing.T) {
	if b := record.Headers(nil); b != nil {
		t.Fatalf("Headers(nil) = %q, want nil (stored as NULL)", b)
	}
	h := map[string]string{"traceparent": "00-abc-def-01"}
	got, err := record.DecodeHeaders(record.Headers(h))
	if err != nil || len(got) != 1 || got["traceparent"] != h["traceparent"] {
		t.Fatalf("round trip = %v, %v", got, err)
	}
	for _, none := range []string{"", "null"} {
		if got, err := record.DecodeHeaders([]byte(none)); got != nil || err != nil {
			t.Errorf("DecodeHeaders(%q) = %v, %v; want no headers", none, got, err)
		}
	}
	if _, err := record.DecodeHeaders([]byte(`["not", "an", "object"]`)); err == nil {
		t.Error("DecodeHeaders of an array: no error")
	}
}

func TestAttemptErrorsRoundTrip(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	e := job.AttemptError{Attempt: 2, At: at, Error: "boom", Stack: "main.go:1"}
	got, err := record.DecodeAttemptErrors([]byte("[" + record.AttemptError(e) + "]"))
	if err != nil || len(got) != 1 || got[0].Attempt != 2 || !got[0].At.Equal(at) || got[0].Error != "boom" || got[0].Stack != "main.go:1" {
		t.Fatalf("round trip = %+v, %v", got, err)
	}
	if _, err := record.DecodeAttemptErrors([]byte(`{"attempt":1}`)); err == nil {
		t.Error("DecodeAttemptErrors of an object: no error")
	}
}

func TestTimesKeepZero(t *testing.T) {
	if record.Micros(time.Time{}) != 0 || record.Millis(time.Time{}) != 0 {
		t.Error("the zero time is not stored as 0")
	}
	if !record.FromMicros(0).IsZero() || !record.FromMillis(0).IsZero() {
		t.Error("0 does not read back as the zero time")
	}
	now := time.Now()
	if got := record.FromMicros(record.Micros(now)); !got.Equal(now.Truncate(time.Microsecond)) {
		t.Errorf("micros round trip = %v, want %v", got, now)
	}
	if got := record.FromMillis(record.Millis(now)); !got.Equal(now.Truncate(time.Millisecond)) {
		t.Errorf("millis round trip = %v, want %v", got, now)
	}
	if record.KeepMillis(-time.Hour) != -1 || record.KeepMillis(time.Second) != 1000 {
		t.Error("KeepMillis: forever must stay negative, a second is 1000")
	}
}

func TestPoisonFormatMatchesPoisonReason(t *testing.T) {
	for _, verb := range []string{"%d", "%s"} {
		f := record.PoisonFormat(verb)
		if strings.Count(f, verb) != 1 {
			t.Fatalf("PoisonFormat(%q) = %q: want the verb once", verb, f)
		}
	}
	// Go's fmt reads the format as PostgreSQL's format() and Lua's
	// string.format do: %% is a percent sign, %d the count.
	if got, want := fmt.Sprintf(record.PoisonFormat("%d"), 7), backends.PoisonReason(7); got != want {
		t.Errorf("filled format = %q, want %q", got, want)
	}
}

func TestTokensDiffer(t *testing.T) {
	a, b := record.Token(8), record.Token(8)
	if len(a) != 16 || a == b {
		t.Errorf("tokens %q and %q: want 16 hex digits, different", a, b)
	}
}

func ExampleLeaseLost() {
	err := record.LeaseLost(job.Lease{JobID: "j1", Token: "t"})
	fmt.Println(err)
	// Output: conveyor: lease lost: job j1
}
