package sqlitebackend

import (
	"testing"

	"github.com/conveyorhq/conveyor/internal/testenv"
)

// Job rows are stored data another process (or a hand-edit) may have
// written: any headers, attempt errors or state decode to a record or an
// error, never a panic.
func FuzzScanRecord(f *testing.F) {
	f.Add(`{"trace":"x"}`, `[{"attempt":1,"at":"2026-01-01T00:00:00Z","error":"boom"}]`, "pending", int64(1700000000000000))
	f.Add(`[1,2]`, `{"not":"a list"}`, "bogus", int64(-1))
	f.Add(``, `null`, "running", int64(0))
	f.Fuzz(func(t *testing.T, headers, errs, state string, n int64) {
		row := testenv.FakeRow{Cols: map[int]any{0: "id", 1: "q", 2: "task", 4: headers, 6: state, 7: n, 8: n, 17: errs, 21: n}}
		r, err := scanRecord(row)
		if r == nil && err == nil {
			t.Fatal("no record and no error")
		}
	})
}
