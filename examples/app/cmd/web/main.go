// Command web is an app's web process: it enqueues from an HTTP handler and
// answers 503 when the email queue is full, so overload pushes back on
// clients instead of burying the backend. It mounts the Conveyor dashboard
// under /conveyor/, behind a bearer token (sign in on its login page), with
// its own enqueue metrics; without a token, only on a loopback address.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/conveyorhq/conveyor/backends/sqlitebackend"
	"github.com/conveyorhq/conveyor/dashboard"
	"github.com/conveyorhq/conveyor/examples/app/tasks"
	"github.com/conveyorhq/conveyor/metrics"
	"github.com/conveyorhq/conveyor/queue"
)

func main() {
	b, err := sqlitebackend.Open(context.Background(), sqlitebackend.Config{Path: env("CONVEYOR_DB", "app.db")})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	client := queue.NewClient(b, queue.Config{Queues: []*queue.Queue{tasks.Email}, Observer: metrics.New(prometheus.DefaultRegisterer)})
	addr := env("ADDR", "127.0.0.1:8080")
	token := os.Getenv("CONVEYOR_DASHBOARD_TOKEN")
	// The dashboard steers jobs: without a token it is served only when
	// this process listens on loopback, and says so.
	switch {
	case token == "" && !loopback(addr):
		log.Printf("dashboard NOT served: CONVEYOR_DASHBOARD_TOKEN is unset and %s is not loopback; set the token to serve it", addr)
	default:
		if token == "" {
			log.Printf("dashboard at http://%s/conveyor/ WITHOUT authentication (loopback only); set CONVEYOR_DASHBOARD_TOKEN before listening elsewhere", addr)
		}
		dash, err := dashboard.New(dashboard.Config{Backend: b, BearerToken: token})
		if err != nil {
			log.Fatal(err)
		}
		http.Handle("/conveyor/", http.StripPrefix("/conveyor", dash))
	}
	http.Handle("GET /metrics", promhttp.Handler()) // this process's enqueue counters
	http.HandleFunc("POST /signup", func(w http.ResponseWriter, r *http.Request) {
		id, _ := strconv.Atoi(r.FormValue("user_id"))
		h, err := tasks.SendWelcome.Enqueue(r.Context(), client, tasks.WelcomeArgs{UserID: id, Email: r.FormValue("email")}, nil)
		switch {
		case errors.Is(err, queue.ErrQueueFull):
			w.Header().Set("Retry-After", "30")
			http.Error(w, "busy, try again shortly", http.StatusServiceUnavailable)
		case err != nil:
			http.Error(w, "could not enqueue", http.StatusInternalServerError)
		default:
			w.WriteHeader(http.StatusAccepted)
			fmt.Fprintln(w, h.ID)
		}
	})
	log.Fatal(http.ListenAndServe(addr, nil))
}

// loopback reports whether addr (host:port) listens on loopback only: an
// empty host or 0.0.0.0 is every interface.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
