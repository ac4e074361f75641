package tracing_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/conveyorhq/conveyor/backends/sqlitebackend"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/retry"
	"github.com/conveyorhq/conveyor/tracing"
	"github.com/conveyorhq/conveyor/worker"
)

type args struct{ Fail bool }

var task = queue.NewTask[args, queue.None]("t.traced", queue.TaskOptions{Retry: &retry.Policy{Stop: retry.StopAfterAttempt(1)}})

// A job enqueued inside a request's span runs in a span of the same trace,
// under the enqueue span; a failed run is marked as an error.
func TestTraceTravelsFromEnqueueToRun(t *testing.T) {
	ctx := context.Background()
	b, err := sqlitebackend.Open(ctx, sqlitebackend.Config{Path: filepath.Join(t.TempDir(), "t.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	tr := tracing.New(tracing.Config{TracerProvider: tp, Propagator: propagation.TraceContext{}})

	c := queue.NewClient(b, queue.Config{Tracer: tr})
	reqCtx, req := tp.Tracer("web").Start(ctx, "POST /signup")
	ok, err := task.Enqueue(reqCtx, c, args{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	bad, err := task.Enqueue(reqCtx, c, args{Fail: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.End()

	done := make(chan struct{}, 2)
	w := worker.New(b, worker.Config{Middleware: []worker.Middleware{tr.Middleware()}})
	worker.Register(w, task, func(_ context.Context, a args) (queue.None, error) {
		defer func() { done <- struct{}{} }()
		if a.Fail {
			return queue.None{}, errors.New("downstream refused")
		}
		return queue.None{}, nil
	})
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	<-done
	<-done
	if err := w.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	spans := exp.GetSpans()
	byName := map[string][]tracetest.SpanStub{}
	for _, s := range spans {
		byName[s.Name] = append(byName[s.Name], s)
	}
	enq, runs := byName["conveyor.enqueue"], byName["conveyor.run t.traced"]
	if len(byName["POST /signup"]) != 1 || len(enq) != 2 || len(runs) != 2 {
		t.Fatalf("spans: %v", names(spans))
	}
	traceID := req.SpanContext().TraceID()
	for _, s := range enq {
		if s.SpanContext.TraceID() != traceID || s.Parent.SpanID() != req.SpanContext().SpanID() || s.SpanKind != trace.SpanKindProducer {
			t.Fatalf("enqueue span %+v is not the request's child", s.SpanContext)
		}
	}
	parents := map[string]bool{enq[0].SpanContext.SpanID().String(): true, enq[1].SpanContext.SpanID().String(): true}
	failed := 0
	for _, s := range runs {
		if s.SpanContext.TraceID() != traceID || !parents[s.Parent.SpanID().String()] || s.SpanKind != trace.SpanKindConsumer {
			t.Fatalf("run span %+v does not continue an enqueue span", s.SpanContext)
		}
		if s.Status.Code == codes.Error {
			failed++
		}
	}
	if failed != 1 {
		t.Fatalf("%d run spans marked as errors, want 1 (job %s failed, %s did not)", failed, bad.ID, ok.ID)
	}
}

func names(spans tracetest.SpanStubs) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}
