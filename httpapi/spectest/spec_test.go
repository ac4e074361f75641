package spectest_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/conveyorhq/conveyor/backends/sqlitebackend"
	"github.com/conveyorhq/conveyor/httpapi"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

type addArgs struct {
	A, B int
}

var add = queue.NewTask[addArgs, int]("math.add", queue.TaskOptions{Queue: "math"})

func TestAnswersMatchTheDocument(t *testing.T) {
	ctx := context.Background()
	spec, err := os.ReadFile(filepath.Join("..", "openapi.json"))
	if err != nil {
		t.Fatal(err)
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(ctx); err != nil {
		t.Fatalf("openapi.json is not valid OpenAPI 3: %v", err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}

	b, err := sqlitebackend.Open(ctx, sqlitebackend.Config{Path: filepath.Join(t.TempDir(), "spec.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c := queue.NewClient(b, queue.Config{Queues: []*queue.Queue{queue.NewQueue("full", queue.QueueOptions{MaxDepth: 1})}})
	h, err := httpapi.New(httpapi.Config{Client: c, Tasks: []queue.Definition{add}, BearerToken: "t"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	w := worker.New(b, worker.Config{Queues: []worker.QueueConfig{{Name: "math"}}, PollInterval: 10 * time.Millisecond})
	worker.Register(w, add, func(_ context.Context, a addArgs) (int, error) { return a.A + a.B, nil })
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.Stop(ctx) }()

	// Each request is checked against the document, and so is its answer.
	seen := map[string]bool{}
	call := func(method, path, body, token string, want int) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		route, params, err := router.FindRoute(req)
		if err != nil {
			t.Fatalf("%s %s is not in the document: %v", method, path, err)
		}
		in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
		if want < 400 {
			if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
				t.Fatalf("%s %s: the request does not match the document: %v", method, path, err)
			}
		}
		req.Body = io.NopCloser(strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		got, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			t.Fatalf("%s %s = %d %s, want %d", method, path, resp.StatusCode, got, want)
		}
		out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
			Body: io.NopCloser(bytes.NewReader(got))}
		if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
			t.Fatalf("%s %s: the %d answer does not match the document: %v\n%s", method, path, resp.StatusCode, err, got)
		}
		seen[route.Method+" "+route.Path] = true
	}
	call("POST", "/v1/jobs", `{"task":"math.add","args":{"A":2,"B":3},"id":"sum-1","delay":"1ms","headers":{"tenant":"t1"}}`, "t", 201)
	call("GET", "/v1/jobs/sum-1/wait?timeout=30s", "", "t", 200)
	call("GET", "/v1/jobs/sum-1", "", "t", 200)
	call("POST", "/v1/jobs/batch", `{"jobs":[{"task":"math.add","args":{"A":1,"B":1},"queue":"full"},{"task":"math.add","args":{"A":1,"B":2},"queue":"elsewhere"}]}`, "t", 201)
	call("POST", "/v1/jobs", `{"task":"math.add","args":{"A":1,"B":1},"queue":"full"}`, "t", 429)
	call("POST", "/v1/jobs", `{"task":"math.add","args":{"A":1,"B":1},"id":"later","run_at":"2099-01-01T00:00:00Z"}`, "t", 201)
	call("GET", "/v1/jobs/later/wait?timeout=10ms", "", "t", 202)
	call("POST", "/v1/jobs/later/cancel", "", "t", 200)
	call("POST", "/v1/jobs/sum-1/cancel", "", "t", 409)
	call("GET", "/v1/jobs/nope", "", "t", 404)
	call("POST", "/v1/jobs", `{"task":"math.nope"}`, "t", 400)
	call("GET", "/v1/jobs/sum-1", "", "wrong", 401)
	call("GET", "/v1/openapi.json", "", "", 200)
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			if !seen[method+" "+path] {
				t.Errorf("%s %s is in the document but the session never called it", method, path)
			}
		}
	}
}
