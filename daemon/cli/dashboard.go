package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/conveyorhq/conveyor/dashboard"
	"github.com/conveyorhq/conveyor/httpapi"
	"github.com/conveyorhq/conveyor/queue"
)

// dashboardCmd serves the dashboard until the context ends. It binds to
// loopback unless --addr says otherwise: the dashboard steers jobs, so it
// is off the network by default.
func (e *env) dashboardCmd() *cobra.Command {
	var addr, user string
	var readOnly bool
	c := &cobra.Command{
		Use:     "dashboard",
		Aliases: []string{"serve"},
		Short:   "serve the dashboard, its API, /metrics and the producer HTTP API",
		Long: `serve the dashboard, its API and /metrics until interrupted, and at /v1/ the
producer HTTP API (enqueue by task name, status, wait, cancel) for the app's tasks. With
--user, basic auth with the password from $CONVEYOR_DASHBOARD_PASSWORD; with
$CONVEYOR_DASHBOARD_TOKEN, bearer-token auth; both apply to the producer API too.`,
		Args: nArgs(0),
		RunE: func(c *cobra.Command, _ []string) error {
			cfg := dashboard.Config{ReadOnly: readOnly, BearerToken: os.Getenv("CONVEYOR_DASHBOARD_TOKEN")}
			if user != "" {
				pw := os.Getenv("CONVEYOR_DASHBOARD_PASSWORD")
				if pw == "" {
					return usageErr(c, "--user needs $CONVEYOR_DASHBOARD_PASSWORD")
				}
				cfg.BasicAuth = &dashboard.BasicAuth{User: user, Password: pw}
			}
			s, err := e.open(c.Context(), mustExist)
			if err != nil {
				return err
			}
			defer s.Close()
			cfg.Backend = s
			var api http.Handler
			if len(e.app.Tasks) > 0 {
				acfg := httpapi.Config{Client: queue.NewClient(s, queue.Config{}), Tasks: e.app.Tasks, BearerToken: cfg.BearerToken}
				if cfg.BasicAuth != nil {
					acfg.BasicAuth = &httpapi.BasicAuth{User: cfg.BasicAuth.User, Password: cfg.BasicAuth.Password}
				}
				if api, err = httpapi.New(acfg); err != nil {
					return err
				}
			}
			stop, err := serveDashboard(cfg, api, addr, c.OutOrStdout())
			if err != nil {
				return err
			}
			<-c.Context().Done()
			return stop()
		},
	}
	c.Flags().StringVar(&addr, "addr", "127.0.0.1:8080", "address to listen on")
	c.Flags().BoolVar(&readOnly, "read-only", false, "refuse every state-changing request")
	c.Flags().StringVar(&user, "user", "", "basic-auth user (its password from $CONVEYOR_DASHBOARD_PASSWORD)")
	return c
}

// ServeDashboard serves the dashboard for cfg on addr in the background
// and prints its URL to out; stop shuts it down gracefully. For commands
// of an app's own that show the dashboard while they run (as `conveyor
// demo` does).
func ServeDashboard(cfg dashboard.Config, addr string, out io.Writer) (stop func() error, err error) {
	return serveDashboard(cfg, nil, addr, out)
}

// serveDashboard is ServeDashboard with the producer API at /v1/ when api
// is set.
func serveDashboard(cfg dashboard.Config, api http.Handler, addr string, out io.Writer) (stop func() error, err error) {
	h, err := dashboard.New(cfg)
	if err != nil {
		return nil, err
	}
	if api != nil {
		mux := http.NewServeMux()
		mux.Handle("/", h)
		mux.Handle("/v1/", api)
		h = mux
	}
	at, stop, err := serveHTTP(h, addr)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "dashboard on http://%s/ (API: /api/queues, metrics: /metrics, health: /healthz, /readyz)\n", at)
	if api != nil {
		fmt.Fprintf(out, "producer API on http://%s/v1/ (its OpenAPI document: /v1/openapi.json)\n", at)
	}
	return stop, nil
}

// serveHTTP serves h on addr in the background and returns the address it
// listens on; stop shuts it down gracefully.
func serveHTTP(h http.Handler, addr string) (net.Addr, func() error, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	return ln.Addr(), func() error {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			return err
		}
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}, nil
}
