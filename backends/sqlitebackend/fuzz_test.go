package sqlitebackend

import (
	"database/sql"
	"errors"
	"fmt"
	"testing"

	"github.com/conveyorhq/conveyor/job"
)

// fakeRow is a row of columns for fuzzing scanRecord without a database,
// holding what the driver would hand database/sql: a string, an int64,
// []byte or nil per column.
type fakeRow []any

func (r fakeRow) Scan(dest ...any) error {
	for i, d := range dest {
		switch p := d.(type) {
		case sql.Scanner:
			if err := p.Scan(r[i]); err != nil {
				return err
			}
		case *string:
			*p = fmt.Sprint(r[i])
		case *[]byte:
			b, _ := r[i].([]byte)
			*p = b
		default:
			return fmt.Errorf("fakeRow: column %d: unsupported destination %T", i, d)
		}
	}
	return nil
}

// Job rows are stored data another process (or a hand-edit) may have
// written: any headers, attempt errors, state and time columns decode to a
// record, with an error wrapping job.ErrMalformedPayload when some column
// does not, never a failed scan or a panic.
func FuzzScanRecord(f *testing.F) {
	f.Add(`{"trace":"x"}`, `[{"attempt":1,"at":"2026-01-01T00:00:00Z","error":"boom"}]`, "pending", int64(1700000000000000))
	f.Add(`[1,2]`, `{"not":"a list"}`, "bogus", int64(-1))
	f.Add(``, `null`, "running", int64(0))
	f.Fuzz(func(t *testing.T, headers, errs, state string, n int64) {
		var created any = n
		if n < 0 { // a time column holding text, as SQLite lets a hand-edit store
			created = state
		}
		row := fakeRow{"id", "q", "task", []byte{}, headers, int64(0), state, n, created, int64(0),
			int64(0), int64(0), int64(0), int64(0), "", nil, int64(0), errs, nil, nil, n, int64(0)}
		r, err := scanRecord(row)
		if r == nil || (err != nil && !errors.Is(err, job.ErrMalformedPayload)) {
			t.Fatalf("scanRecord = %+v, %v; want a record and no error or ErrMalformedPayload", r, err)
		}
	})
}
