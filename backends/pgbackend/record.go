package pgbackend

import (
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/conveyorhq/conveyor/backends/internal/record"
	"github.com/conveyorhq/conveyor/job"
)

// scanRecord reads one row of recordCols. A headers or errors column that
// does not decode gives an error wrapping job.ErrMalformedPayload along with
// the rest of the record, so the caller can set that one job aside.
func scanRecord(row pgx.Row) (*job.Record, int64, error) {
	var (
		r                                           job.Record
		seq, timeout                                int64
		state                                       string
		headers, errs                               []byte
		started, finished, uniqueUntil, leaseExpiry *time.Time
		uniqueKey, token                            *string
	)
	err := row.Scan(&seq, &r.ID, &r.Queue, &r.Task, &r.Payload, &headers, &r.Priority, &state, &r.RunAt,
		&r.CreatedAt, &started, &finished, &r.Deliveries, &r.MaxDeliveries, &timeout, &r.RetryPolicy,
		&uniqueKey, &uniqueUntil, &errs, &r.Result, &token, &leaseExpiry, &r.CancelRequested)
	if err != nil {
		return nil, 0, err
	}
	r.State = job.State(state)
	r.Timeout = time.Duration(timeout) * time.Millisecond
	deref := func(t *time.Time) time.Time {
		if t == nil {
			return time.Time{}
		}
		return *t
	}
	r.StartedAt, r.FinishedAt, r.UniqueUntil = deref(started), deref(finished), deref(uniqueUntil)
	if uniqueKey != nil {
		r.UniqueKey = *uniqueKey
	}
	if r.State == job.Running && token != nil {
		r.Lease = job.Lease{JobID: r.ID, Token: *token, ExpiresAt: deref(leaseExpiry)}
	}
	if r.Errors, err = record.DecodeAttemptErrors(errs); err != nil {
		return &r, seq, fmt.Errorf("%w: job %s attempt errors: %w", job.ErrMalformedPayload, r.ID, err)
	}
	if r.Headers, err = record.DecodeHeaders(headers); err != nil {
		return &r, seq, fmt.Errorf("%w: job %s headers: %w", job.ErrMalformedPayload, r.ID, err)
	}
	return &r, seq, nil
}
