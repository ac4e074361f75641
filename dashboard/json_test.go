package dashboard_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/conveyorhq/conveyor/dashboard"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

// snakeKey is the one key casing of the API.
var snakeKey = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// userData holds what the API passes through as the app stored it (job
// arguments, results, headers): its keys are the app's.
var userData = map[string]bool{"args": true, "result": true, "headers": true}

// checkKeys fails on any object key of v, outside user data, that is not
// snake_case, and on any null where the API promises a list.
func checkKeys(t *testing.T, where string, v any) {
	t.Helper()
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if !snakeKey.MatchString(k) {
				t.Errorf("%s: key %q is not snake_case", where, k)
			}
			if !userData[k] {
				checkKeys(t, where+"."+k, e)
			}
		}
	case []any:
		for _, e := range v {
			checkKeys(t, where+"[]", e)
		}
	}
}

// get fetches path and returns its status and decoded JSON body.
func get(t *testing.T, url, method string) (int, any) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s %s: Content-Type %q, body %s", method, url, ct, data)
	}
	var out any
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("%s %s: %v in %s", method, url, err, data)
	}
	return res.StatusCode, out
}

// Every answer of the API, data and errors alike, is JSON with snake_case
// keys; every error is {"error": "..."}, also those of the routing and
// the cross-origin check; lists are [] when empty, never null.
func TestJSONIsOneShape(t *testing.T) {
	ctx := context.Background()
	b := openSQLite(t)
	c := queue.NewClient(b, queue.Config{})
	h, err := sendMail.Enqueue(ctx, c, mailArgs{To: "ada@example.com"}, &queue.EnqueueOptions{Headers: map[string]string{"X-Trace": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	killNext(t, b, "mail", "bounced")
	w := worker.New(b, worker.Config{Queues: []worker.QueueConfig{{Name: "other"}},
		Breakers: map[string]worker.BreakerConfig{"smtp": {}}})
	worker.Register(w, queue.NewTask[mailArgs, queue.None]("other.task", queue.TaskOptions{Queue: "other", Breaker: "smtp"}),
		func(context.Context, mailArgs) (queue.None, error) { return queue.None{}, nil })
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer w.Stop(ctx)
	addDigest(t, c)
	srv := serve(t, dashboard.Config{Backend: b})

	for _, path := range []string{"/api/queues", "/api/jobs?state=dead", "/api/jobs/" + h.ID, "/api/workers",
		"/api/schedules", "/api/history", "/healthz", "/readyz"} {
		status, v := get(t, srv.URL+path, "GET")
		if status != http.StatusOK {
			t.Fatalf("GET %s = %d %v", path, status, v)
		}
		checkKeys(t, path, v)
	}
	_, v := get(t, srv.URL+"/api/workers", "GET")
	if ws := v.([]any); len(ws) != 1 || ws[0].(map[string]any)["breakers"] == nil {
		t.Fatalf("workers = %v, want one with its breakers", v)
	}
	_, v = get(t, srv.URL+"/api/history", "GET")
	for k, list := range v.(map[string]any) {
		if list == nil {
			t.Errorf("history %s is null", k)
		}
	}

	for _, c := range []struct{ method, path string }{
		{"GET", "/api/nope"}, {"GET", "/nope.js"}, {"DELETE", "/api/queues"},
		{"GET", "/api/jobs/no-such-job"}, {"GET", "/api/jobs?state=bogus"}, {"POST", "/api/schedules/nope/pause"},
	} {
		status, v := get(t, srv.URL+c.path, c.method)
		m, ok := v.(map[string]any)
		if status < 400 || !ok || len(m) != 1 || m["error"] == nil || m["error"] == "" {
			t.Errorf("%s %s = %d %v, want an error as {\"error\": ...}", c.method, c.path, status, v)
		}
	}
	req, _ := http.NewRequest("POST", srv.URL+"/api/queues/mail/pause", nil)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body map[string]string
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil || res.StatusCode != http.StatusForbidden || body["error"] == "" {
		t.Fatalf("cross-site POST = %d %v (%v)", res.StatusCode, body, err)
	}
}
