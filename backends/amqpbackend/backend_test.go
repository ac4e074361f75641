package amqpbackend_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/amqpbackend"
	"github.com/conveyorhq/conveyor/backends/backendtest"
	"github.com/conveyorhq/conveyor/backends/sqlitebackend"
	"github.com/conveyorhq/conveyor/internal/testenv"
	"github.com/conveyorhq/conveyor/job"
)

// testPrefix names every exchange and queue of this test run, so runs on
// a shared broker never see each other's messages (subtests use queues of
// their own), and TestMain deletes them all at the end.
var testPrefix = "test-" + strconv.FormatInt(time.Now().UnixNano(), 36)

// fresh returns a queue name no earlier test of this run used.
func fresh(name string) string { return name + "-" + strconv.FormatInt(time.Now().UnixNano(), 36) }

func TestMain(m *testing.M) {
	code := m.Run()
	if url := os.Getenv("CONVEYOR_RABBITMQ_URL"); url != "" {
		if err := deleteTopology(url, testPrefix); err != nil {
			fmt.Fprintln(os.Stderr, "cleanup:", err)
		}
	}
	os.Exit(code)
}

// deleteTopology deletes the queues and exchanges named with prefix. The
// broker lists queues only through rabbitmqctl (or the management plugin).
func deleteTopology(url, prefix string) error {
	out, err := exec.Command("rabbitmqctl", "-q", "-n", os.Getenv("CONVEYOR_RABBITMQ_NODE"),
		"list_queues", "name", "--no-table-headers").Output()
	if err != nil {
		return fmt.Errorf("rabbitmqctl list_queues: %w", err)
	}
	conn, err := amqp.Dial(url)
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	for _, name := range strings.Fields(string(out)) {
		if strings.HasPrefix(name, prefix+".") {
			if _, err := ch.QueueDelete(name, false, false, false); err != nil {
				return err
			}
			_ = ch.ExchangeDelete(name, false, false) // delay levels have an exchange of the same name
		}
	}
	for _, ex := range []string{prefix + ".work", prefix + ".dead"} {
		if err := ch.ExchangeDelete(ex, false, false); err != nil {
			return err
		}
	}
	return nil
}

// open returns a Backend on the shared broker, paired with store if set.
func open(t testing.TB, cfg amqpbackend.Config) backends.Backend {
	t.Helper()
	if cfg.URL == "" {
		cfg.URL = testenv.RabbitMQURL(t)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = testPrefix
	}
	if cfg.TransitWait == 0 {
		// A Reserve right after an Enqueue waits for the message to arrive;
		// on a loaded machine that can take longer than the default 500ms.
		// The wait ends when it arrives, so a long one costs nothing else.
		cfg.TransitWait = 5 * time.Second
	}
	var b backends.Backend
	var err error
	if cfg.Store != nil {
		b, err = amqpbackend.OpenStored(context.Background(), cfg)
	} else {
		b, err = amqpbackend.Open(context.Background(), cfg)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// sqliteStore returns a job-state store in a fresh SQLite file.
func sqliteStore(t testing.TB) backends.KVStore {
	t.Helper()
	s, err := sqlitebackend.Open(context.Background(), sqlitebackend.Config{Path: filepath.Join(t.TempDir(), "state.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestConformance runs the whole suite on the broker paired with a store,
// every subtest with a fresh SQLite store and names of its own.
func TestConformance(t *testing.T) {
	backendtest.Suite{New: func(t *testing.T, clock backends.Clock) backends.Backend {
		return open(t, amqpbackend.Config{Store: sqliteStore(t), Clock: clock})
	}, WallClock: true}.Run(t)
}

// TestConformanceWithoutStore runs what a broker alone can keep: the
// stateless core and whatever capabilities it has (the capability check
// skips the rest). TestWithoutStoreRefusesLookups covers the calls it
// answers with job.ErrUnsupported.
func TestConformanceWithoutStore(t *testing.T) {
	s := backendtest.Suite{New: func(t *testing.T, clock backends.Clock) backends.Backend {
		return open(t, amqpbackend.Config{Clock: clock})
	}, WallClock: true}
	t.Run("Core", s.RunStateless)
	t.Run("Capabilities", s.RunCapabilities)
}

func TestWithoutStoreRefusesLookups(t *testing.T) {
	b := open(t, amqpbackend.Config{})
	ctx := context.Background()
	q := fresh("nostore")
	_, err := b.Enqueue(ctx, backends.EnqueueParams{Jobs: []*backends.JobInsert{{ID: "u", Queue: q, Task: "t", UniqueKey: "k"}}})
	if !errors.Is(err, job.ErrUnsupported) {
		t.Fatalf("Enqueue with a unique key = %v, want ErrUnsupported", err)
	}
	_, err = b.Enqueue(ctx, backends.EnqueueParams{Jobs: []*backends.JobInsert{{ID: "c", Queue: q, Task: "t"}}})
	must(t, err)
	if _, err := b.Cancel(ctx, backends.CancelParams{JobID: "c"}); !errors.Is(err, job.ErrUnsupported) {
		t.Fatalf("Cancel by ID = %v, want ErrUnsupported", err)
	}
	// The worker holding the lease can still cancel.
	recs, err := b.Reserve(ctx, backends.ReserveParams{Queue: q, Limit: 1, Lease: time.Minute})
	must(t, err)
	if len(recs) != 1 {
		t.Fatalf("reserved %d jobs, want 1", len(recs))
	}
	lease := recs[0].Lease
	if st, err := b.Cancel(ctx, backends.CancelParams{JobID: "c", Lease: &lease}); err != nil || st != job.Cancelled {
		t.Fatalf("Cancel with the lease = %s, %v", st, err)
	}
	if recs, _ := b.Reserve(ctx, backends.ReserveParams{Queue: q, Limit: 1, Lease: time.Minute}); len(recs) != 0 {
		t.Fatal("a cancelled job was delivered again")
	}
}

// unbatchedStore hides the store's backends.KVBatcher, so the pair falls
// back to one call per key.
type unbatchedStore struct{ backends.KVStore }

// TestConformanceWithUnbatchedStore runs the capabilities on a store that
// cannot batch: the pair's batches fall back to one call per key.
func TestConformanceWithUnbatchedStore(t *testing.T) {
	backendtest.Suite{New: func(t *testing.T, clock backends.Clock) backends.Backend {
		return open(t, amqpbackend.Config{Store: unbatchedStore{sqliteStore(t)}, Clock: clock})
	}, WallClock: true}.RunCapabilities(t)
}
