package tracing

import (
	"context"
	"maps"
	"slices"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
	"github.com/conveyorhq/conveyor/worker"
)

// Config configures Tracing. Zero values mean the stated default.
type Config struct {
	// TracerProvider makes the spans. Default otel.GetTracerProvider().
	TracerProvider trace.TracerProvider
	// Propagator writes and reads the trace context in job headers.
	// Default otel.GetTextMapPropagator().
	Propagator propagation.TextMapPropagator
}

// Tracing is a queue.EnqueueTracer and a source of worker middleware.
type Tracing struct {
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
}

var _ queue.EnqueueTracer = (*Tracing)(nil)

// New returns a Tracing for cfg.
func New(cfg Config) *Tracing {
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = otel.GetTracerProvider()
	}
	if cfg.Propagator == nil {
		cfg.Propagator = otel.GetTextMapPropagator()
	}
	return &Tracing{tracer: cfg.TracerProvider.Tracer("github.com/conveyorhq/conveyor"), prop: cfg.Propagator}
}

// StartEnqueue implements queue.EnqueueTracer: a producer span for the
// batch, whose context each job carries in its headers.
func (t *Tracing) StartEnqueue(ctx context.Context, jobs []*backends.JobInsert) func(error) {
	queues := map[string]bool{}
	for _, ins := range jobs {
		queues[ins.Queue] = true
	}
	ctx, span := t.tracer.Start(ctx, "conveyor.enqueue", trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attribute.String("messaging.system", "conveyor"),
			attribute.StringSlice("messaging.destination.name", slices.Sorted(maps.Keys(queues))),
			attribute.Int("messaging.batch.message_count", len(jobs))))
	for _, ins := range jobs {
		h := maps.Clone(ins.Headers) // the Request's map may be enqueued again
		if h == nil {
			h = map[string]string{}
		}
		t.prop.Inject(ctx, propagation.MapCarrier(h))
		ins.Headers = h
	}
	return func(err error) {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
}

// Middleware returns worker middleware that runs each job in a consumer
// span continuing the trace its headers carry.
func (t *Tracing) Middleware() worker.Middleware {
	return func(next worker.HandlerFunc) worker.HandlerFunc {
		return func(ctx context.Context, j *job.Record) ([]byte, error) {
			ctx = t.prop.Extract(ctx, propagation.MapCarrier(j.Headers))
			ctx, span := t.tracer.Start(ctx, "conveyor.run "+j.Task, trace.WithSpanKind(trace.SpanKindConsumer),
				trace.WithAttributes(attribute.String("messaging.system", "conveyor"),
					attribute.String("messaging.destination.name", j.Queue),
					attribute.String("messaging.message.id", j.ID),
					attribute.Int("messaging.message.delivery_count", j.Deliveries)))
			defer span.End()
			res, err := next(ctx, j)
			if err != nil {
				span.RecordError(err)
				span.SetStatus(codes.Error, err.Error())
			}
			return res, err
		}
	}
}
