package sqlitebackend_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
)

// A file whose fair ring was made before weights (no turn column) gets
// the column when opened, and weighted reserves work on it.
func TestOpenAddsTheRingTurnColumn(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	b := open(t, path)
	if _, err := b.DB().Exec(`ALTER TABLE conveyor_fair_groups DROP COLUMN turn`); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = open(t, path)
	defer b.Close()
	var jobs []*backends.JobInsert
	for i, g := range []string{"a", "a", "b"} {
		jobs = append(jobs, &backends.JobInsert{ID: string(rune('0' + i)), Queue: "q", Task: "t", Group: g, Payload: []byte(g), RunAt: time.Now()})
	}
	if _, err := b.Enqueue(ctx, backends.EnqueueParams{Jobs: jobs}); err != nil {
		t.Fatal(err)
	}
	recs, err := b.ReserveFair(ctx, backends.ReserveParams{Queue: "q", Limit: 3, Lease: time.Minute, Weights: map[string]int{"a": 2}})
	if err != nil {
		t.Fatal(err)
	}
	got := ""
	for _, r := range recs {
		got += string(r.Payload)
	}
	if got != "aab" {
		t.Fatalf("weighted reserve on the upgraded file: %q, want aab", got)
	}
}
