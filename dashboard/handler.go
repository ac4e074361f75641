package dashboard

import (
	"context"
	"embed"
	"errors"
	"io/fs"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ui holds the web page: a static HTML file and a script that reads the
// JSON API, so no build step stands between the module and the page.
//
//go:embed ui
var ui embed.FS

// page serves the web page's files.
var page = func() http.Handler {
	sub, err := fs.Sub(ui, "ui")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return http.FileServerFS(sub)
}()

// csp is the pages' Content-Security-Policy: their own scripts, styles
// and API only, nothing inline, no framing.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"

func withCSP(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", csp)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		h.ServeHTTP(w, r)
	})
}

// New returns the dashboard's handler. Its routes, relative to where it is
// mounted:
//
//	GET  /                             the web page (overview, queues, jobs, schedules,
//	                                   workers, limits, dead letters; actions ask for
//	                                   confirmation)
//	GET  /assets/...                   its scripts and styles
//	GET  /login                        the sign-in form (with BasicAuth or BearerToken)
//	POST /login                        user and password, or token: a session cookie
//	POST /logout                       ends the session
//	GET  /healthz                      200 while the process serves
//	GET  /readyz                       200 once a backend round trip works, else 503
//	GET  /metrics                      Prometheus: jobs per queue and state, depth,
//	                                   paused, live workers, running jobs, breakers
//	GET  /api/session                  {"auth": signing in is needed, "read_only": ...}
//	GET  /api/queues                   counts per queue and state, depth, paused
//	GET  /api/history?range=&queue=    per minute (per hour for 7d) over range 1h (default),
//	                                   6h, 24h or 7d: jobs done and dead and depth, per
//	                                   queue (or one), the workers' pickup latency p50/p99;
//	                                   kept in the backend's KVStore by every dashboard's
//	                                   Sampler
//	GET  /api/jobs?queue=&state=&limit=&cursor=&q=&sort=
//	                                   a page of jobs (queue empty: all) of one state, in
//	                                   the backend's order with a cursor; without state,
//	                                   the first page of every state, newest first; with
//	                                   q, the jobs among the first 1000 (per state) whose
//	                                   ID, task name or arguments contain q (no cursor);
//	                                   sort (created_at, run_at, finished_at, attempts,
//	                                   task, queue or state; "-" first: descending) orders
//	                                   the page
//	GET  /api/jobs/{id}                one job: args, headers, attempts, result, times
//	GET  /api/workers                  live worker processes
//	POST /api/queues/{queue}/pause     pause a queue cluster-wide
//	POST /api/queues/{queue}/resume    resume it
//	POST /api/queues/{queue}/replay    replay every dead job of the queue
//	POST /api/jobs/{id}/cancel         cancel a waiting or running job
//	POST /api/jobs/{id}/replay         replay a dead or cancelled job; a JSON
//	                                   body {"args": ...} replaces its arguments
//	POST /api/jobs/{id}/delete         delete a job that is not running
//	POST /api/jobs/bulk                {"action": "replay"|"delete"|"cancel", "ids": [...]}:
//	                                   how many changed, and why the others did not
//	POST /api/queues/{queue}/purge?state=
//	                                   delete every done, dead or cancelled job of the queue
//	GET  /api/workflows?state=         the kept workflows (of those states: running,
//	                                   failed, ...), newest first, with step counts
//	GET  /api/workflows/{id}           a workflow: its state, each step's state, job,
//	                                   dependencies and times
//	POST /api/workflows/{id}/cancel    cancel a workflow: running steps stop, pending
//	                                   ones never start
//	GET  /api/schedules                periodic entries: schedule, task, last and next tick
//	POST /api/schedules/{name}/pause   pause an entry (resume: .../resume)
//	GET  /api/limits                   flow limits in force: figures, use and jobs held back,
//	                                   summed over the live workers, with any override
//	POST /api/limits/{kind}/{name}/override
//	                                   {"limit": n, "per_seconds": s, "burst": n}: change a
//	                                   limit on every worker (flow.SetOverride)
//	POST /api/limits/{kind}/{name}/reset
//	                                   remove the override: the declared figures again
//
// Errors are {"error": "..."} with a status that says why: 400 bad input,
// 401 no credentials, 403 read-only or cross-site, 404 no such job, 409 the
// job's state forbids it, 501 the backend lacks the capability.
func New(cfg Config) (http.Handler, error) {
	if cfg.Backend == nil {
		return nil, errors.New("dashboard: Config.Backend is required")
	}
	cfg.defaults()
	a := &api{cfg: cfg}
	if s, err := NewSampler(cfg.Backend, cfg.Logger); err == nil {
		// For the life of the backend: it ends when the backend is closed.
		go func() { _ = s.Run(context.Background(), cfg.HistoryEvery) }()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", a.healthz)
	mux.HandleFunc("GET /readyz", a.readyz)
	reg := prometheus.NewRegistry()
	reg.MustRegister(&collector{b: cfg.Backend, ttl: cfg.MetricsTTL})
	api := http.NewServeMux()
	api.Handle("GET /{$}", withCSP(page))
	api.Handle("GET /assets/", withCSP(page))
	api.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	api.HandleFunc("GET /api/session", a.session)
	api.HandleFunc("GET /api/queues", a.queues)
	api.HandleFunc("GET /api/history", a.historyView)
	api.HandleFunc("GET /api/jobs", a.jobs)
	api.HandleFunc("GET /api/jobs/{id}", a.job)
	api.HandleFunc("GET /api/workers", a.workers)
	api.HandleFunc("POST /api/queues/{queue}/pause", a.pause)
	api.HandleFunc("POST /api/queues/{queue}/resume", a.resume)
	api.HandleFunc("POST /api/queues/{queue}/replay", a.replayQueue)
	api.HandleFunc("POST /api/jobs/{id}/cancel", a.cancel)
	api.HandleFunc("POST /api/jobs/{id}/replay", a.replayJob)
	api.HandleFunc("POST /api/jobs/{id}/delete", a.deleteJob)
	api.HandleFunc("POST /api/jobs/bulk", a.bulk)
	api.HandleFunc("POST /api/queues/{queue}/purge", a.purge)
	api.HandleFunc("GET /api/workflows", a.workflows)
	api.HandleFunc("GET /api/workflows/{id}", a.workflow)
	api.HandleFunc("POST /api/workflows/{id}/cancel", a.cancelWorkflow)
	api.HandleFunc("GET /api/schedules", a.schedules)
	api.HandleFunc("POST /api/schedules/{name}/pause", a.pauseSchedule)
	api.HandleFunc("POST /api/schedules/{name}/resume", a.pauseSchedule)
	api.HandleFunc("GET /api/limits", a.limits)
	api.HandleFunc("POST /api/limits/{kind}/{name}/override", a.setOverride)
	api.HandleFunc("POST /api/limits/{kind}/{name}/reset", a.resetOverride)
	var h http.Handler = a.readOnly(api)
	authed := http.NewServeMux()
	authed.HandleFunc("POST /logout", a.logout)
	authed.Handle("/", h)
	cop := http.NewCrossOriginProtection()
	mux.Handle("GET /login", withCSP(http.HandlerFunc(a.loginPage)))
	mux.Handle("POST /login", cop.Handler(http.HandlerFunc(a.login)))
	mux.Handle("GET /assets/", withCSP(page)) // the login page's style, before signing in
	mux.Handle("/", cop.Handler(a.authenticate(authed)))
	return jsonErrors(mux), nil
}

// readOnly refuses state-changing requests in read-only mode.
func (a *api) readOnly(next http.Handler) http.Handler {
	if !a.cfg.ReadOnly {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			writeError(w, http.StatusForbidden, errors.New("the dashboard is read-only"))
			return
		}
		next.ServeHTTP(w, r)
	})
}
