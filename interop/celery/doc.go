// Package celery speaks Celery's wire format, so Go and Python services
// share one task queue: a Broker is a Conveyor backend (backends.Backend)
// over a Celery broker, RabbitMQ or Redis, in Celery's message protocol
// version 2 with JSON serialization.
//
// On a Broker, the ordinary worker (worker.New) runs Go handlers on tasks
// a Python Celery client sent (app.send_task, .delay()), and the ordinary
// client (queue.NewClient) enqueues tasks an unmodified Celery worker runs.
// Results are written in Celery's result backend layout (the Redis key
// celery-task-meta-<id>, and the RPC reply a client asked for with
// reply_to), so the Python side's AsyncResult.get returns the Go result;
// GetJob reads the same keys, so a Go client reads a Celery worker's
// results through queue.Handle.
//
// A Celery message becomes a job.Record whose Task is the Celery task name
// and whose Payload is the JSON object {"args": [...], "kwargs": {...}}:
// a handler takes a Call[K] (or any type of that shape). The message's
// retries, eta (countdown), expires and timelimit are honoured. A message
// this package cannot take (protocol 1, pickle or another content type,
// an unknown content-encoding, a body that is not [args, kwargs, embed]) is
// moved to the queue's dead-letter queue with the reason in the
// x-conveyor-reason header and never reaches a handler. Pickle is never
// supported. docs/celery.md has the table of what is and is not supported.
package celery
