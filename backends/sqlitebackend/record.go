package sqlitebackend

import (
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/conveyorhq/conveyor/backends/internal/record"
	"github.com/conveyorhq/conveyor/job"
)

// columns is the select list scanRecord reads, in order.
const columns = `id, queue, task, payload, headers, priority, state, run_at, created_at, started_at,
	finished_at, deliveries, max_deliveries, timeout_us, retry_policy, unique_key, unique_until,
	errors, result, lease_token, lease_expires_at, cancel_requested`

// intColumns are the INTEGER columns of conveyor_jobs, each an integer
// unless the row was damaged outside Conveyor: SQLite stores whatever a
// statement writes, and a column's declared type only converts what looks
// like a number. timeColumns are those holding Unix microseconds.
var (
	intColumns = []string{"priority", "run_at", "created_at", "started_at", "finished_at", "deliveries",
		"max_deliveries", "timeout_us", "unique_until", "lease_expires_at", "cancel_requested"}
	timeColumns = map[string]bool{"run_at": true, "created_at": true, "started_at": true, "finished_at": true,
		"unique_until": true, "lease_expires_at": true}
)

type scanner interface{ Scan(dest ...any) error }

// intColumn reads an INTEGER column without failing the row's scan when it
// holds something else (text, a real, a blob), keeping that value for the
// report instead: a failed Scan would make the job unreadable, and a text
// run_at, which compares above every integer, would keep it waiting forever.
type intColumn struct {
	n   int64
	bad any // the stored value, when it is not an integer
}

func (c *intColumn) Scan(src any) error {
	c.n, c.bad = 0, nil
	switch v := src.(type) {
	case int64:
		c.n = v
	case []byte:
		c.bad = string(v) // the driver may reuse the buffer
	default:
		c.bad = v
		if v == nil {
			c.bad = "NULL"
		}
	}
	return nil
}

// badField describes one column of a row that does not decode, naming the
// column and what it holds: `run_at "abc" is not a time`.
type badField struct {
	column string
	value  any
	why    string
}

func (f badField) String() string {
	v := fmt.Sprint(f.value)
	if len(v) > 64 {
		v = v[:64] + "..."
	}
	return fmt.Sprintf("%s %q %s", f.column, v, f.why)
}

// corruptError is what scanRecord reports about a row with columns that do
// not decode. It wraps job.ErrMalformedPayload.
type corruptError struct {
	id  string
	bad []badField
}

func (e *corruptError) fields() string {
	parts := make([]string, len(e.bad))
	for i, f := range e.bad {
		parts[i] = f.String()
	}
	return strings.Join(parts, "; ")
}

func (e *corruptError) Error() string {
	return fmt.Sprintf("%v: job %s: %s", job.ErrMalformedPayload, e.id, e.fields())
}

func (e *corruptError) Unwrap() error { return job.ErrMalformedPayload }

// reason is the attempt error a dead letter of the row records.
func (e *corruptError) reason() string { return "corrupt job record: " + e.fields() }

// scanRecord reads one row of columns. A row with a column that does not
// decode (an unknown state, an integer column holding text, JSON that does
// not parse) yields the record as far as it decodes, those columns at their
// zero value, and a *corruptError naming each of them, so the caller can
// show the job and set it aside; only a failure to read the row at all
// gives no record.
func scanRecord(s scanner) (*job.Record, error) {
	var (
		r                                                                      job.Record
		headers, errs, uniqueKey, token                                        sql.NullString
		state                                                                  string
		priority, runAt, created, started, finished, deliveries, maxDeliveries intColumn
		timeout, uniqueUntil, leaseExp, cancelReq                              intColumn
	)
	ints := []*intColumn{&priority, &runAt, &created, &started, &finished, &deliveries, &maxDeliveries,
		&timeout, &uniqueUntil, &leaseExp, &cancelReq} // in the order of intColumns
	err := s.Scan(&r.ID, &r.Queue, &r.Task, &r.Payload, &headers, &priority, &state, &runAt, &created,
		&started, &finished, &deliveries, &maxDeliveries, &timeout, &r.RetryPolicy, &uniqueKey,
		&uniqueUntil, &errs, &r.Result, &token, &leaseExp, &cancelReq)
	if err != nil {
		return nil, err
	}
	var bad []badField
	r.State = job.State(state)
	if !r.State.Valid() {
		bad = append(bad, badField{"state", state, "is not a job state"})
	}
	for i, c := range ints {
		if c.bad == nil {
			continue
		}
		why := "is not an integer"
		if timeColumns[intColumns[i]] {
			why = "is not a time"
		}
		bad = append(bad, badField{intColumns[i], c.bad, why})
	}
	r.Priority, r.Deliveries, r.MaxDeliveries = int(priority.n), int(deliveries.n), int(maxDeliveries.n)
	r.RunAt, r.CreatedAt, r.StartedAt, r.FinishedAt = record.FromMicros(runAt.n), record.FromMicros(created.n), record.FromMicros(started.n), record.FromMicros(finished.n)
	r.Timeout = time.Duration(timeout.n) * time.Microsecond
	r.UniqueKey, r.UniqueUntil = uniqueKey.String, record.FromMicros(uniqueUntil.n)
	r.CancelRequested = cancelReq.n != 0
	if token.Valid {
		r.Lease = job.Lease{JobID: r.ID, Token: token.String, ExpiresAt: record.FromMicros(leaseExp.n)}
	}
	if r.Headers, err = record.DecodeHeaders([]byte(headers.String)); err != nil {
		bad = append(bad, badField{"headers", headers.String, "is not a JSON object of strings: " + err.Error()})
	}
	if r.Errors, err = record.DecodeAttemptErrors([]byte(errs.String)); err != nil {
		bad = append(bad, badField{"errors", errs.String, "is not a JSON array of attempt errors: " + err.Error()})
	}
	if len(bad) > 0 {
		return &r, &corruptError{id: r.ID, bad: bad}
	}
	return &r, nil
}

// scanColumn reads the rows of a one-column query, closing them.
func scanColumn[T any](rows *sql.Rows, err error) ([]T, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var v T
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}
