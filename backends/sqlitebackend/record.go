package sqlitebackend

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/conveyorhq/conveyor/job"
)

// columns is the select list scanRecord reads, in order.
const columns = `id, queue, task, payload, headers, priority, state, run_at, created_at, started_at,
	finished_at, deliveries, max_deliveries, timeout_us, retry_policy, unique_key, unique_until,
	errors, result, lease_token, lease_expires_at, cancel_requested`

type scanner interface{ Scan(dest ...any) error }

// scanRecord reads one row of columns. A row whose JSON columns do not
// decode yields the partly read record (its ID set) and an error wrapping
// job.ErrMalformedPayload, so the caller can set that one job aside.
func scanRecord(s scanner) (*job.Record, error) {
	var (
		r                                                                 job.Record
		headers, errs, uniqueKey, token                                   sql.NullString
		runAt, created, started, finished, timeout, uniqueUntil, leaseExp int64
		state                                                             string
		cancelReq                                                         bool
	)
	err := s.Scan(&r.ID, &r.Queue, &r.Task, &r.Payload, &headers, &r.Priority, &state, &runAt, &created,
		&started, &finished, &r.Deliveries, &r.MaxDeliveries, &timeout, &r.RetryPolicy, &uniqueKey,
		&uniqueUntil, &errs, &r.Result, &token, &leaseExp, &cancelReq)
	if err != nil {
		return nil, err
	}
	r.State = job.State(state)
	r.RunAt, r.CreatedAt, r.StartedAt, r.FinishedAt = fromMicros(runAt), fromMicros(created), fromMicros(started), fromMicros(finished)
	r.Timeout = time.Duration(timeout) * time.Microsecond
	r.UniqueKey, r.UniqueUntil = uniqueKey.String, fromMicros(uniqueUntil)
	r.CancelRequested = cancelReq
	if token.Valid {
		r.Lease = job.Lease{JobID: r.ID, Token: token.String, ExpiresAt: fromMicros(leaseExp)}
	}
	if headers.Valid {
		if err := json.Unmarshal([]byte(headers.String), &r.Headers); err != nil {
			return &r, fmt.Errorf("%w: job %s headers: %w", job.ErrMalformedPayload, r.ID, err)
		}
	}
	if errs.Valid {
		if err := json.Unmarshal([]byte(errs.String), &r.Errors); err != nil {
			return &r, fmt.Errorf("%w: job %s attempt errors: %w", job.ErrMalformedPayload, r.ID, err)
		}
	}
	return &r, nil
}

func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us)
}

func nullJSON(v any, empty bool) (any, error) {
	if empty {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}
