"""No accepted task is lost: with the broker unreachable POST /tasks answers 503 within
the deadline and keeps the row PENDING; once the broker is back the outbox relay
publishes it and it runs, with no client retry; a retry with the same key returns
the same task."""
import os
import signal
import time

import pytest

from conftest import (JWT_SECRET, Client, Service, binary, env, free_port, mysql, new_user,
                      stack_env_file, wait_until)


def kafka_pid():
    with open(os.path.join(env("DISPATCH_TEST_DIR"), "run", "kafka.pid")) as f:
        return int(f.read().strip())


@pytest.fixture
def impatient_producer(anonymous):
    """A producer that gives the broker 1.5 s and relays PENDING rows after 0.5 s.  Its
    request deadline (2 s by default) is set above the publish timeout: this test is
    about the pipeline's own 503 (stored, its answer recorded under the key), not the
    deadline's (test_breakers.py), which may come before the answer is recorded."""
    port = free_port()
    svc = Service("producer-outbox", [binary("dispatch-producer"), "--config", stack_env_file(),
                                      "--http-addr", f"127.0.0.1:{port}"],
                  f"http://127.0.0.1:{port}/healthz",
                  {"DISPATCH_JWT_SECRET": JWT_SECRET, "DISPATCH_PUBLISH_TIMEOUT_MS": "1500",
                   "DISPATCH_OUTBOX_AGE_MS": "500",
                   "DISPATCH_REQUEST_DEADLINE_MS": "5000"})
    try:
        wait_until(svc.healthy, 20, "the outbox producer's /healthz")
        client = Client(f"http://127.0.0.1:{port}", new_user(anonymous)[2])
        yield client
    finally:
        assert svc.stop() == 0, svc.tail()


def status_in_db(task_id):
    hex_id = task_id.replace("-", "")
    return mysql(f"SELECT status FROM tasks WHERE id = UNHEX('{hex_id}')")[0][0]


def test_broker_outage_answers_503_then_the_relay_publishes(impatient_producer, worker):
    client = impatient_producer
    # the producer is connected and has its idempotent producer id before the outage
    warm = client.post("/tasks", {"type": "noop", "payload": 0})
    assert warm.status == 202
    pid = kafka_pid()
    key = "outage-" + str(time.time_ns())
    body = {"type": "echo", "payload": {"survives": "the outage"}}
    os.kill(pid, signal.SIGSTOP)  # the broker hangs: no answer, no error
    try:
        started = time.monotonic()
        r = client.post("/tasks", body, headers={"Idempotency-Key": key})
        elapsed = time.monotonic() - started
        assert r.status == 503, r.body
        assert r.headers["Retry-After"]
        assert elapsed < 6, f"503 took {elapsed:.1f}s; the deadline is 1.5 s"
        pending = mysql("SELECT LOWER(HEX(id)) FROM tasks WHERE status = 'PENDING' "
                        "AND payload LIKE '%the outage%'")
        assert len(pending) >= 1
    finally:
        os.kill(pid, signal.SIGCONT)
    # no client action: the relay publishes it, the worker runs it
    again = client.post("/tasks", body, headers={"Idempotency-Key": key})
    assert again.status == 202, again.body
    assert again.headers["Idempotent-Replayed"] == "true"
    task_id = again.json()["id"]
    assert task_id.replace("-", "") in [row[0] for row in pending]
    done = client.wait_status(task_id, {"SUCCEEDED"}, timeout=90)
    assert done["result"] == {"survives": "the outage"}
