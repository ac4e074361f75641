// Package readme compiles the README's Go snippets: each ```go block of
// README.md appears, line for line, in a file of this module or of its
// tasks and worker packages (TestSnippetsAreCompiled checks), and the
// module builds in CI, so a snippet that does not compile fails the build.
package readme

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/sqlitebackend"
	"github.com/conveyorhq/conveyor/dashboard"
	"github.com/conveyorhq/conveyor/examples/readme/tasks"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/scheduler"
	"github.com/conveyorhq/conveyor/worker"
	"github.com/conveyorhq/conveyor/workflow"
)

func web(ctx context.Context) error {
	b, err := sqlitebackend.Open(ctx, sqlitebackend.Config{Path: "app.db"})
	if err != nil {
		return err
	}
	// or on PostgreSQL (schema from `conveyor migrate`, or Config.Migrate):
	// b, err := pgbackend.New(ctx, pgbackend.Config{Pool: pool})
	// or on Redis (a *redis.Client or *redis.ClusterClient you configure):
	// b, err := redisbackend.New(ctx, redisbackend.Config{Client: redis.NewClient(&redis.Options{Addr: "localhost:6379"})})
	// or on RabbitMQ, with a store for status by ID, cancel, unique keys and exact bounds:
	// b, err := amqpbackend.OpenStored(ctx, amqpbackend.Config{URL: "amqp://guest:guest@localhost:5672/", Store: pg})
	client := queue.NewClient(b, queue.Config{Queues: []*queue.Queue{tasks.Email}})

	http.HandleFunc("POST /signup", func(w http.ResponseWriter, r *http.Request) {
		h, err := tasks.SendWelcome.Enqueue(r.Context(), client, tasks.WelcomeArgs{UserID: 7, Email: "a@example.com"}, nil)
		switch {
		case errors.Is(err, queue.ErrQueueFull):
			http.Error(w, "busy, try again shortly", http.StatusServiceUnavailable)
		case errors.Is(err, queue.ErrOutcomeUnknown):
			// The backend went away mid-call: the job may exist. A retry with
			// the same EnqueueOptions.ID cannot make a second one.
			http.Error(w, "could not confirm the enqueue", http.StatusServiceUnavailable)
		case err != nil:
			http.Error(w, "could not enqueue", http.StatusInternalServerError)
		default:
			fmt.Fprintln(w, h.ID) // h.Status(ctx), h.Result(ctx), h.Wait(ctx) later
		}
	})
	return nil
}

func work(ctx, drainCtx context.Context, b backends.Backend, sigterm <-chan os.Signal) error {
	w := worker.New(b, worker.Config{
		Queues:      []worker.QueueConfig{{Name: "email"}},
		Concurrency: 20,
		Breakers:    map[string]worker.BreakerConfig{"smtp": {ConsecutiveFailures: 10, OpenFor: time.Minute}},
	})
	worker.Register(w, tasks.SendWelcome, func(ctx context.Context, a tasks.WelcomeArgs) (queue.None, error) {
		return queue.None{}, sendMail(ctx, a) // an error retries; retry.Permanent(err) dead-letters
	})
	if err := w.Start(ctx); err != nil {
		return err
	}
	<-sigterm
	w.Stop(drainCtx) // finish running jobs until drainCtx ends, release the rest
	return nil
}

func schedule(ctx context.Context, client *queue.Client) error {
	s, err := scheduler.New(client, scheduler.Config{Tasks: []queue.Definition{tasks.SendDigest}})
	if err != nil {
		return err
	}
	entry, err := scheduler.NewEntry("weekday-digest", "CRON_TZ=Europe/Paris 0 8 * * 1-5", tasks.SendDigest, tasks.DigestArgs{})
	if err != nil {
		return err // an invalid schedule fails here
	}
	entry.Misfire = scheduler.FireOnce // after downtime, one digest rather than none (Skip) or all (CatchUp)
	if err := s.Register(entry); err != nil {
		return err
	}
	if err := s.Start(ctx); err != nil {
		return err
	}
	defer s.Stop(ctx)
	return nil
}

func mountDashboard(b backends.Backend, mux *http.ServeMux) error {
	dash, err := dashboard.New(dashboard.Config{Backend: b, BearerToken: os.Getenv("CONVEYOR_DASHBOARD_TOKEN")})
	if err != nil {
		return err
	}
	mux.Handle("/conveyor/", http.StripPrefix("/conveyor", dash))
	return nil
}

func album(ctx context.Context, client *queue.Client, urls []string, to, albumID string) (workflow.Ref, error) {
	var resizes []workflow.Node
	for i, u := range urls {
		resizes = append(resizes, workflow.Task(fmt.Sprint("resize-", i), tasks.Resize, tasks.ResizeArgs{URL: u, Width: 640}, nil))
	}
	ref, err := workflow.Enqueue(ctx, client, workflow.Chain(
		workflow.Chord(workflow.Task("zip", tasks.Zip, tasks.ZipArgs{Name: "album"}, nil), resizes...),
		workflow.Task("email", tasks.SendLink, tasks.LinkArgs{To: to}, nil),
	), &workflow.Options{ID: "album-" + albumID})
	return ref, err
}

func keyed(ctx context.Context, client *queue.Client) (err error) {
	_, err = tasks.SyncStore.Enqueue(ctx, client, tasks.SyncArgs{Store: "store-42"}, &queue.EnqueueOptions{Key: "store-42"})
	return err
}

func debounced(ctx context.Context, client *queue.Client) (err error) {
	// A burst of webhooks for one store makes one sync, 5s after the last
	// of them, and one a minute at least while they keep coming.
	_, err = tasks.SyncStore.Enqueue(ctx, client, tasks.SyncArgs{Store: "store-42"}, &queue.EnqueueOptions{
		Key:      "store-42",
		Debounce: &queue.Debounce{Key: "store-42", Window: 5 * time.Second, MaxWait: time.Minute},
	})
	return err
}

func longJob(w *worker.Worker) {
	worker.Register(w, tasks.Export, func(ctx context.Context, a tasks.ExportArgs) (int, error) {
		log := worker.Logger(ctx) // lines kept with the job, and in the worker's log
		err := worker.Iterate(ctx, func(ctx context.Context, page int) (int, bool, error) {
			if err := exportPage(ctx, a.ReportID, page); err != nil {
				return page, false, err // retried from this page, not from the first
			}
			log.Info("page exported", "page", page)
			_ = worker.Progress(ctx, job.Progress{Fraction: float64(page+1) / float64(a.Pages),
				Message: fmt.Sprintf("page %d of %d", page+1, a.Pages)})
			return page + 1, page+1 == a.Pages, nil
		})
		return a.Pages, err
	})
}

func exportPage(context.Context, string, int) error { return nil }

func sendMail(context.Context, tasks.WelcomeArgs) error { return errors.New("no SMTP server here") }
