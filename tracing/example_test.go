package tracing_test

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/conveyorhq/conveyor/backends/membackend"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/tracing"
	"github.com/conveyorhq/conveyor/worker"
)

// The enqueue and the run are spans of one trace: the job's headers carry
// the trace context from the producer to the worker. An app passes its own
// TracerProvider (an OTLP exporter, say); this one records in memory.
func ExampleNew() {
	ctx := context.Background()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	tr := tracing.New(tracing.Config{TracerProvider: tp, Propagator: propagation.TraceContext{}})

	b := membackend.New(membackend.Config{})
	ping := queue.NewTask[string, queue.None]("net.ping", queue.TaskOptions{})
	c := queue.NewClient(b, queue.Config{Tracer: tr})
	w := worker.New(b, worker.Config{Middleware: []worker.Middleware{tr.Middleware()}})
	worker.Register(w, ping, func(context.Context, string) (queue.None, error) { return queue.None{}, nil })

	_, _ = ping.Enqueue(ctx, c, "example.com", nil)
	_, _ = w.WorkDue(ctx)
	spans := exp.GetSpans()
	for _, s := range spans {
		fmt.Println(s.Name, s.SpanKind)
	}
	fmt.Println("one trace:", spans[0].SpanContext.TraceID() == spans[1].SpanContext.TraceID())
	// Output:
	// conveyor.enqueue producer
	// conveyor.run net.ping consumer
	// one trace: true
}
