package amqpbackend_test

import (
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends/amqpbackend"
	"github.com/conveyorhq/conveyor/flow/flowtest"
)

// A broker cannot take back or change a message it has published, so the
// AMQP backend is no backends.Debouncer: a debounced enqueue fails with
// ErrUnsupported, with a store or without.
func TestDebounceUnsupported(t *testing.T) {
	flowtest.DebounceUnsupported(t, open(t, amqpbackend.Config{}))
	flowtest.DebounceUnsupported(t, open(t, amqpbackend.Config{Store: sqliteStore(t)}))
}

// TestExpiryBehindPause: the 1,000 jobs with a store (pausing
// needs one; see flowtest), expiring in 5s: the broker and its SQLite
// store take more than the 1s to enqueue them under -race.
func TestExpiryBehindPause(t *testing.T) {
	b := open(t, amqpbackend.Config{Prefix: testPrefix, Store: sqliteStore(t)})
	flowtest.ExpiryBehindPause(t, b.(*amqpbackend.StoredBackend), 5*time.Second)
}
