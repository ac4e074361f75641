// Command worker is an app's own worker binary: its tasks registered, OS
// signals turned into a graceful drain.
package main

import (
	"context"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/conveyorhq/conveyor/backends/sqlitebackend"
	"github.com/conveyorhq/conveyor/examples/app/tasks"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	path := os.Getenv("CONVEYOR_DB")
	if path == "" {
		path = "app.db"
	}
	b, err := sqlitebackend.Open(ctx, sqlitebackend.Config{Path: path})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()

	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	w := worker.New(b, worker.Config{
		Queues:      []worker.QueueConfig{{Name: "email", Concurrency: 20}},
		Concurrency: 20,
		Breakers:    map[string]worker.BreakerConfig{"smtp": {ConsecutiveFailures: 10, OpenFor: time.Minute}},
		Logger:      logger,
		Middleware:  []worker.Middleware{worker.Logging(logger)},
	})
	worker.Register(w, tasks.SendWelcome, func(ctx context.Context, a tasks.WelcomeArgs) (queue.None, error) {
		logger.InfoContext(ctx, "sending welcome email", "user", a.UserID, "to", a.Email)
		return queue.None{}, nil // call the SMTP server here; return its error to retry
	})
	if err := w.Start(context.WithoutCancel(ctx)); err != nil {
		log.Fatal(err)
	}
	<-ctx.Done() // SIGINT or SIGTERM
	drain, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.Stop(drain); err != nil {
		logger.Warn("drain incomplete; unfinished jobs were released", "err", err)
	}
}
