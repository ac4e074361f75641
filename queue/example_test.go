package queue_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/conveyorhq/conveyor/backends/membackend"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

// A library defines its tasks once, without choosing a backend.
type ResizeArgs struct {
	URL   string `json:"url"`
	Width int    `json:"width"`
}

type ResizeResult struct {
	Thumb string `json:"thumb"`
}

var Resize = queue.NewTask[ResizeArgs, ResizeResult]("images.resize", queue.TaskOptions{Queue: "images"})

// The inline mode runs each job at enqueue, like Django's immediate backend:
// handy in tests of code that enqueues.
func Example_inline() {
	b := membackend.New(membackend.Config{})
	w := worker.New(b, worker.Config{Queues: []worker.QueueConfig{{Name: "images"}}})
	worker.Register(w, Resize, func(ctx context.Context, a ResizeArgs) (ResizeResult, error) {
		return ResizeResult{Thumb: fmt.Sprintf("%s?w=%d", a.URL, a.Width)}, nil
	})
	client := queue.NewClient(b, queue.Config{Inline: w})

	ctx := context.Background()
	h, err := Resize.Enqueue(ctx, client, ResizeArgs{URL: "/cat.png", Width: 64}, nil)
	if err != nil {
		panic(err)
	}
	res, err := h.Result(ctx) // already done
	fmt.Println(res.Thumb, err)
	// Output: /cat.png?w=64 <nil>
}

// A web handler enqueues and turns a full queue into 503, so overload pushes
// back on the web tier instead of burying the backend.
func Example_webHandler() {
	client := queue.NewClient(membackend.New(membackend.Config{}), queue.Config{
		Queues: []*queue.Queue{queue.NewQueue("images", queue.QueueOptions{MaxDepth: 1})},
	})
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, err := Resize.Enqueue(r.Context(), client, ResizeArgs{URL: r.URL.Query().Get("url"), Width: 64}, nil)
		switch {
		case errors.Is(err, queue.ErrQueueFull):
			http.Error(w, "busy, try again later", http.StatusServiceUnavailable)
		case err != nil:
			http.Error(w, "could not enqueue", http.StatusInternalServerError)
		default:
			w.WriteHeader(http.StatusAccepted)
			fmt.Fprint(w, "job ", len(h.ID) > 0)
		}
	})
	for range 2 {
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, httptest.NewRequest("POST", "/resize?url=/cat.png", nil))
		fmt.Println(rec.Code, strings.TrimSpace(rec.Body.String()))
	}
	// Output:
	// 202 job true
	// 503 busy, try again later
}

// A job's ID is all a later request needs: store it (in the user's row, a
// URL), then read the result through the task, typed, from any process.
func ExampleTask_Handle() {
	ctx := context.Background()
	b := membackend.New(membackend.Config{})
	client := queue.NewClient(b, queue.Config{})
	h, err := Resize.Enqueue(ctx, client, ResizeArgs{URL: "/dog.png", Width: 32}, nil)
	if err != nil {
		panic(err)
	}
	stored := h.ID // e.g. saved with the upload

	// Later, elsewhere: not finished yet.
	_, err = Resize.Handle(client, stored).Result(ctx)
	fmt.Println(errors.Is(err, queue.ErrNotFinished))

	w := worker.New(b, worker.Config{Queues: []worker.QueueConfig{{Name: "images"}}})
	worker.Register(w, Resize, func(ctx context.Context, a ResizeArgs) (ResizeResult, error) {
		return ResizeResult{Thumb: fmt.Sprintf("%s?w=%d", a.URL, a.Width)}, nil
	})
	_, _ = w.WorkDue(ctx)
	res, err := Resize.Handle(client, stored).Result(ctx)
	fmt.Println(res.Thumb, err)
	// Output:
	// true
	// /dog.png?w=32 <nil>
}
