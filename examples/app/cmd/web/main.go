// Command web is an app's web process: it enqueues from an HTTP handler and
// answers 503 when the email queue is full, so overload pushes back on
// clients instead of burying the backend. It mounts the Conveyor dashboard
// under /conveyor/, behind a bearer token, with its own enqueue metrics.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
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
	dash, err := dashboard.New(dashboard.Config{Backend: b, BearerToken: os.Getenv("CONVEYOR_DASHBOARD_TOKEN")})
	if err != nil {
		log.Fatal(err)
	}
	http.Handle("/conveyor/", http.StripPrefix("/conveyor", dash))
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
	log.Fatal(http.ListenAndServe(env("ADDR", "127.0.0.1:8080"), nil))
}

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
