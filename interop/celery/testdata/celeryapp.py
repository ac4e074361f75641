"""A plain Celery app for the interop tests, configured from the environment.

CELERY_BROKER   broker URL (amqp://... or redis://...)
CELERY_BACKEND  result backend URL (redis://... or rpc://)
CELERY_QUEUE    the test's own queue, the default queue of every task
"""
import os
import time

from celery import Celery

app = Celery("celeryapp", broker=os.environ["CELERY_BROKER"], backend=os.environ["CELERY_BACKEND"])
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_default_queue=os.environ["CELERY_QUEUE"],
    task_default_exchange=os.environ["CELERY_QUEUE"],
    task_default_routing_key=os.environ["CELERY_QUEUE"],
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)


# Tasks an unmodified Celery worker runs for a Go client.
@app.task(name="py.add")
def add(x, y, scale=1):
    return (x + y) * scale


@app.task(name="py.greet")
def greet(name="", punct="!"):
    return "hello " + name + punct


@app.task(name="py.fail")
def fail(msg):
    raise ValueError(msg)


@app.task(name="py.noop")
def noop():
    return None


# Stubs of the tasks a Go worker runs: .delay() on them only sends.
@app.task(name="go.add")
def go_add(x, y, scale=1):
    raise NotImplementedError("runs in Go")


@app.task(name="go.noop")
def go_noop():
    raise NotImplementedError("runs in Go")


# The benchmark's no-op: when it started, and how long after its client
# sent it (t, the client's clock: the same machine's).
@app.task(name="bench.noop")
def bench_noop(t=0.0):
    now = time.time()
    return [now - t, now]
