package daemon

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/open"
)

// readyTimeout bounds the backend round trip of /readyz and Ping.
const readyTimeout = 2 * time.Second

// roundTrip asks the backend something cheap that needs the server: the
// counts of a queue nobody uses, or an empty reserve where the backend
// cannot count.
func roundTrip(ctx context.Context, b backends.Backend) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	var err error
	if in, ok := b.(backends.Inspector); ok {
		_, err = in.QueueStats(ctx, backends.QueueStatsParams{Queue: "conveyor.readyz"})
	} else {
		_, err = b.Reserve(ctx, backends.ReserveParams{Queue: "conveyor.readyz", Limit: 1, Lease: time.Second})
	}
	return err
}

// Ping opens the backend that rawURL names, makes one round trip through
// it and closes it: `conveyor ping URL`, for external checks. The error
// names the URL, its password redacted.
func Ping(ctx context.Context, rawURL string) error {
	b, err := openBackend(ctx, rawURL)
	if err != nil {
		return err
	}
	defer b.Close()
	if err := roundTrip(ctx, b); err != nil {
		return fmt.Errorf("backend %s: %w", redact(rawURL), err)
	}
	return nil
}

// openBackend opens a backend and makes sure it answers, so that a
// daemon pointed at a server that is down fails at start with its URL.
func openBackend(ctx context.Context, rawURL string) (backends.Backend, error) {
	b, err := open.URL(ctx, rawURL, open.Options{})
	if err != nil {
		return nil, fmt.Errorf("backend %s: %w", redact(rawURL), err)
	}
	if err := roundTrip(ctx, b); err != nil {
		_ = b.Close()
		return nil, fmt.Errorf("backend %s: %w", redact(rawURL), err)
	}
	return b, nil
}

// redact hides a URL's password; a path stays as it is.
func redact(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		return u.Redacted()
	}
	return raw
}

// healthServer serves /healthz, /readyz and, with a registry, /metrics.
// ready returns nil when the process takes work.
func healthServer(addr string, ready func(context.Context) error, reg *prometheus.Registry, api http.Handler) (string, func(), error) {
	mux := http.NewServeMux()
	if api != nil {
		mux.Handle("/v1/", api)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := ready(r.Context()); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	if reg != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("%w: http %s: %w", ErrConfig, addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln) // ErrServerClosed, after Shutdown

	}()
	return ln.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}, nil
}
