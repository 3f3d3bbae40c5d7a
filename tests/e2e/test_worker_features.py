"""Worker features end to end: run_at delays the first run (through the retry topic),
the worker's /metrics counts what it processed, and the http handler delivers tasks
to the local test server of conftest's `http_target` (2xx succeeds, 400 is DEAD at
once, 503 is retried)."""
import datetime
import os
import re
import time
import urllib.request

from conftest import topic_messages, wait_until
from test_metrics import CONTENT_TYPE, parse

TRACEPARENT_RE = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")

WORKER_FAMILIES = {
    "tasks_processed_total": "counter",
    "task_duration_seconds": "histogram",
    "task_retries_total": "counter",
    "dlq_messages_total": "counter",
    "pool_queue_depth": "gauge",
    "pool_busy": "gauge",
    "process_start_time_seconds": "gauge",
}


def rfc3339(ts):
    return (datetime.datetime.fromtimestamp(ts, datetime.timezone.utc)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"))


def seconds(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def submit(producer, body):
    r = producer.post("/tasks", body)
    assert r.status == 202, r.body
    return r.json()["id"]


def scrape(worker):
    with urllib.request.urlopen(worker.metrics_url, timeout=5) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == CONTENT_TYPE
        return r.read().decode()


def sample(text, name, **labels):
    """The value of one sample (0 when it is not exposed yet)."""
    _, samples = parse(text)
    for n, lbl, value in samples:
        if n == name and lbl == labels:
            return value
    return 0.0


# --- run_at --------------------------------------------------------------------------

def test_run_at_in_the_future_waits_then_succeeds(producer, worker):
    run_at = time.time() + 2
    task_id = submit(producer, {"type": "noop", "payload": {}, "run_at": rfc3339(run_at)})
    # not started before run_at: the worker parks it on the retry topic, unclaimed
    while time.time() < run_at - 0.25:
        view = producer.get(f"/tasks/{task_id}").json()
        assert view["status"] in ("PENDING", "QUEUED"), view
        assert view["started_at"] is None and view["attempts"] == 0, view
        time.sleep(0.1)
    view = producer.wait_status(task_id, {"SUCCEEDED"}, timeout=20)
    assert seconds(view["started_at"]) >= seconds(view["run_at"]), view
    assert seconds(view["started_at"]) < run_at + 10, view
    assert view["attempts"] == 1, "waiting for run_at uses no attempt"


def test_scheduled_task_can_be_canceled_before_run_at(producer, worker):
    run_at = time.time() + 1.5
    skipped = sample(scrape(worker), "tasks_processed_total", type="noop", outcome="skipped") or 0
    task_id = submit(producer, {"type": "noop", "payload": {}, "run_at": rfc3339(run_at)})
    r = producer.post(f"/tasks/{task_id}/cancel")
    assert r.status == 200 and r.json()["status"] == "CANCELED", r.body
    # past run_at the worker sees the message again, finds the task CANCELED and skips it
    wait_until(lambda: (sample(scrape(worker), "tasks_processed_total", type="noop",
                               outcome="skipped") or 0) > skipped,
               20, "the worker to skip the canceled task once its run_at came")
    assert time.time() >= run_at - 0.5, "skipped before its run_at: it was not held"
    view = producer.get(f"/tasks/{task_id}").json()
    assert view["status"] == "CANCELED" and view["started_at"] is None, view


def test_retry_overtakes_a_scheduled_task_on_its_retry_partition(producer, worker):
    # one ordering key: both messages share a partition, on the tasks topic as on the
    # retry topic, where the scheduled task waits (one hop: 30 s) ahead of the retry
    key = f"overtake-{time.time_ns()}"
    later = submit(producer, {"type": "noop", "payload": {}, "ordering_key": key,
                              "run_at": rfc3339(time.time() + 30)})
    # the 202 came after the broker's ack: the scheduled message is ahead on the partition
    failing = submit(producer, {"type": "fail", "payload": {"times": 1}, "ordering_key": key,
                                "max_attempts": 2})
    t0 = time.monotonic()
    view = producer.wait_status(failing, {"SUCCEEDED", "DEAD"}, timeout=20)
    assert view["status"] == "SUCCEEDED" and view["attempts"] == 2, view
    assert time.monotonic() - t0 < 15, "the retry waited behind the scheduled task"
    assert producer.get(f"/tasks/{later}").json()["status"] == "QUEUED"
    assert producer.post(f"/tasks/{later}/cancel").status == 200


def test_run_at_in_the_past_runs_at_once(producer, worker):
    task_id = submit(producer, {"type": "noop", "payload": {},
                                "run_at": rfc3339(time.time() - 3600)})
    view = producer.wait_status(task_id, {"SUCCEEDED"}, timeout=20)
    assert view["attempts"] == 1


# --- /metrics ---------------------------------------------------------------------------

def test_metrics_count_processed_noop_tasks(producer, worker):
    before = scrape(worker)
    types, _ = parse(before)
    for family, kind in WORKER_FAMILIES.items():
        assert types.get(family) == kind, f"{family} should be a {kind}: {types.get(family)}"
    key = {"type": "noop", "outcome": "succeeded"}
    n0 = sample(before, "tasks_processed_total", **key)
    c0 = sample(before, "task_duration_seconds_count", type="noop")

    ids = [submit(producer, {"type": "noop", "payload": {"i": i}}) for i in range(3)]
    for task_id in ids:
        producer.wait_status(task_id, {"SUCCEEDED"}, timeout=20)
    # counted once the row is final: a moment after the status is visible
    after = wait_until(
        lambda: (lambda t: t if sample(t, "tasks_processed_total", **key) >= n0 + 3 else None)(
            scrape(worker)), 10, "tasks_processed_total to count the noop tasks")
    assert sample(after, "task_duration_seconds_count", type="noop") >= c0 + 3
    assert sample(after, "pool_busy") >= 0
    assert sample(after, "pool_queue_depth") >= 0


def test_metrics_count_retries_and_dead_letters(producer, worker):
    before = scrape(worker)
    r0 = sample(before, "task_retries_total")
    d0 = sample(before, "dlq_messages_total")
    dead0 = sample(before, "tasks_processed_total", type="fail", outcome="dead")
    task_id = submit(producer, {"type": "fail", "payload": {"times": 1}, "max_attempts": 2})
    producer.wait_status(task_id, {"SUCCEEDED"}, timeout=20)
    task_id = submit(producer, {"type": "fail", "payload": {"permanent": True}})
    producer.wait_status(task_id, {"DEAD"}, timeout=20)
    after = wait_until(
        lambda: (lambda t: t if sample(t, "dlq_messages_total") >= d0 + 1 else None)(
            scrape(worker)), 10, "dlq_messages_total to count the dead task")
    assert sample(after, "task_retries_total") >= r0 + 1
    assert sample(after, "tasks_processed_total", type="fail", outcome="dead") >= dead0 + 1


# --- the http handler ----------------------------------------------------------------------

def test_http_task_succeeds_on_200(producer, worker, http_target):
    payload = {"n": 1, "s": "caf\u00e9", "list": [1, {"a": None}]}
    task_id = submit(producer, {"type": "e2e.http-ok", "payload": payload})
    view = producer.wait_status(task_id, {"SUCCEEDED", "DEAD"}, timeout=20)
    assert view["status"] == "SUCCEEDED", view
    assert view["result"] == {"received": task_id, "seen": 1}
    (path, headers, body), = http_target.received(task_id)
    assert path == "/ok"
    assert body == {"id": task_id, "type": "e2e.http-ok", "payload": payload, "attempt": 1}
    assert headers["Content-Type"] == "application/json"
    assert headers["Idempotency-Key"] == task_id
    assert TRACEPARENT_RE.match(headers["traceparent"]), headers
    assert headers["User-Agent"].startswith("dispatch-worker/")


def test_http_task_is_dead_on_400(producer, worker, http_target):
    task_id = submit(producer, {"type": "e2e.http-bad", "payload": {}, "max_attempts": 5})
    view = producer.wait_status(task_id, {"DEAD", "SUCCEEDED"}, timeout=20)
    assert view["status"] == "DEAD", view
    assert view["attempts"] == 1, "a 400 is permanent: no retry"
    assert view["last_error"].startswith("http 400: no such thing"), view
    assert len(http_target.received(task_id)) == 1
    dlq = os.environ.get("DISPATCH_KAFKA_DLQ_TOPIC", "dispatch.tasks.dlq")
    records = [h for _, h, v in topic_messages(dlq) if task_id in v]
    assert records and records[-1]["x-error"].startswith("http 400"), records


def test_http_task_retried_on_503(producer, worker, http_target):
    task_id = submit(producer, {"type": "e2e.http-flaky", "payload": {"x": 1}})
    view = producer.wait_status(task_id, {"SUCCEEDED", "DEAD"}, timeout=30)
    assert view["status"] == "SUCCEEDED", view
    assert view["attempts"] == 2
    assert view["result"] == {"received": task_id, "seen": 2}
    attempts = [body["attempt"] for _, _, body in http_target.received(task_id)]
    assert attempts == [1, 2]
