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
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(out, "dashboard on http://%s/ (API: /api/queues, metrics: /metrics, health: /healthz, /readyz)\n", ln.Addr())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	return func() error {
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
