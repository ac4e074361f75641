package celery

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

// message is one Celery message, whatever the transport: the AMQP
// properties and headers, or kombu's Redis envelope.
type message struct {
	Headers         map[string]any
	Body            []byte
	ContentType     string
	ContentEncoding string
	CorrelationID   string
	ReplyTo         string
	Priority        int
}

// ErrMalformed is the reason a message was dead-lettered without running:
// it is not a protocol 2 message with a JSON body this package can take.
var ErrMalformed = errors.New("celery: malformed message")

// ReasonHeader is the header a dead-lettered message carries its reason in.
const ReasonHeader = "x-conveyor-reason"

// Headers this package adds to the messages it publishes, so a job that
// goes through Celery's wire format comes back whole to a Go worker.
// Celery ignores them.
const (
	hForm          = "conveyor_form"    // how Payload maps to args and kwargs
	hPayload       = "conveyor_payload" // base64 payload of form "raw"
	hHeaders       = "conveyor_headers" // JSON of the job's headers
	hPriority      = "conveyor_priority"
	hMaxDeliveries = "conveyor_max_deliveries"
	hDeliveries    = "conveyor_deliveries" // earlier deliveries
	hRetryPolicy   = "conveyor_retry_policy"
	hCreated       = "conveyor_created"
	hErrors        = "conveyor_errors" // JSON of the attempt errors
	hTransit       = "conveyor_transit"
)

// Payload forms. A Celery client's message has none and is "call".
const (
	formCall   = "call"   // {"args": [...], "kwargs": {...}}
	formKwargs = "kwargs" // a JSON object: the kwargs
	formArgs   = "args"   // a JSON array: the args
	formRaw    = "raw"    // anything else, carried in hPayload
)

// pyTime is how Python's datetime.isoformat writes an aware time, which
// Celery's own parser reads.
const pyTime = "2006-01-02T15:04:05.000000-07:00"

var timeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04:05.999999999-0700"}

func parseTime(s string) (time.Time, error) {
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("time %q is not ISO 8601", s)
}

// delivered is a message taken apart into the job a worker runs and what
// the broker needs to finish it.
type delivered struct {
	rec     *job.Record
	msg     *message
	expires time.Time
	retries int
}

// decode checks that m is a Celery protocol 2 message with a JSON body
// and maps it to a job of queue. The error wraps ErrMalformed.
func decode(m *message, queue string, now time.Time) (*delivered, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, a...))
	}
	switch ct := strings.ToLower(m.ContentType); {
	case strings.Contains(ct, "pickle"), ct == "application/x-python-serialize":
		return nil, bad("content type %s: pickle is never accepted", m.ContentType)
	case ct != "application/json":
		return nil, bad("content type %q is not supported: only application/json", m.ContentType)
	}
	switch strings.ToLower(m.ContentEncoding) {
	case "utf-8", "utf8", "":
	default:
		return nil, bad("content-encoding %q is not supported: only utf-8", m.ContentEncoding)
	}
	task, _ := m.Headers["task"].(string)
	id, _ := m.Headers["id"].(string)
	if task == "" {
		return nil, bad("no task header: Celery protocol 1 (or not Celery) is not supported, only protocol 2")
	}
	if id == "" {
		return nil, bad("no id header")
	}
	var body []json.RawMessage
	if err := json.Unmarshal(m.Body, &body); err != nil || len(body) < 2 || len(body) > 3 {
		return nil, bad("body is not a JSON array [args, kwargs, embed]")
	}
	args, kwargs := bytes.TrimSpace(body[0]), bytes.TrimSpace(body[1])
	if len(args) == 0 || args[0] != '[' {
		return nil, bad("args are not a JSON array")
	}
	if len(kwargs) == 0 || kwargs[0] != '{' {
		return nil, bad("kwargs are not a JSON object")
	}
	if len(body) == 3 {
		if err := checkEmbed(body[2]); err != nil {
			return nil, bad("%v", err)
		}
	}
	d := &delivered{msg: m, rec: &job.Record{ID: id, Queue: queue, Task: task, State: job.Running, Priority: m.Priority}}
	r := d.rec
	var err error
	if r.Payload, err = payload(m.Headers, args, kwargs); err != nil {
		return nil, bad("%v", err)
	}
	if r.CreatedAt, err = optTime(m.Headers, hCreated); err != nil {
		return nil, bad("%v", err)
	}
	if r.CreatedAt.IsZero() {
		r.CreatedAt = now
	}
	if r.RunAt, err = optTime(m.Headers, "eta"); err != nil {
		return nil, bad("eta: %v", err)
	}
	if r.RunAt.IsZero() {
		r.RunAt = r.CreatedAt
	}
	if d.expires, err = optTime(m.Headers, "expires"); err != nil {
		return nil, bad("expires: %v", err)
	}
	if r.Timeout, err = timeLimit(m.Headers["timelimit"]); err != nil {
		return nil, bad("timelimit: %v", err)
	}
	d.retries, _ = asInt(m.Headers["retries"])
	if p, ok := asInt(m.Headers[hPriority]); ok {
		r.Priority = p
	}
	r.MaxDeliveries, _ = asInt(m.Headers[hMaxDeliveries])
	r.Deliveries, _ = asInt(m.Headers[hDeliveries])
	if redelivered, _ := m.Headers["redelivered"].(bool); redelivered {
		r.Deliveries++ // kombu's mark on a message its consumer left unacked
	}
	r.RetryPolicy, _ = m.Headers[hRetryPolicy].(string)
	if s, ok := m.Headers[hHeaders].(string); ok {
		if err := json.Unmarshal([]byte(s), &r.Headers); err != nil {
			return nil, bad("%s: %v", hHeaders, err)
		}
	} else {
		r.Headers = celeryHeaders(m.Headers)
	}
	if s, ok := m.Headers[hErrors].(string); ok {
		if err := json.Unmarshal([]byte(s), &r.Errors); err != nil {
			return nil, bad("%s: %v", hErrors, err)
		}
	}
	return d, nil
}

// checkEmbed refuses what a Go worker cannot honour: callbacks, errbacks,
// chains and chords are canvas, which runs only in Celery workers.
func checkEmbed(raw json.RawMessage) error {
	var embed map[string]json.RawMessage
	if err := json.Unmarshal(raw, &embed); err != nil {
		return fmt.Errorf("embed is not a JSON object")
	}
	for _, k := range []string{"callbacks", "errbacks", "chain", "chord"} {
		if v := bytes.TrimSpace(embed[k]); len(v) > 0 && !bytes.Equal(v, []byte("null")) && !bytes.Equal(v, []byte("[]")) {
			return fmt.Errorf("embed has %s: canvas is not supported by a Go worker", k)
		}
	}
	return nil
}

// payload rebuilds the job's payload from the body: as it was enqueued
// when a Go client sent it, else {"args": [...], "kwargs": {...}}.
func payload(h map[string]any, args, kwargs json.RawMessage) ([]byte, error) {
	form, _ := h[hForm].(string)
	switch form {
	case formKwargs:
		return kwargs, nil
	case formArgs:
		return args, nil
	case formRaw:
		s, _ := h[hPayload].(string)
		p, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", hPayload, err)
		}
		return p, nil
	case formCall, "":
		return json.Marshal(struct {
			Args   json.RawMessage `json:"args"`
			Kwargs json.RawMessage `json:"kwargs"`
		}{args, kwargs})
	}
	return nil, fmt.Errorf("unknown %s %q", hForm, form)
}

// split maps a job's payload to Celery's args and kwargs, and says how.
func split(p []byte) (args, kwargs json.RawMessage, form string) {
	empty := func() (json.RawMessage, json.RawMessage) { return json.RawMessage("[]"), json.RawMessage("{}") }
	t := bytes.TrimSpace(p)
	if !json.Valid(t) || len(t) == 0 {
		a, k := empty()
		return a, k, formRaw
	}
	switch t[0] {
	case '[':
		return t, json.RawMessage("{}"), formArgs
	case '{':
		var c struct {
			Args   json.RawMessage `json:"args"`
			Kwargs json.RawMessage `json:"kwargs"`
		}
		var keys map[string]json.RawMessage
		if json.Unmarshal(t, &keys) == nil && json.Unmarshal(t, &c) == nil && callShape(keys, c.Args, c.Kwargs) {
			return or(c.Args, "[]"), or(c.Kwargs, "{}"), formCall
		}
		return json.RawMessage("[]"), t, formKwargs
	}
	a, k := empty()
	return a, k, formRaw
}

// callShape says whether an object is {"args": [...], "kwargs": {...}}
// (either may be left out or null).
func callShape(keys map[string]json.RawMessage, args, kwargs json.RawMessage) bool {
	for k := range keys {
		if k != "args" && k != "kwargs" {
			return false
		}
	}
	a, k := bytes.TrimSpace(args), bytes.TrimSpace(kwargs)
	okA := len(a) == 0 || a[0] == '[' || string(a) == "null"
	okK := len(k) == 0 || k[0] == '{' || string(k) == "null"
	return len(keys) > 0 && okA && okK
}

func or(v json.RawMessage, def string) json.RawMessage {
	if len(v) == 0 || string(v) == "null" {
		return json.RawMessage(def)
	}
	return v
}

// encode builds the protocol 2 message of a job a Go client enqueues.
func encode(ins *backends.JobInsert, origin string, now time.Time) (*message, error) {
	args, kwargs, form := split(ins.Payload)
	body, err := json.Marshal([]any{args, kwargs, map[string]any{"callbacks": nil, "errbacks": nil, "chain": nil, "chord": nil}})
	if err != nil {
		return nil, fmt.Errorf("%w: payload: %w", job.ErrInvalid, err)
	}
	var limit any
	if ins.Timeout > 0 {
		limit = ins.Timeout.Seconds()
	}
	h := map[string]any{
		"lang": "py", "task": ins.Task, "id": ins.ID, "shadow": nil, "eta": nil, "expires": nil,
		"group": nil, "group_index": nil, "retries": 0, "timelimit": []any{nil, limit},
		"root_id": ins.ID, "parent_id": nil, "argsrepr": string(args), "kwargsrepr": string(kwargs),
		"origin": origin, "ignore_result": false,
		hForm: form, hCreated: now.UTC().Format(time.RFC3339Nano),
	}
	if form == formRaw {
		h[hPayload] = base64.StdEncoding.EncodeToString(ins.Payload)
	}
	if !ins.RunAt.IsZero() {
		h["eta"] = ins.RunAt.UTC().Format(pyTime)
	}
	if len(ins.Headers) > 0 {
		hj, _ := json.Marshal(ins.Headers)
		h[hHeaders] = string(hj)
	}
	if ins.Priority != 0 {
		h[hPriority] = ins.Priority
	}
	if ins.MaxDeliveries > 0 {
		h[hMaxDeliveries] = ins.MaxDeliveries
	}
	if ins.RetryPolicy != "" {
		h[hRetryPolicy] = ins.RetryPolicy
	}
	return &message{
		Headers: h, Body: body, ContentType: "application/json", ContentEncoding: "utf-8",
		CorrelationID: ins.ID, Priority: min(max(ins.Priority, 0), 9),
	}, nil
}

// again is the message that makes a leased job due again at "at": Celery's
// own retry republishes the task with its id and retries+1 (attempt set),
// and a snooze republishes it as it was.
func again(d *delivered, at time.Time, deliveries int, attempt *job.AttemptError) *message {
	m := *d.msg
	m.Headers = make(map[string]any, len(d.msg.Headers)+4)
	for k, v := range d.msg.Headers {
		m.Headers[k] = v
	}
	delete(m.Headers, "redelivered")
	delete(m.Headers, hTransit)
	m.Headers["eta"] = at.UTC().Format(pyTime)
	m.Headers[hDeliveries] = deliveries
	m.Headers[hCreated] = d.rec.CreatedAt.UTC().Format(time.RFC3339Nano)
	if attempt != nil {
		m.Headers["retries"] = d.retries + 1
		errs, _ := json.Marshal(append(append([]job.AttemptError(nil), d.rec.Errors...), *attempt))
		m.Headers[hErrors] = string(errs)
	}
	return &m
}

func optTime(h map[string]any, key string) (time.Time, error) {
	switch v := h[key].(type) {
	case nil:
		return time.Time{}, nil
	case string:
		if v == "" {
			return time.Time{}, nil
		}
		return parseTime(v)
	}
	return time.Time{}, fmt.Errorf("%s is not a string", key)
}

// timeLimit reads timelimit [soft, hard] in seconds: the job's timeout is
// the smaller one set. A Go handler has one deadline, its context's.
func timeLimit(v any) (time.Duration, error) {
	if v == nil {
		return 0, nil
	}
	l, ok := v.([]any)
	if !ok || len(l) != 2 {
		return 0, fmt.Errorf("not [soft, hard]")
	}
	var out time.Duration
	for _, x := range l {
		if x == nil {
			continue
		}
		f, ok := asFloat(x)
		if !ok || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
			return 0, fmt.Errorf("%v is not a number of seconds", x)
		}
		d := time.Duration(math.Round(f * float64(time.Second)))
		if d > 0 && (out == 0 || d < out) {
			out = d
		}
	}
	return out, nil
}

func asFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	if i, ok := asInt(v); ok {
		return float64(i), true
	}
	return 0, false
}

func asInt(v any) (int, bool) {
	switch x := v.(type) {
	case int:
		return x, true
	case int8:
		return int(x), true
	case int16:
		return int(x), true
	case int32:
		return int(x), true
	case int64:
		return int(x), true
	case uint8:
		return int(x), true
	case uint16:
		return int(x), true
	case uint32:
		return int(x), true
	case float64:
		if x == math.Trunc(x) {
			return int(x), true
		}
	case json.Number:
		i, err := strconv.Atoi(string(x))
		return i, err == nil
	}
	return 0, false
}

// celeryHeaders are the headers of a Celery client's message a handler may
// want (from JobFromContext), as strings.
func celeryHeaders(h map[string]any) map[string]string {
	out := map[string]string{}
	for _, k := range []string{"root_id", "parent_id", "group", "origin", "shadow"} {
		if s, ok := h[k].(string); ok && s != "" {
			out["celery."+k] = s
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
