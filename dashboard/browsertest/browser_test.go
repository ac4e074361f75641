package browsertest_test

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/sqlitebackend"
	"github.com/conveyorhq/conveyor/dashboard"
	"github.com/conveyorhq/conveyor/flow"
	"github.com/conveyorhq/conveyor/internal/testenv"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/scheduler"
	"github.com/conveyorhq/conveyor/worker"
	"github.com/conveyorhq/conveyor/workflow"
)

// The page in a real headless Chromium, at the dashboard's default
// settings, behind a token: it signs in on the login form, visits every
// view, and fails on any console error or exception and on the text
// "undefined" anywhere in a view. On the way it watches a queue's counts
// change as a worker runs its jobs, pauses the queue, finds a dead letter
// by its arguments and replays it with arguments edited on the page, and
// lowers the queue's rate limit with an override.
// Each view's screenshot is kept in $CONVEYOR_ARTIFACTS (or the temporary
// directory) as dashboard-<view>.png.
func TestPageInBrowser(t *testing.T) {
	chromium := testenv.Chromium(t)
	ctx := context.Background()
	b := openSQLite(t)
	c := queue.NewClient(b, queue.Config{Queues: []*queue.Queue{queue.NewQueue("mail", queue.QueueOptions{MaxDepth: 200})}})
	dead, err := sendMail.Enqueue(ctx, c, mailArgs{To: "bounced@example.com"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A chord on a queue of its own: three mails, then a fourth once they
	// are sent; nothing runs it, so the page shows one enqueued level.
	onWF := &queue.EnqueueOptions{Queue: "announce"}
	mail := func(step string) *workflow.Step {
		return workflow.Task(step, sendMail, mailArgs{To: step + "@example.com"}, onWF)
	}
	wf, err := workflow.Enqueue(ctx, c, workflow.Chord(mail("summary"), mail("eu"), mail("us"), mail("apac")), nil)
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
	// An hour of history as a sampler would have kept it: readings of the
	// real counts, recorded as of minutes past.
	s, err := dashboard.NewSampler(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-50 * time.Minute)
	for i := range 45 {
		for range 2 + i%5 {
			if _, err := sendMail.Enqueue(ctx, c, mailArgs{To: "early@example.com"}, nil); err != nil {
				t.Fatal(err)
			}
		}
		done, err := b.Reserve(ctx, backends.ReserveParams{Queue: "mail", Limit: 1 + i%4, Lease: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range done {
			if err := b.Complete(ctx, backends.CompleteParams{Lease: r.Lease}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Sample(ctx, start.Add(time.Duration(i)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		if _, err := sendMail.Enqueue(ctx, c, mailArgs{To: "x@example.com"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	sched, err := scheduler.New(c, scheduler.Config{Tasks: []queue.Definition{sendMail}})
	if err != nil {
		t.Fatal(err)
	}
	entry, err := scheduler.NewEntry("weekly-digest", "0 8 * * 1", sendMail, mailArgs{To: "team@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if err := sched.Add(ctx, entry); err != nil {
		t.Fatal(err)
	}
	gate := make(chan struct{}) // the jobs run once the page has shown them waiting
	var once sync.Once
	// The queue's rate limit is far above what the test sends: the limits
	// view shows it, and the page lowers it with an override.
	mailRate := &flow.RateLimit{Limit: 1000, Per: time.Minute}
	w := worker.New(b, worker.Config{Queues: []worker.QueueConfig{{Name: "mail", RateLimit: mailRate}, {Name: "exports", Fair: true, FairWeights: map[string]int{"big": 3}}}, Concurrency: 3, PollInterval: 50 * time.Millisecond,
		Breakers: map[string]worker.BreakerConfig{"smtp": {}}})
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
	defer once.Do(func() { close(gate) })
	srv := serve(t, dashboard.Config{Backend: b, BearerToken: "s3cret-token"}) // every other setting its default

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1360, 900),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true))
	actx, cancel := chromedp.NewExecAllocator(ctx, opts...)
	defer cancel()
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	bctx, cancel = context.WithTimeout(bctx, 90*time.Second)
	defer cancel()
	var mu sync.Mutex
	var problems []string
	err = chromedp.Listen(bctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				problems = append(problems, "console."+string(ev.Type)+": "+strings.Join(args, " "))
			}
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			if d.Exception != nil {
				d.Text += " " + d.Exception.Description
			}
			problems = append(problems, "exception: "+d.Text)
		case *log.EventEntryAdded:
			if ev.Entry.Level == log.EntryLevelError || ev.Entry.Level == log.EntryLevelWarning {
				problems = append(problems, "log: "+ev.Entry.Text+" "+ev.Entry.URL)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}

	dir := os.Getenv("CONVEYOR_ARTIFACTS")
	if dir == "" {
		dir = os.TempDir()
	}
	type step = chromedp.Action[chromedp.Void]
	// poll waits for expr to be true, across the navigations a form's
	// submission or a redirect starts (a poll in the document being left
	// fails: it is tried again in the next one).
	poll := func(expr string) step {
		return step(func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			for {
				_, err := chromedp.Poll[chromedp.Void](expr)(ctx, tg)
				if err != nil && os.Getenv("DBG") != "" {
					txt, _ := chromedp.Evaluate[string](`location.href`)(ctx, tg)
					t.Logf("poll %s: %v at %s", expr, err, txt)
				}
				if err == nil || ctx.Err() != nil {
					return chromedp.Void{}, err
				}
			}
		})
	}
	// clean fails on the text "undefined" or "NaN" in the view, on a text
	// node that is a value printed raw ("null", "[object ...]": a child the
	// page forgot to skip or render), or a problem logged so far, then keeps
	// the view's screenshot.
	clean := func(name string) step {
		return step(func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			text, err := chromedp.Evaluate[string](`document.body.innerText`)(ctx, tg)
			if err != nil {
				return chromedp.Void{}, err
			}
			if strings.Contains(text, "undefined") || strings.Contains(text, "NaN") {
				t.Errorf("view %s shows undefined or NaN:\n%s", name, text)
			}
			raw, err := chromedp.Evaluate[[]string](`(() => {
				const out = [], w = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
				for (let n; (n = w.nextNode());) {
					const t = n.textContent.trim();
					if (/^(null)+$/.test(t) || t.includes("[object ")) out.push(t);
				}
				return out;
			})()`)(ctx, tg)
			if err != nil {
				return chromedp.Void{}, err
			}
			if len(raw) > 0 {
				t.Errorf("view %s prints raw values as text: %q", name, raw)
			}
			mu.Lock()
			for _, p := range problems {
				t.Errorf("view %s: %s", name, p)
			}
			problems = nil
			mu.Unlock()
			shot, err := chromedp.FullScreenshot(100)(ctx, tg) // 100: PNG
			if err != nil {
				return chromedp.Void{}, err
			}
			out := filepath.Join(dir, "dashboard-"+name+".png")
			t.Logf("screenshot: %s", out)
			return chromedp.Void{}, os.WriteFile(out, shot, 0o644)
		})
	}
	visit := func(hash, ready string) []step {
		return []step{chromedp.Navigate(srv.URL + "/" + hash), poll(ready)}
	}
	row := `#queues tr[data-queue="mail"]`
	count := func(state string) string {
		return `(document.querySelector('` + row + ` td[data-state="` + state + `"]') || {}).textContent`
	}
	actions := []step{
		chromedp.Navigate(srv.URL + "/"),
		poll(`location.pathname === "/login" && document.querySelector('input[name=token]') !== null`),
		clean("login"),
		chromedp.SetValue(`input[name=token]`, "wrong"),
		chromedp.Submit(`form.login`),
		poll(`document.getElementById("login-error") !== null`),
		step(func(context.Context, *chromedp.Target) (chromedp.Void, error) {
			mu.Lock()
			problems = nil // the 401 of the wrong token, logged by the browser on purpose
			mu.Unlock()
			return chromedp.Void{}, nil
		}),
		chromedp.SetValue(`input[name=token]`, "s3cret-token"),
		chromedp.Submit(`form.login`),
		// The overview: the queue's jobs running (held at the gate).
		poll(count("running") + ` === "3"`),
		step(func(context.Context, *chromedp.Target) (chromedp.Void, error) {
			once.Do(func() { close(gate) })
			return chromedp.Void{}, nil
		}),
		// It updates by itself as the worker finishes them.
		poll(count("running") + ` === "0" && ` + count("pending") + ` === "0"`),
		poll(`document.querySelectorAll('.chart[data-chart="throughput"] polyline').length > 0`),
		clean("overview"),
	}
	actions = append(actions, visit("#/queues", `document.querySelector('`+row+`') !== null`)...)
	actions = append(actions,
		chromedp.Evaluate[chromedp.Void](`window.confirm = () => true`), // the browser's own dialog
		chromedp.Click(row+` button[data-action="pause"]`),
		poll(`document.querySelector('`+row+` button[data-action="resume"]') !== null`),
		clean("queues"))
	actions = append(actions, visit("#/queues/mail/dead", `document.querySelector('#queue-jobs tr[data-job="`+dead.ID+`"]') !== null && document.querySelector('.chart[data-chart="depth"] polyline') !== null`)...)
	actions = append(actions, clean("queue"))
	actions = append(actions, visit("#/jobs", `document.querySelectorAll('#jobs tbody tr[data-job]').length > 5`)...)
	actions = append(actions, clean("jobs"),
		// Find the dead job by its arguments, open it, fix them, replay it.
		chromedp.SetValue(`#job-text`, "bounced"),
		chromedp.Click(`#search button[type=submit]`),
		poll(`document.querySelectorAll('#jobs tbody tr[data-job]').length === 1`),
		chromedp.Click(`#jobs tr[data-job="`+dead.ID+`"] a`),
		poll(`(document.querySelector("#detail-state") || {}).textContent === "dead"`),
		clean("job"),
		chromedp.Evaluate[chromedp.Void](`window.confirm = () => true`),
		chromedp.SetValue(`#detail-args`, `{"to": "fixed@example.com"}`),
		chromedp.Click(`#detail-replay`),
		poll(`document.querySelector("#detail-state").textContent === "pending"`))
	actions = append(actions, visit("#/schedules", `document.querySelector('#schedules tr[data-entry="weekly-digest"] button[data-action="pause"]') !== null`)...)
	actions = append(actions,
		chromedp.Evaluate[chromedp.Void](`window.confirm = () => true`),
		chromedp.Click(`#schedules tr[data-entry="weekly-digest"] button[data-action="pause"]`),
		poll(`document.querySelector('#schedules tr[data-entry="weekly-digest"] button[data-action="resume"]') !== null`),
		clean("schedules"))
	actions = append(actions, visit("#/workers", `(document.querySelector('#workers tr[data-worker="`+w.ID()+`"] .badge.fair') || {}).textContent === "fair big=3" && document.querySelector('#workers tr[data-worker="`+w.ID()+`"] a[href="#/queues/mail"]') !== null`)...)
	actions = append(actions, clean("workers"))
	limitRow := `#limits tr[data-limit="rate/queue:mail"]`
	actions = append(actions, visit("#/limits", `document.querySelector('`+limitRow+`') !== null`)...)
	actions = append(actions,
		chromedp.Evaluate[chromedp.Void](`window.prompt = () => "500"`), // the browser's own dialog
		chromedp.Click(limitRow+` button[data-action="override"]`),
		poll(`document.querySelector('`+limitRow+` [data-override="500"]') !== null`),
		clean("limits"))
	actions = append(actions, visit("#/dead", `document.querySelector('#dead-queues') !== null || document.querySelector('#dead td.empty') !== null`)...)
	actions = append(actions, clean("dead"))
	actions = append(actions, visit("#/workflows", `document.querySelector('#workflows tr[data-workflow="`+wf.ID+`"]') !== null`)...)
	actions = append(actions, clean("workflows"))
	actions = append(actions, visit("#/workflows/"+wf.ID, `document.querySelectorAll('#workflow-graph .step').length === 4 && document.querySelectorAll('#workflow-graph .edge').length === 3`)...)
	actions = append(actions, clean("workflow"))
	if err := chromedp.Do(bctx, actions...); err != nil {
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
	entries, err := scheduler.NewEntries(b)
	if err != nil {
		t.Fatal(err)
	}
	es, err := entries.List(ctx)
	if err != nil || len(es) != 1 || !es[0].Paused {
		t.Fatalf("the click did not pause the entry: %+v, %v", es, err)
	}
	ovs, err := flow.Overrides(ctx, b)
	if err != nil || len(ovs) != 1 || ovs[0].Kind != flow.KindRate || ovs[0].Name != "queue:mail" || ovs[0].Limit != 500 {
		t.Fatalf("the page's change did not set the override: %+v, %v", ovs, err)
	}
}

type mailArgs struct {
	To string `json:"to"`
}

var sendMail = queue.NewTask[mailArgs, queue.None]("mail.send", queue.TaskOptions{Queue: "mail", Breaker: "smtp"})

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
