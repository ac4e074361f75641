package pgbackend

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/internal/testenv"
)

// A schema's LISTEN channel fits PostgreSQL's 63 bytes, however long the
// schema's name, and two long names that share their start get two.
func TestChannelNameFits(t *testing.T) {
	if got := channelName("conveyor"); got != "conveyor:conveyor" {
		t.Fatalf("short schema's channel = %q", got)
	}
	a, b := channelName(strings.Repeat("s", 60)+"_a"), channelName(strings.Repeat("s", 60)+"_b")
	if len(a) > 63 || len(b) > 63 || a == b {
		t.Fatalf("long schemas' channels %q (%d) and %q (%d)", a, len(a), b, len(b))
	}
}

// A backend on a schema whose name leaves no room in 63 bytes for the
// channel's prefix enqueues (NOTIFY refused the long channel before).
func TestLongSchemaEnqueues(t *testing.T) {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, testenv.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	schema := "t_long_" + strings.Repeat("x", 56)
	drop := func() { _, _ = pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE") }
	drop()
	defer drop()
	b, err := New(ctx, Config{Pool: pool, Schema: schema, Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.Enqueue(ctx, backends.EnqueueParams{Jobs: []*backends.JobInsert{{ID: "long-1", Queue: "q", Task: "t", Payload: []byte("{}")}}}); err != nil {
		t.Fatalf("Enqueue on a %d-byte schema: %v", len(schema), err)
	}
}
