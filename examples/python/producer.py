"""Enqueue a job to Conveyor's HTTP API from Python and wait for its result.

    python3 producer.py http://127.0.0.1:8090 TOKEN

Needs only `requests`. The API's routes are described by its OpenAPI
document at /v1/openapi.json.
"""
import sys

import requests


def main(base, token):
    s = requests.Session()
    s.headers["Authorization"] = "Bearer " + token

    # Enqueue by task name with JSON arguments. The job ID is ours, so a
    # retry after a timeout cannot make a second job.
    r = s.post(base + "/v1/jobs", json={
        "task": "demo.greet",
        "args": {"name": "ada"},
        "id": "greet-ada-1",
    }, timeout=10)
    if r.status_code == 429:  # the queue is full: back off and retry
        sys.exit("queue full, retry after %s s" % r.headers["Retry-After"])
    r.raise_for_status()
    job_id = r.json()["id"]

    # Long-poll until the job finishes: 202 means "not yet, ask again".
    while True:
        r = s.get(base + "/v1/jobs/%s/wait" % job_id, params={"timeout": "20s"}, timeout=30)
        r.raise_for_status()
        if r.status_code == 200:
            break
    job = r.json()
    if job["state"] != "done":
        sys.exit("job %s ended %s: %s" % (job_id, job["state"], job["errors"][-1]["error"]))
    print(job["result"])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
