package testenv

import (
	"database/sql"
	"fmt"
	"time"
)

// FakeRow is a database row for fuzzing record decoders without a
// database: Scan fills each destination from Cols by position (a string
// for text, JSON and bytes columns, an int64 for numbers, a bool for
// flags), leaving positions not in Cols at their zero value.
type FakeRow struct{ Cols map[int]any }

// Scan implements the Scan method of *sql.Row and pgx.Row.
func (f FakeRow) Scan(dest ...any) error {
	for i, d := range dest {
		v, ok := f.Cols[i]
		if !ok {
			continue
		}
		s, _ := v.(string)
		n, _ := v.(int64)
		b, _ := v.(bool)
		switch p := d.(type) {
		case *string:
			*p = s
		case **string:
			*p = &s
		case *[]byte:
			*p = []byte(s)
		case *sql.NullString:
			*p = sql.NullString{String: s, Valid: true}
		case *int64:
			*p = n
		case *int:
			*p = int(n)
		case *bool:
			*p = b
		case *time.Time:
			*p = time.Unix(0, n)
		case **time.Time:
			t := time.Unix(0, n)
			*p = &t
		default:
			return fmt.Errorf("FakeRow: column %d: unsupported destination %T", i, d)
		}
	}
	return nil
}
