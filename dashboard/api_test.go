package dashboard_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/sqlitebackend"
	"github.com/conveyorhq/conveyor/dashboard"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/scheduler"
	"github.com/conveyorhq/conveyor/worker"
)

type mailArgs struct {
	To string `json:"to"`
}

var sendMail = queue.NewTask[mailArgs, queue.None]("mail.send", queue.TaskOptions{Queue: "mail"})

func openSQLite(t *testing.T) *sqlitebackend.Backend {
	t.Helper()
	b, err := sqlitebackend.Open(context.Background(), sqlitebackend.Config{Path: filepath.Join(t.TempDir(), "dash.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// killNext dead-letters the next job of queue with reason, as a worker
// whose handler failed for good would.
func killNext(t *testing.T, b backends.Backend, queue, reason string) {
	t.Helper()
	ctx := context.Background()
	recs, err := b.Reserve(ctx, backends.ReserveParams{Queue: queue, Limit: 1, Lease: time.Minute})
	if err != nil || len(recs) != 1 {
		t.Fatalf("Reserve = %v, %v", recs, err)
	}
	if err := b.DeadLetter(ctx, backends.DeadLetterParams{Lease: recs[0].Lease, Error: job.AttemptError{Attempt: 1, At: time.Now(), Error: reason}}); err != nil {
		t.Fatal(err)
	}
}

// addDigest stores the periodic entry "digest", daily at 7:00, as an app's
// scheduler does.
func addDigest(t *testing.T, c *queue.Client) {
	t.Helper()
	s, err := scheduler.New(c, scheduler.Config{Tasks: []queue.Definition{sendMail}})
	if err != nil {
		t.Fatal(err)
	}
	e, err := scheduler.NewEntry("digest", "0 7 * * *", sendMail, mailArgs{To: "team@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Add(context.Background(), e); err != nil {
		t.Fatal(err)
	}
}

// serve starts the dashboard for cfg on a test server.
func serve(t *testing.T, cfg dashboard.Config) *httptest.Server {
	t.Helper()
	h, err := dashboard.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// call makes a request and decodes the JSON answer into out (if not nil),
// failing unless the status is want.
func call(t *testing.T, srv *httptest.Server, method, path, body string, want int, out any, hdr ...string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		t.Fatalf("%s %s = %d %s, want %d", method, path, res.StatusCode, data, want)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, data)
		}
	}
}

func TestHealthAndReadiness(t *testing.T) {
	b := openSQLite(t)
	srv := serve(t, dashboard.Config{Backend: b})
	call(t, srv, "GET", "/healthz", "", http.StatusOK, nil)
	call(t, srv, "GET", "/readyz", "", http.StatusOK, nil)
	_ = b.Close() // the backend is gone: not ready, but the process still serves
	call(t, srv, "GET", "/readyz", "", http.StatusServiceUnavailable, nil)
	call(t, srv, "GET", "/healthz", "", http.StatusOK, nil)
}

// The operator's round: see the queues and jobs, pause and resume, fix a
// dead letter's arguments and replay it, cancel and delete jobs.
func TestOperatorActions(t *testing.T) {
	ctx := context.Background()
	b := openSQLite(t)
	// The app's client stores the queue's bound, which the dashboard shows.
	c := queue.NewClient(b, queue.Config{Queues: []*queue.Queue{queue.NewQueue("mail", queue.QueueOptions{MaxDepth: 10})}})
	var ids []string
	for _, to := range []string{"a@example.com", "<b>@example.com", "c@example.com"} {
		h, err := sendMail.Enqueue(ctx, c, mailArgs{To: to}, nil)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, h.ID)
	}
	killNext(t, b, "mail", "mailbox unavailable") // the first dies with a reason
	srv := serve(t, dashboard.Config{Backend: b})

	var qs []dashboard.QueueView
	call(t, srv, "GET", "/api/queues", "", http.StatusOK, &qs)
	if len(qs) != 1 || qs[0].Queue != "mail" || qs[0].Counts[job.Pending] != 2 || qs[0].Counts[job.Dead] != 1 || qs[0].Depth != 2 || qs[0].Bound != 10 {
		t.Fatalf("queues = %+v", qs)
	}
	var page dashboard.JobPage
	call(t, srv, "GET", "/api/jobs?queue=mail&state=pending&limit=1", "", http.StatusOK, &page)
	if len(page.Jobs) != 1 || page.Next == "" {
		t.Fatalf("first page = %+v", page)
	}
	call(t, srv, "GET", "/api/jobs?queue=mail&state=pending&limit=1&cursor="+page.Next, "", http.StatusOK, &page)
	if len(page.Jobs) != 1 || page.Jobs[0].ID != ids[2] {
		t.Fatalf("second page = %+v", page)
	}
	call(t, srv, "GET", "/api/jobs?state=bogus", "", http.StatusBadRequest, nil)

	var dead dashboard.JobView
	call(t, srv, "GET", "/api/jobs/"+ids[0], "", http.StatusOK, &dead)
	if dead.State != job.Dead || len(dead.Attempts) != 1 || dead.Attempts[0].Error != "mailbox unavailable" || string(dead.Args) != `{"to":"a@example.com"}` {
		t.Fatalf("dead job = %+v (args %s)", dead, dead.Args)
	}
	call(t, srv, "GET", "/api/jobs/no-such-job", "", http.StatusNotFound, nil)

	call(t, srv, "POST", "/api/queues/mail/pause", "", http.StatusNoContent, nil)
	call(t, srv, "GET", "/api/queues", "", http.StatusOK, &qs)
	if !qs[0].Paused {
		t.Fatal("queue not paused")
	}
	call(t, srv, "POST", "/api/queues/mail/resume", "", http.StatusNoContent, nil)

	// Fix the dead job's address and replay it; a pending job is not replayed.
	call(t, srv, "POST", "/api/jobs/"+ids[0]+"/replay", `{"args": {"to": "a@example.org"}}`, http.StatusOK, nil)
	call(t, srv, "GET", "/api/jobs/"+ids[0], "", http.StatusOK, &dead)
	if dead.State != job.Pending || string(dead.Args) != `{"to":"a@example.org"}` {
		t.Fatalf("replayed job = %+v (args %s)", dead, dead.Args)
	}
	call(t, srv, "POST", "/api/jobs/"+ids[1]+"/replay", "", http.StatusConflict, nil)

	var st map[string]job.State
	call(t, srv, "POST", "/api/jobs/"+ids[1]+"/cancel", "", http.StatusOK, &st)
	if st["state"] != job.Cancelled {
		t.Fatalf("cancel = %v", st)
	}
	call(t, srv, "POST", "/api/jobs/"+ids[1]+"/cancel", "", http.StatusConflict, nil)
	call(t, srv, "POST", "/api/jobs/"+ids[1]+"/delete", "", http.StatusOK, nil)
	call(t, srv, "GET", "/api/jobs/"+ids[1], "", http.StatusNotFound, nil)

	// The JSON escapes markup: an address with <b> comes back as \u003c.
	res, err := srv.Client().Get(srv.URL + "/api/jobs?queue=mail&state=cancelled")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	if strings.Contains(string(data), "<b>") {
		t.Fatalf("unescaped markup in %s", data)
	}
}

func TestWorkersAreListed(t *testing.T) {
	ctx := context.Background()
	b := openSQLite(t)
	w := worker.New(b, worker.Config{Queues: []worker.QueueConfig{{Name: "mail"}, {Name: "exports", Fair: true, FairWeights: map[string]int{"big": 3}}}, Concurrency: 3})
	worker.Register(w, sendMail, func(context.Context, mailArgs) (queue.None, error) { return queue.None{}, nil })
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer w.Stop(ctx)
	srv := serve(t, dashboard.Config{Backend: b})
	var ws []dashboard.WorkerView
	call(t, srv, "GET", "/api/workers", "", http.StatusOK, &ws)
	if len(ws) != 1 || ws[0].ID != w.ID() || ws[0].Concurrency != 3 {
		t.Fatalf("workers = %+v", ws)
	}
	if got := ws[0].Fair; len(got) != 1 || got["exports"]["big"] != 3 {
		t.Fatalf("worker's fair queues %v, want exports with big=3", got)
	}
}

// Credentials, when configured, are required everywhere but the health
// checks; a cross-site POST from a browser is refused even with them; a
// read-only dashboard refuses every POST.
func TestSecurity(t *testing.T) {
	b := openSQLite(t)
	srv := serve(t, dashboard.Config{Backend: b, BasicAuth: &dashboard.BasicAuth{User: "ops", Password: "s3cret"}, BearerToken: "tok"})
	call(t, srv, "GET", "/api/queues", "", http.StatusUnauthorized, nil)
	call(t, srv, "GET", "/api/queues", "", http.StatusUnauthorized, nil, "Authorization", "Basic b3BzOndyb25n") // ops:wrong
	call(t, srv, "GET", "/api/queues", "", http.StatusOK, nil, "Authorization", "Basic b3BzOnMzY3JldA==")       // ops:s3cret
	call(t, srv, "GET", "/api/queues", "", http.StatusOK, nil, "Authorization", "Bearer tok")
	call(t, srv, "GET", "/api/queues", "", http.StatusUnauthorized, nil, "Authorization", "Bearer nope")
	call(t, srv, "GET", "/healthz", "", http.StatusOK, nil)
	call(t, srv, "GET", "/readyz", "", http.StatusOK, nil)

	auth := []string{"Authorization", "Bearer tok"}
	call(t, srv, "POST", "/api/queues/mail/pause", "", http.StatusForbidden, nil, append(auth, "Sec-Fetch-Site", "cross-site")...)
	call(t, srv, "POST", "/api/queues/mail/pause", "", http.StatusForbidden, nil, append(auth, "Origin", "https://evil.example")...)
	call(t, srv, "POST", "/api/queues/mail/pause", "", http.StatusNoContent, nil, append(auth, "Sec-Fetch-Site", "same-origin")...)

	ro := serve(t, dashboard.Config{Backend: b, ReadOnly: true})
	call(t, ro, "POST", "/api/queues/mail/resume", "", http.StatusForbidden, nil)
	call(t, ro, "GET", "/api/queues", "", http.StatusOK, nil)
}

// /metrics exports the queues' counts and the live workers, with names
// that pass Prometheus's own lint.
func TestMetrics(t *testing.T) {
	ctx := context.Background()
	b := openSQLite(t)
	c := queue.NewClient(b, queue.Config{})
	for range 2 {
		if _, err := sendMail.Enqueue(ctx, c, mailArgs{To: "x@example.com"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	w := worker.New(b, worker.Config{Queues: []worker.QueueConfig{{Name: "other"}}, Concurrency: 4})
	worker.Register(w, queue.NewTask[mailArgs, queue.None]("other.task", queue.TaskOptions{Queue: "other"}),
		func(context.Context, mailArgs) (queue.None, error) { return queue.None{}, nil })
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer w.Stop(ctx)
	srv := serve(t, dashboard.Config{Backend: b})
	res, err := srv.Client().Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	for _, want := range []string{
		`conveyor_queue_jobs{queue="mail",state="pending"} 2`,
		`conveyor_queue_depth{queue="mail"} 2`,
		`conveyor_queue_paused{queue="mail"} 0`,
		`conveyor_workers 1`,
		`conveyor_worker_concurrency{worker="` + w.ID() + `"} 4`,
		`conveyor_backend_up 1`,
	} {
		if !strings.Contains(string(data), want) {
			t.Fatalf("/metrics lacks %s:\n%s", want, data)
		}
	}
	problems, err := promlint.New(strings.NewReader(string(data))).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metric %s: %s", p.Metric, p.Text)
	}
}

// Search finds jobs by ID, task name or argument text; schedules are
// listed and paused.
func TestSearchAndSchedules(t *testing.T) {
	ctx := context.Background()
	b := openSQLite(t)
	c := queue.NewClient(b, queue.Config{})
	for _, to := range []string{"ada@example.com", "bob@example.com"} {
		if _, err := sendMail.Enqueue(ctx, c, mailArgs{To: to}, nil); err != nil {
			t.Fatal(err)
		}
	}
	srv := serve(t, dashboard.Config{Backend: b})
	var page dashboard.JobPage
	call(t, srv, "GET", "/api/jobs?state=pending&q=bob%40", "", http.StatusOK, &page)
	if len(page.Jobs) != 1 || !strings.Contains(string(page.Jobs[0].Args), "bob@") {
		t.Fatalf("search bob@ = %+v", page)
	}
	call(t, srv, "GET", "/api/jobs?state=pending&q=mail.send", "", http.StatusOK, &page)
	if len(page.Jobs) != 2 {
		t.Fatalf("search by task = %d jobs, want 2", len(page.Jobs))
	}

	addDigest(t, c)
	var entries []dashboard.ScheduleView
	call(t, srv, "GET", "/api/schedules", "", http.StatusOK, &entries)
	if len(entries) != 1 || entries[0].Name != "digest" || entries[0].Schedule != "0 7 * * *" || entries[0].Task != "mail.send" ||
		entries[0].Paused || entries[0].Last != nil {
		t.Fatalf("schedules = %+v", entries)
	}
	call(t, srv, "POST", "/api/schedules/digest/pause", "", http.StatusNoContent, nil)
	call(t, srv, "GET", "/api/schedules", "", http.StatusOK, &entries)
	if !entries[0].Paused {
		t.Fatal("entry not paused")
	}
	call(t, srv, "POST", "/api/schedules/digest/resume", "", http.StatusNoContent, nil)
	call(t, srv, "POST", "/api/schedules/nope/pause", "", http.StatusNotFound, nil)
}
