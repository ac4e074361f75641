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

// runDashboard serves the dashboard's API until ctx ends (SIGINT/SIGTERM).
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
	h, err := dashboard.New(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(out, "dashboard API on http://%s/api/queues (health: /healthz, /readyz)\n", ln.Addr())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	}
}
