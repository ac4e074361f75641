package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/internal/testenv"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

// Ping makes a round trip through the backend a URL names; its error
// names the URL with the password hidden.
func TestPing(t *testing.T) {
	if err := Ping(t.Context(), filepath.Join(t.TempDir(), "ping.db")); err != nil {
		t.Errorf("a SQLite file: %v", err)
	}
	err := Ping(t.Context(), "redis://:hunter2@127.0.0.1:1/0")
	if err == nil || !strings.Contains(err.Error(), "backend redis://:xxxxx@127.0.0.1:1/0: ") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("an unreachable server: %v", err)
	}
}

// A worker daemon with an http address serves the producer API for the
// app's tasks there: a job enqueued over HTTP runs on its worker.
func TestProducerAPIOnTheHTTPAddress(t *testing.T) {
	greet := queue.NewTask[string, string]("api.greet", queue.TaskOptions{})
	app := App{Name: "apitest", Tasks: []queue.Definition{greet}, Register: func(w *worker.Worker) error {
		worker.Register(w, greet, func(_ context.Context, name string) (string, error) { return "hello " + name, nil })
		return nil
	}}
	cfg := Defaults()
	cfg.DB = filepath.Join(t.TempDir(), "api.db")
	cfg.HTTP = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cfg.APIToken = "tok"
	ctx, stop := context.WithCancel(t.Context())
	ran := make(chan error, 1)
	go func() { ran <- Run(ctx, app, cfg) }()
	defer func() {
		stop()
		if err := <-ran; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	post := func() (*http.Response, error) {
		req, _ := http.NewRequest("POST", "http://"+cfg.HTTP+"/v1/jobs", strings.NewReader(`{"task":"api.greet","args":"ada","id":"g1"}`))
		req.Header.Set("Authorization", "Bearer tok")
		return http.DefaultClient.Do(req)
	}
	var resp *http.Response
	deadline := time.Now().Add(10 * time.Second)
	for { // until the daemon listens
		var err error
		if resp, err = post(); err == nil || time.Now().After(deadline) {
			if err != nil {
				t.Fatal(err)
			}
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v1/jobs = %d", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", "http://"+cfg.HTTP+"/v1/jobs/g1/wait?timeout=30s", nil)
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var job struct {
		State  string          `json:"state"`
		Result json.RawMessage `json:"result"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&job); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || job.State != "done" || string(job.Result) != `"hello ada"` {
		t.Fatalf("wait = %d, state %s, result %s", resp.StatusCode, job.State, job.Result)
	}
}
