"""The Python client of bench/celery.go: sends bench.noop tasks with ids
<prefix>-<i>, each with the time it was sent.

bench.py fill N PREFIX          as fast as it can
bench.py stream N RATE PREFIX   RATE a second
"""
import sys
import time

from celeryapp import app


def send(i, prefix):
    app.send_task("bench.noop", kwargs={"t": time.time()}, task_id="%s-%d" % (prefix, i))


if __name__ == "__main__":
    if sys.argv[1] == "fill":
        n, prefix = int(sys.argv[2]), sys.argv[3]
        for i in range(n):
            send(i, prefix)
    elif sys.argv[1] == "stream":
        n, rate, prefix = int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
        start = time.time()
        for i in range(n):
            delay = start + i / rate - time.time()
            if delay > 0:
                time.sleep(delay)
            send(i, prefix)
    else:
        raise SystemExit("unknown mode " + sys.argv[1])
