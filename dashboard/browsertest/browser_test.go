package browsertest_test

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/sqlitebackend"
	"github.com/conveyorhq/conveyor/dashboard"
	"github.com/conveyorhq/conveyor/internal/testenv"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

// The page in a real headless Chromium: it shows a queue's counts change
// as a worker runs its jobs, pauses the queue on a click, lists its dead
// letters, finds one by search, and replays it with arguments edited on
// the page. The screenshot is kept in $CONVEYOR_ARTIFACTS
// (or the temporary directory) as dashboard.png.
func TestPageInBrowser(t *testing.T) {
	chromium := testenv.Chromium(t)
	ctx := context.Background()
	b := openSQLite(t)
	c := queue.NewClient(b, queue.Config{})
	dead, err := sendMail.Enqueue(ctx, c, mailArgs{To: "bounced@example.com"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := b.Reserve(ctx, backends.ReserveParams{Queue: "mail", Limit: 1, Lease: time.Minute})
	if err != nil || len(recs) != 1 {
		t.Fatalf("Reserve = %v, %v", recs, err)
	}
	if err := b.DeadLetter(ctx, backends.DeadLetterParams{Lease: recs[0].Lease, Error: job.AttemptError{Attempt: 1, At: time.Now(), Error: "mailbox <full>"}}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := sendMail.Enqueue(ctx, c, mailArgs{To: "x@example.com"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	gate := make(chan struct{}) // the jobs run once the page has shown them waiting
	w := worker.New(b, worker.Config{Queues: []worker.QueueConfig{{Name: "mail"}}, Concurrency: 3, PollInterval: 50 * time.Millisecond})
	worker.Register(w, sendMail, func(ctx context.Context, _ mailArgs) (queue.None, error) {
		select {
		case <-gate:
		case <-ctx.Done():
		}
		return queue.None{}, nil
	})
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer w.Stop(ctx)
	srv := serve(t, dashboard.Config{Backend: b, HistoryEvery: 100 * time.Millisecond})

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true))
	actx, cancel := chromedp.NewExecAllocator(ctx, opts...)
	defer cancel()
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	bctx, cancel = context.WithTimeout(bctx, 60*time.Second)
	defer cancel()

	row := `#queues tr[data-queue="mail"]`
	count := func(state string) string {
		return `document.querySelector('` + row + ` td[data-state="` + state + `"]').textContent`
	}
	type step = chromedp.Action[chromedp.Void]
	poll := func(expr string) step { return chromedp.Poll[chromedp.Void](expr) }
	var shot []byte
	err = chromedp.Do(bctx,
		chromedp.Navigate(srv.URL+"/"),
		chromedp.WaitVisible(row),
		// Three jobs running (held at the gate), none done yet.
		poll(count("running")+` === "3" && `+count("done")+` === "0"`),
		step(func(context.Context, *chromedp.Target) (chromedp.Void, error) {
			close(gate)
			return chromedp.Void{}, nil
		}),
		// The page updates by itself as the worker finishes them.
		poll(count("done")+` === "3"`),
		// The chart of the last hour has the queue's line.
		poll(`document.querySelector('#charts .chart[data-chart="queue-mail"] polyline') !== null`),
		chromedp.Click(row+` button:nth-of-type(1)`), // Pause
		poll(`document.querySelector('`+row+` td').textContent === "mail (paused)"`),
		chromedp.Click(row+` button:nth-of-type(2)`), // Dead letters
		chromedp.WaitVisible(`#dead tr[data-job="`+dead.ID+`"]`),
		// Find the dead job by its arguments, open it, fix them, replay it.
		chromedp.SetValue(`#job-text`, "bounced"),
		chromedp.Click(`#search button`),
		chromedp.Click(`#jobs tr[data-job="`+dead.ID+`"]`),
		poll(`document.getElementById("detail-state").textContent === "(dead)"`),
		step(func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
			var err error
			shot, err = chromedp.FullScreenshot(100)(ctx, t) // 100: PNG
			return chromedp.Void{}, err
		}),
		chromedp.SetValue(`#detail-args`, `{"to": "fixed@example.com"}`),
		chromedp.Evaluate[chromedp.Void](`window.confirm = () => true`), // the browser's own dialog
		chromedp.Click(`#detail-replay`),
		poll(count("dead")+` === "0" && `+count("pending")+` === "1"`),
	)
	if err != nil {
		t.Fatalf("in the browser: %v", err)
	}
	st, err := b.QueueStats(ctx, backends.QueueStatsParams{Queue: "mail"})
	if err != nil || len(st) != 1 || !st[0].Paused {
		t.Fatalf("the click did not pause the queue: %+v, %v", st, err)
	}
	r, err := b.GetJob(ctx, backends.GetJobParams{ID: dead.ID})
	if err != nil || r.State != job.Pending || string(r.Payload) != `{"to":"fixed@example.com"}` { // paused: it waits
		t.Fatalf("replayed job: %+v, %v", r, err)
	}
	dir := os.Getenv("CONVEYOR_ARTIFACTS")
	if dir == "" {
		dir = os.TempDir()
	}
	out := filepath.Join(dir, "dashboard.png")
	if err := os.WriteFile(out, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", out)
}

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
