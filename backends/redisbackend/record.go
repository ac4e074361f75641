package redisbackend

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/conveyorhq/conveyor/backends/internal/record"
	"github.com/conveyorhq/conveyor/job"
)

// Job hash fields, kept short and left out when empty because every write
// pays for each. The ID and queue are not stored: the key names them.
//
//	s   state        t   task          p   payload       h   headers (JSON)
//	pr  priority     seq enqueue sequence                rk  ready-set member
//	ra  run-at ms    ca  created ms    sa  started ms    fa  finished ms
//	d   deliveries   md  max deliv.    to  timeout ms    rp  retry policy
//	uk  unique key   uu  unique-until ms
//	e   attempt errors, one JSON object (storedError) per line
//	r   result       tk  lease token   le  lease expiry ms
//	c   "1" when cancel was requested  w   worker
//
// recordFields is the order in which the scripts return a job (RECORD in
// lua/prelude.lua; the two must agree).
var recordFields = []string{"s", "t", "p", "h", "pr", "ra", "ca", "sa", "fa", "d", "md", "to", "rp",
	"uk", "uu", "e", "r", "tk", "le", "c", "w", "seq"}

// storedError is one line of the "e" field. Times are Unix milliseconds so
// the Lua scripts can write the poison reason themselves.
type storedError struct {
	N     int    `json:"n"`
	At    int64  `json:"at"`
	Err   string `json:"err"`
	Stack string `json:"stack,omitempty"`
}

func encodeError(e job.AttemptError) string {
	b, _ := json.Marshal(storedError{N: e.Attempt, At: e.At.UnixMilli(), Err: e.Error, Stack: e.Stack})
	return string(b)
}

// decode turns a job's fields, in recordFields order, into a record. A
// field that does not parse gives an error wrapping job.ErrMalformedPayload
// along with what could be read, so the caller can report and set aside
// that one job.
func decode(id, queue string, v any) (*job.Record, error) {
	vals, _ := v.([]any)
	r := &job.Record{ID: id, Queue: queue}
	if len(vals) != len(recordFields) || vals[0] == nil {
		return r, fmt.Errorf("%w: job %s in %s is not a job hash", job.ErrMalformedPayload, id, queue)
	}
	field := func(i int) string { s, _ := vals[i].(string); return s }
	var bad error
	integer := func(i int) int64 {
		s := field(i)
		if s == "" || bad != nil {
			return 0
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			bad = fmt.Errorf("%w: job %s field %s: %w", job.ErrMalformedPayload, id, recordFields[i], err)
		}
		return n
	}
	// Positions in recordFields.
	const (
		fS = iota
		fT
		fP
		fH
		fPr
		fRa
		fCa
		fSa
		fFa
		fD
		fMd
		fTo
		fRp
		fUk
		fUu
		fE
		fR
		fTk
		fLe
		fC
		fW
	)
	r.State = job.State(field(fS))
	if r.State == job.Running {
		// Set first, so a job whose other fields are broken can still be
		// dead-lettered under its lease.
		r.Lease = job.Lease{JobID: id, Token: field(fTk)}
	}
	if !r.State.Valid() {
		return r, fmt.Errorf("%w: job %s: unknown state %q", job.ErrMalformedPayload, id, r.State)
	}
	r.Task, r.Payload, r.RetryPolicy, r.UniqueKey = field(fT), []byte(field(fP)), field(fRp), field(fUk)
	r.CancelRequested = field(fC) == "1"
	if res, ok := vals[fR].(string); ok {
		r.Result = []byte(res)
	}
	r.Priority, r.Deliveries, r.MaxDeliveries = int(integer(fPr)), int(integer(fD)), int(integer(fMd))
	r.RunAt, r.CreatedAt = record.FromMillis(integer(fRa)), record.FromMillis(integer(fCa))
	r.StartedAt, r.FinishedAt = record.FromMillis(integer(fSa)), record.FromMillis(integer(fFa))
	r.Timeout, r.UniqueUntil = time.Duration(integer(fTo))*time.Millisecond, record.FromMillis(integer(fUu))
	if r.State == job.Running {
		r.Lease.ExpiresAt = record.FromMillis(integer(fLe))
	}
	if bad != nil {
		return r, bad
	}
	if h := field(fH); h != "" {
		var err error
		if r.Headers, err = record.DecodeHeaders([]byte(h)); err != nil {
			return r, fmt.Errorf("%w: job %s headers: %w", job.ErrMalformedPayload, id, err)
		}
	}
	if e := field(fE); e != "" {
		for line := range strings.SplitSeq(strings.TrimSuffix(e, "\n"), "\n") {
			var se storedError
			if err := json.Unmarshal([]byte(line), &se); err != nil {
				return r, fmt.Errorf("%w: job %s attempt errors: %w", job.ErrMalformedPayload, id, err)
			}
			r.Errors = append(r.Errors, job.AttemptError{Attempt: se.N, At: record.FromMillis(se.At), Error: se.Err, Stack: se.Stack})
		}
	}
	return r, nil
}
