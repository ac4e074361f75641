package pgbackend

import (
	"testing"

	"github.com/conveyorhq/conveyor/internal/testenv"
)

// Job rows are stored data: any headers or attempt errors decode to a
// record or an error, never a panic.
func FuzzScanRecord(f *testing.F) {
	f.Add(`{"trace":"x"}`, `[{"attempt":1,"at":"2026-01-01T00:00:00Z","error":"boom"}]`, "running", int64(7))
	f.Add(`[1,2]`, `{"not":"a list"}`, "bogus", int64(-1))
	f.Add(`null`, ``, "dead", int64(0))
	f.Fuzz(func(t *testing.T, headers, errs, state string, n int64) {
		row := testenv.FakeRow{Cols: map[int]any{0: n, 1: "id", 2: "q", 3: "task", 5: headers, 7: state, 8: n, 18: errs, 20: "tok", 21: n}}
		r, _, err := scanRecord(row)
		if r == nil && err == nil {
			t.Fatal("no record and no error")
		}
	})
}
