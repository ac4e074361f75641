package redisbackend

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

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

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v)
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
	f := make(map[string]string, len(recordFields))
	for i, name := range recordFields {
		if s, ok := vals[i].(string); ok {
			f[name] = s
		}
	}
	r.Task, r.Payload, r.RetryPolicy, r.UniqueKey = f["t"], []byte(f["p"]), f["rp"], f["uk"]
	r.State, r.CancelRequested = job.State(f["s"]), f["c"] == "1"
	if r.State == job.Running {
		// Set first, so a job whose other fields are broken can still be
		// dead-lettered under its lease.
		r.Lease = job.Lease{JobID: id, Token: f["tk"]}
	}
	if res, ok := f["r"]; ok {
		r.Result = []byte(res)
	}
	bad := func(field string, err error) (*job.Record, error) {
		return r, fmt.Errorf("%w: job %s field %s: %w", job.ErrMalformedPayload, r.ID, field, err)
	}
	if !r.State.Valid() {
		return bad("s", fmt.Errorf("unknown state %q", r.State))
	}
	var prio, runAt, created, started, fin, deliv, maxDeliv, timeout, uu, le int64
	for k, p := range map[string]*int64{"pr": &prio, "ra": &runAt, "ca": &created, "sa": &started, "fa": &fin,
		"d": &deliv, "md": &maxDeliv, "to": &timeout, "uu": &uu, "le": &le} {
		if s := f[k]; s != "" {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return bad(k, err)
			}
			*p = n
		}
	}
	r.Priority, r.Deliveries, r.MaxDeliveries = int(prio), int(deliv), int(maxDeliv)
	r.RunAt, r.CreatedAt, r.StartedAt, r.FinishedAt = fromMS(runAt), fromMS(created), fromMS(started), fromMS(fin)
	r.Timeout, r.UniqueUntil = time.Duration(timeout)*time.Millisecond, fromMS(uu)
	if r.State == job.Running {
		r.Lease.ExpiresAt = fromMS(le)
	}
	if h := f["h"]; h != "" {
		if err := json.Unmarshal([]byte(h), &r.Headers); err != nil {
			return bad("h", err)
		}
	}
	for line := range strings.SplitSeq(strings.TrimSuffix(f["e"], "\n"), "\n") {
		if line == "" {
			continue
		}
		var se storedError
		if err := json.Unmarshal([]byte(line), &se); err != nil {
			return bad("e", err)
		}
		r.Errors = append(r.Errors, job.AttemptError{Attempt: se.N, At: fromMS(se.At), Error: se.Err, Stack: se.Stack})
	}
	return r, nil
}
