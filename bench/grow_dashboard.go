package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/dashboard"
	"github.com/conveyorhq/conveyor/queue"
)

// dashboardRequests is how often each page is asked for per measurement;
// its server time is the median.
const dashboardRequests = 5

// dashboardPages are the reads a dashboard's browser makes, and a
// Prometheus scrape; {id} is a job of the backlog.
var dashboardPages = []string{"/api/queues", "/api/jobs", "/api/jobs?state=pending", "/api/jobs?state=done",
	"/api/jobs/{id}", "/api/workers", "/api/history", "/metrics"}

// growDashboard fills a backend with dashJobs waiting jobs and times each
// page and /metrics in the handler (server time, no network), then drains
// dashDrain of the jobs alone and again while every page is requested
// once a second, as an open dashboard and a scraper do.
func growDashboard(ctx context.Context, cfg config, g *growConfig, run []target) ([]*growResult, error) {
	pages := newGrowResult("dashboard", dashboardPages,
		fmt.Sprintf("server time with %s jobs, ms (median of %d requests)", sizeLabel(g.dashJobs, ""), dashboardRequests))
	pages.apart = true
	c := cfg.concurrency[0]
	burn := newGrowResult("dashboard-burn-down", []string{"alone", "beside the dashboard"},
		fmt.Sprintf("burn-down of %d of %d jobs, jobs/s (one worker, c=%d)", g.dashDrain, g.dashJobs, c))
	for round := range cfg.rounds {
		for _, t := range run {
			if t.open == nil {
				continue
			}
			if err := dashboardRun(ctx, cfg, g, t, round, pages, burn); err != nil {
				return nil, fmt.Errorf("%s: %w", t.name, err)
			}
		}
	}
	return []*growResult{pages, burn}, nil
}

func dashboardRun(ctx context.Context, cfg config, g *growConfig, t target, round int, pages, burn *growResult) error {
	b, done, err := t.open(ctx, cfg)
	if err != nil {
		return err
	}
	defer done()
	if _, ok := b.(backends.Inspector); !ok {
		return nil // no dashboard on it
	}
	ref, err := noop.Enqueue(ctx, queue.NewClient(b, queue.Config{}), noopArgs{}, nil)
	if err != nil {
		return err
	}
	if _, err := enqueueBatch(ctx, b, g.dashJobs-1, cfg.batch, noopArgs{}); err != nil {
		return err
	}
	h, err := dashboard.New(dashboard.Config{Backend: b, MetricsTTL: time.Nanosecond})
	if err != nil {
		return err
	}
	get := func(page string) (time.Duration, error) {
		if page == "/api/jobs/{id}" {
			page = "/api/jobs/" + ref.ID
		}
		rec := httptest.NewRecorder()
		start := time.Now()
		h.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, http.MethodGet, page, nil))
		took := time.Since(start)
		if rec.Code != http.StatusOK {
			return took, fmt.Errorf("GET %s: %d %s", page, rec.Code, rec.Body.String())
		}
		return took, nil
	}
	for i, page := range dashboardPages {
		var took []time.Duration
		for range dashboardRequests {
			d, err := get(page)
			if err != nil {
				fmt.Fprintf(os.Stderr, "  dashboard %s: %v\n", t.name, err)
				break
			}
			took = append(took, d)
		}
		if len(took) > 0 {
			slices.Sort(took)
			pages.add(0, t.name, "", i, float64(took[len(took)/2])/float64(time.Millisecond))
		}
	}
	alone, err := burnDown(ctx, b, g.dashDrain, cfg.concurrency[0])
	if err != nil {
		return err
	}
	polling, stop := context.WithCancel(ctx)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			for _, page := range dashboardPages {
				_, _ = get(page) // a failing page was reported above
			}
			select {
			case <-polling.Done():
				return
			case <-tick.C:
			}
		}
	}()
	beside, err := burnDown(ctx, b, g.dashDrain, cfg.concurrency[0])
	stop()
	<-stopped
	if err != nil {
		return err
	}
	burn.add(0, t.name, "", 0, alone)
	burn.add(0, t.name, "", 1, beside)
	progress("dashboard", t.name, "", round, "burn-down beside/alone", beside/alone)
	return nil
}
