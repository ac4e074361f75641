"""The Python client of the interop tests: sends tasks to a Go worker
through Celery and reads their results. Prints one JSON object."""
import datetime
import json
import pickle
import sys
import time
import uuid

from celery.exceptions import TaskRevokedError
from kombu import Connection, Exchange, Producer, Queue

from celeryapp import app, go_add
import os

QUEUE = os.environ["CELERY_QUEUE"]


def bulk(n):
    """n tasks, half by send_task and half by a stub's .delay(), every result read."""
    sent = []
    for i in range(n):
        if i % 2 == 0:
            r = app.send_task("go.add", args=[i, 1], kwargs={"scale": 2}, queue=QUEUE)
        else:
            r = go_add.delay(i, 1, scale=2)
        sent.append((i, r))
    wrong = []
    for i, r in sent:
        got = r.get(timeout=60)
        if got != (i + 1) * 2:
            wrong.append([i, got])
    return {"sent": n, "wrong": wrong}


def features():
    out = {}
    # A failure raises here with the Go error's text.
    r = app.send_task("go.fail", args=["card declined"], queue=QUEUE)
    try:
        r.get(timeout=30)
        out["fail"] = "no exception"
    except Exception as e:  # the class is made up from exc_type
        out["fail"] = type(e).__name__ + ": " + str(e)
    # A retry in Go ends in success here.
    out["flaky"] = app.send_task("go.flaky", args=[], queue=QUEUE).get(timeout=30)
    # countdown: not run before its eta.
    r = app.send_task("go.eta", args=[], queue=QUEUE, countdown=1)
    out["eta"] = r.get(timeout=30)
    # expires before it is due: revoked, never run.
    now = datetime.datetime.now(datetime.timezone.utc)
    r = app.send_task("go.never", args=[], queue=QUEUE, eta=now + datetime.timedelta(seconds=2),
                      expires=now + datetime.timedelta(seconds=1))
    try:
        r.get(timeout=30)
        out["expired"] = "no exception"
    except TaskRevokedError as e:
        out["expired"] = "revoked: " + str(e)
    except Exception as e:
        out["expired"] = type(e).__name__ + ": " + str(e)
    # time limit: the Go handler's context ends, the job fails.
    r = app.send_task("go.sleep", args=[], queue=QUEUE, time_limit=1)
    try:
        r.get(timeout=30)
        out["timelimit"] = "no exception"
    except Exception as e:
        out["timelimit"] = type(e).__name__ + ": " + str(e)
    return out


def malformed():
    """Messages a Go worker must dead-letter without running, then a good one."""
    ids = {k: str(uuid.uuid4()) for k in ["protocol1", "pickle", "garbage", "encoding"]}
    ex = Exchange(QUEUE, type="direct")
    q = Queue(QUEUE, ex, routing_key=QUEUE)
    with Connection(app.conf.broker_url) as conn:
        p = Producer(conn.channel(), exchange=ex, routing_key=QUEUE)
        v2 = lambda i: {"lang": "py", "task": "go.add", "id": i, "root_id": i, "retries": 0,
                        "eta": None, "expires": None, "timelimit": [None, None]}
        # Protocol 1: everything in a JSON body, no task header.
        p.publish({"task": "go.add", "id": ids["protocol1"], "args": [1, 2], "kwargs": {}, "retries": 0},
                  serializer="json", declare=[q])
        p.publish(pickle.dumps([[1, 2], {}, {}]), content_type="application/x-python-serialize",
                  content_encoding="binary", headers=v2(ids["pickle"]), declare=[q])
        p.publish(b"this is not json {", content_type="application/json", content_encoding="utf-8",
                  headers=v2(ids["garbage"]), declare=[q])
        p.publish(b"[[1, 2], {}, {}]", content_type="application/json", content_encoding="x-rot13",
                  headers=v2(ids["encoding"]), declare=[q])
    good = app.send_task("go.add", args=[20, 1], kwargs={"scale": 2}, queue=QUEUE).get(timeout=30)
    return {"ids": ids, "good": good}


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "bulk":
        res = bulk(int(sys.argv[2]))
    elif mode == "features":
        res = features()
    elif mode == "malformed":
        res = malformed()
    else:
        raise SystemExit("unknown mode " + mode)
    print(json.dumps(res))
