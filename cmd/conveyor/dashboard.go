package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/conveyorhq/conveyor/dashboard"
)

// runDashboard serves the dashboard until ctx ends (SIGINT/SIGTERM).
// It binds to loopback unless -addr says otherwise: the dashboard steers
// jobs, so it is off the network by default.
func runDashboard(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("dashboard", flag.ContinueOnError)
	db := dbFlag(fs)
	addr := fs.String("addr", "127.0.0.1:8080", "address to listen on")
	readOnly := fs.Bool("read-only", false, "refuse every state-changing request")
	user := fs.String("user", "", "basic-auth user (its password from $CONVEYOR_DASHBOARD_PASSWORD)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg := dashboard.Config{ReadOnly: *readOnly, BearerToken: os.Getenv("CONVEYOR_DASHBOARD_TOKEN")}
	if *user != "" {
		pw := os.Getenv("CONVEYOR_DASHBOARD_PASSWORD")
		if pw == "" {
			return errors.New("-user needs $CONVEYOR_DASHBOARD_PASSWORD")
		}
		cfg.BasicAuth = &dashboard.BasicAuth{User: *user, Password: pw}
	}
	b, err := openBackend(ctx, *db)
	if err != nil {
		return err
	}
	defer b.Close()
	cfg.Backend = b
	stop, err := serveDashboard(cfg, *addr, out)
	if err != nil {
		return err
	}
	<-ctx.Done()
	return stop()
}

// serveDashboard serves the dashboard for cfg on addr in the background
// and prints its URL; stop shuts it down gracefully.
func serveDashboard(cfg dashboard.Config, addr string, out io.Writer) (stop func() error, err error) {
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
