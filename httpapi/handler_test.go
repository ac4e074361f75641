package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/sqlitebackend"
	"github.com/conveyorhq/conveyor/httpapi"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

type chargeArgs struct {
	Customer string `json:"customer"`
	Cents    int    `json:"cents"`
}

type receipt struct {
	Charged int `json:"charged"`
}

var charge = queue.NewTask[chargeArgs, receipt]("billing.charge", queue.TaskOptions{Queue: "billing"})

type env struct {
	t      *testing.T
	client *queue.Client
	srv    *httptest.Server
	token  string
}

// newEnv serves the API over a fresh SQLite file with a bearer token.
func newEnv(t *testing.T, queues ...*queue.Queue) *env {
	t.Helper()
	b, err := sqlitebackend.Open(context.Background(), sqlitebackend.Config{Path: filepath.Join(t.TempDir(), "api.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	c := queue.NewClient(b, queue.Config{Queues: queues})
	h, err := httpapi.New(httpapi.Config{Client: c, Tasks: []queue.Definition{charge}, BearerToken: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &env{t: t, client: c, srv: srv, token: "s3cret"}
}

// do sends a request and decodes the JSON answer into out (if not nil),
// failing unless the status is want.
func (e *env) do(method, path, body string, want int, out any) *http.Response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		e.t.Fatalf("%s %s: answer is not JSON: %v", method, path, err)
	}
	if resp.StatusCode != want {
		e.t.Fatalf("%s %s = %d %s, want %d", method, path, resp.StatusCode, raw, want)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			e.t.Fatal(err)
		}
	}
	return resp
}

// runWorker runs charge's handler until the test ends.
func (e *env) runWorker() {
	w := worker.New(e.client.Backend(), worker.Config{Queues: []worker.QueueConfig{{Name: "billing"}}, PollInterval: 10 * time.Millisecond})
	worker.Register(w, charge, func(_ context.Context, a chargeArgs) (receipt, error) {
		return receipt{Charged: a.Cents}, nil
	})
	if err := w.Start(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = w.Stop(context.Background()) })
}

type jobView struct {
	ID     string          `json:"id"`
	State  string          `json:"state"`
	Result json.RawMessage `json:"result"`
	Errors []struct {
		Error string `json:"error"`
	} `json:"errors"`
}

func TestEnqueueWaitAndRead(t *testing.T) {
	e := newEnv(t)
	var one struct {
		ID        string `json:"id"`
		Duplicate bool   `json:"duplicate"`
	}
	e.do("POST", "/v1/jobs", `{"task":"billing.charge","args":{"customer":"c1","cents":1999},"id":"charge-1"}`, 201, &one)
	if one.ID != "charge-1" || one.Duplicate {
		t.Fatalf("enqueue = %+v", one)
	}
	// The same ID again is the same job, not a second one.
	e.do("POST", "/v1/jobs", `{"task":"billing.charge","args":{"customer":"c1","cents":1999},"id":"charge-1"}`, 201, &one)
	if !one.Duplicate {
		t.Fatal("second enqueue with the same id was not a duplicate")
	}
	var pending jobView
	e.do("GET", "/v1/jobs/charge-1", "", 200, &pending)
	if pending.State != "pending" || string(pending.Result) != "null" {
		t.Fatalf("before a worker: %+v", pending)
	}
	// Nothing runs it yet: the wait times out with the job as it stands.
	e.do("GET", "/v1/jobs/charge-1/wait?timeout=50ms", "", 202, &pending)

	var batch struct {
		Jobs []struct {
			ID string `json:"id"`
		} `json:"jobs"`
	}
	e.do("POST", "/v1/jobs/batch", `{"jobs":[{"task":"billing.charge","args":{"cents":1}},{"task":"billing.charge","args":{"cents":2},"delay":"1ms"}]}`, 201, &batch)
	if len(batch.Jobs) != 2 || batch.Jobs[0].ID == "" {
		t.Fatalf("batch = %+v", batch)
	}

	e.runWorker()
	var done jobView
	e.do("GET", "/v1/jobs/charge-1/wait?timeout=30s", "", 200, &done)
	if done.State != "done" || string(done.Result) != `{"charged":1999}` {
		t.Fatalf("after the worker: state %s result %s", done.State, done.Result)
	}
	e.do("GET", "/v1/jobs/"+batch.Jobs[1].ID+"/wait?timeout=30s", "", 200, &done)
	if string(done.Result) != `{"charged":2}` {
		t.Fatalf("batch job result %s", done.Result)
	}
	// A finished job cannot be cancelled.
	e.do("POST", "/v1/jobs/charge-1/cancel", "", 409, nil)
}

func TestCancelAWaitingJob(t *testing.T) {
	e := newEnv(t)
	e.do("POST", "/v1/jobs", `{"task":"billing.charge","args":{},"id":"later","delay":"1h"}`, 201, nil)
	var c struct{ State string }
	e.do("POST", "/v1/jobs/later/cancel", "", 200, &c)
	if c.State != "cancelled" {
		t.Fatalf("cancel = %+v", c)
	}
	e.do("GET", "/v1/jobs/no-such-job", "", 404, nil)
	e.do("POST", "/v1/jobs/no-such-job/cancel", "", 404, nil)
}

// Bad input answers 400 with a message that names the field, and stores
// nothing: a batch with one bad job stores none of it.
func TestBadInputNamesTheField(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct{ body, field string }{
		{`{"task":"billing.charge","args":{"cents":"lots"}}`, "args"},
		{`{"task":"no.such.task","args":{}}`, `task: unknown task "no.such.task"`},
		{`{"args":{}}`, "task: required"},
		{`{"task":"billing.charge","args":{},"prority":3}`, `unknown field "prority"`},
		{`{"task":"billing.charge","args":{},"delay":"soon"}`, "delay"},
		{`{"task":"billing.charge","args":{},"priority":"high"}`, "priority"},
		{`{"task":"billing.charge","args":{},"id":"has space"}`, "id"},
		{`{"task":"billing.charge",`, "malformed JSON"},
		{``, "empty"},
	} {
		var got struct{ Error string }
		e.do("POST", "/v1/jobs", tc.body, 400, &got)
		if !strings.Contains(got.Error, tc.field) {
			t.Errorf("%s: error %q does not name %q", tc.body, got.Error, tc.field)
		}
	}
	var got struct{ Error string }
	e.do("POST", "/v1/jobs/batch", `{"jobs":[{"task":"billing.charge","args":{}},{"task":"billing.charge","args":[]}]}`, 400, &got)
	if !strings.Contains(got.Error, "jobs[1].args") {
		t.Errorf("batch error %q does not name jobs[1].args", got.Error)
	}
	stats, err := e.client.Backend().(backends.Inspector).QueueStats(context.Background(), backends.QueueStatsParams{})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range stats {
		if q.Queue == "billing" {
			t.Fatalf("a refused request stored jobs: %+v", q)
		}
	}
	e.do("GET", "/v1/nothing-here", "", 404, nil)
}

// A full queue is HTTP backpressure: 429 with Retry-After.
func TestFullQueueIs429(t *testing.T) {
	e := newEnv(t, queue.NewQueue("billing", queue.QueueOptions{MaxDepth: 1, WhenFull: queue.Reject}))
	e.do("POST", "/v1/jobs", `{"task":"billing.charge","args":{}}`, 201, nil)
	resp := e.do("POST", "/v1/jobs", `{"task":"billing.charge","args":{}}`, 429, nil)
	if resp.Header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
}

func TestAuth(t *testing.T) {
	e := newEnv(t)
	e.token = "wrong"
	resp := e.do("GET", "/v1/jobs/x", "", 401, nil)
	if resp.Header.Get("WWW-Authenticate") != "" {
		t.Fatal("a bearer-only API asked for basic auth")
	}

	b, err := sqlitebackend.Open(context.Background(), sqlitebackend.Config{Path: filepath.Join(t.TempDir(), "open.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	open, err := httpapi.New(httpapi.Config{Client: queue.NewClient(b, queue.Config{}), Tasks: []queue.Definition{charge}})
	if err != nil {
		t.Fatal(err)
	}
	// Without credentials configured, loopback is served and anything
	// else refused (httptest.NewRequest comes from 192.0.2.1).
	rec := httptest.NewRecorder()
	open.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/jobs/x", nil))
	if rec.Code != http.StatusForbidden {
		t.Fatalf("unauthenticated API from a remote address = %d, want 403", rec.Code)
	}
	local := httptest.NewRequest("GET", "/v1/jobs/x", nil)
	local.RemoteAddr = "127.0.0.1:5555"
	rec = httptest.NewRecorder()
	open.ServeHTTP(rec, local)
	if rec.Code != http.StatusNotFound {
		t.Fatalf("unauthenticated API from loopback = %d, want 404 (served)", rec.Code)
	}

	basic, err := httpapi.New(httpapi.Config{Client: queue.NewClient(b, queue.Config{}), Tasks: []queue.Definition{charge},
		BasicAuth: &httpapi.BasicAuth{User: "ops", Password: "pw"}})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/v1/jobs/x", nil)
	req.SetBasicAuth("ops", "pw")
	rec = httptest.NewRecorder()
	basic.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotFound {
		t.Fatalf("basic auth = %d, want 404 (served)", rec.Code)
	}
}
