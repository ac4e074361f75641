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
		Short:   "serve the dashboard, its API and /metrics",
		Long: `serve the dashboard, its API and /metrics until interrupted. With --user, basic
auth with the password from $CONVEYOR_DASHBOARD_PASSWORD; with $CONVEYOR_DASHBOARD_TOKEN,
bearer-token auth.`,
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
			stop, err := ServeDashboard(cfg, addr, c.OutOrStdout())
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
	h, err := dashboard.New(cfg)
	if err != nil {
		return nil, err
	}
	at, stop, err := serveHTTP(h, addr)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "dashboard on http://%s/ (API: /api/queues, metrics: /metrics, health: /healthz, /readyz)\n", at)
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
