"""Worker delivery guarantees (SPEC §4) end to end: retries with backoff, exhaustion
into the DLQ, at-least-once across a kill -9, and a SIGTERM drain.

The kill and drain tests start workers of their own in the session worker's group
(conftest.Service); which worker gets a task depends on the partition assignment, so
they first wait, by submitting probes, until the extra worker has claimed one.
Every wait is bounded (conftest.wait_until)."""
import json
import secrets
import signal
import time

from conftest import (Service, binary, env, free_port, mysql, stack_env_file, topic_messages,
                      wait_until)


def submit(producer, body):
    r = producer.post("/tasks", body)
    assert r.status == 202, r.body
    return r.json()["id"]


def hexid(task_id):
    return task_id.replace("-", "")


def history(task_id):
    """(attempt, outcome, worker) per task_attempts row, in order."""
    rows = mysql("SELECT attempt, outcome, worker_id FROM task_attempts "
                 f"WHERE task_id = UNHEX('{hexid(task_id)}') ORDER BY id")
    return [(int(a), o, w) for a, o, w in rows]


def statuses(ids):
    """{id: status} of the given tasks, read from the database in one query."""
    rows = mysql("SELECT LOWER(HEX(id)), status FROM tasks WHERE id IN ("
                 + ",".join(f"UNHEX('{hexid(i)}')" for i in ids) + ")")
    by_hex = {h: s for h, s in rows}
    return {i: by_hex.get(hexid(i)) for i in ids}


def attempts_by(worker_id, outcome=None, ids=None):
    sql = f"SELECT COUNT(*) FROM task_attempts WHERE worker_id = '{worker_id}'"
    if outcome:
        sql += f" AND outcome = '{outcome}'"
    if ids:
        sql += " AND task_id IN (" + ",".join(f"UNHEX('{hexid(i)}')" for i in ids) + ")"
    return int(mysql(sql)[0][0])


def extra_worker(name, extra_env):
    """A second dispatch-worker in the session worker's group, with an id of its own."""
    port = free_port()
    worker_id = f"e2e-{name}-{secrets.token_hex(4)}"
    svc = Service(f"worker-{name}", [binary("dispatch-worker"), "--config", stack_env_file(),
                                     "--worker-http-addr", f"127.0.0.1:{port}"],
                  f"http://127.0.0.1:{port}/healthz",
                  {"DISPATCH_WORKER_ID": worker_id, **extra_env})
    wait_until(svc.healthy, 30, f"{name}'s /healthz")
    svc.worker_id = worker_id
    return svc


def wait_for_assignment(producer, worker_id, submitted, payload_ms=50):
    """Submits a sleep probe now and then until worker_id has claimed one: by then the
    group has rebalanced and the worker owns partitions."""
    def claimed():
        submitted.append(submit(producer, {"type": "sleep", "payload": {"ms": payload_ms}}))
        return attempts_by(worker_id) > 0
    wait_until(claimed, 60, f"{worker_id} to be assigned partitions", interval=0.5)


def test_retry_then_success(producer, worker):
    task_id = submit(producer, {"type": "fail", "payload": {"times": 2}, "max_attempts": 5})
    done = producer.wait_status(task_id, {"SUCCEEDED", "DEAD"}, timeout=60)
    assert done["status"] == "SUCCEEDED", done
    assert done["attempts"] == 3
    assert [(a, o) for a, o, _ in history(task_id)] == [(1, "failed"), (2, "failed"),
                                                        (3, "succeeded")]
    # each failure went through the retry topic
    retries = [h for _, h, v in topic_messages(env("DISPATCH_KAFKA_RETRY_TOPIC"))
               if json.loads(v).get("id") == task_id]
    assert {h.get("x-attempts") for h in retries} == {"1", "2"}


def test_exhausted_retries_go_to_the_dlq(producer, worker):
    task_id = submit(producer, {"type": "fail", "payload": {"times": 9}, "max_attempts": 2})
    dead = producer.wait_status(task_id, {"SUCCEEDED", "DEAD"}, timeout=60)
    assert dead["status"] == "DEAD", dead
    assert dead["attempts"] == 2
    assert dead["last_error"] == "injected failure (attempt 2)"
    assert [(a, o) for a, o, _ in history(task_id)] == [(1, "failed"), (2, "failed")]

    # the DLQ record is acknowledged before the row turns DEAD: it is there already
    recs = [(k, h, json.loads(v)) for k, h, v in topic_messages(env("DISPATCH_KAFKA_DLQ_TOPIC"))
            if json.loads(v).get("id") == task_id]
    assert len(recs) == 1
    key, hdrs, value = recs[0]
    assert key == task_id and value["type"] == "fail" and value["payload"] == {"times": 9}
    assert hdrs["x-attempts"] == "2"
    assert hdrs["x-error"] == "injected failure (attempt 2)"
    assert int(hdrs["x-first-failure"]) <= int(hdrs["x-last-failure"])
    assert hdrs["x-worker"]


def test_kill_9_loses_no_task(producer, worker):
    victim = extra_worker("victim", {
        "DISPATCH_KAFKA_SESSION_TIMEOUT_MS": "6000",  # its partitions move on soon
        "DISPATCH_WORKER_LEASE_MS": "2000",  # and so do the tasks it was running
        "DISPATCH_WORKER_CONCURRENCY": "2",  # slow enough to be caught mid-way
    })
    submitted = []
    try:
        wait_for_assignment(producer, victim.worker_id, submitted)
        ids = [submit(producer, {"type": "sleep", "payload": {"ms": 200}}) for _ in range(50)]
        submitted.extend(ids)
        wait_until(lambda: attempts_by(victim.worker_id, "succeeded", ids) >= 2, 60,
                   "the victim to finish some of the 50")
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(timeout=10)
        left = [i for i, s in statuses(ids).items() if s != "SUCCEEDED"]
        assert left, "the victim finished everything before the kill: nothing was tested"
    finally:
        if victim.proc.poll() is None:
            victim.proc.kill()
            victim.proc.wait()
        victim.log.close()

    def all_done():
        return all(s == "SUCCEEDED" for s in statuses(submitted).values())
    wait_until(all_done, 120, "every task to succeed after the kill", interval=0.5)
    # what the victim was running when it died: its lease expired, the survivor ran it
    for task_id in left:
        mine = [o for _, o, w in history(task_id) if w == victim.worker_id]
        assert mine in ([], ["lease_expired"]), (task_id, history(task_id))
        last = history(task_id)[-1]
        assert last[1] == "succeeded" and last[2] != victim.worker_id


def test_sigterm_drains_and_exits_0(producer, worker):
    grace_ms = 10000
    drainer = extra_worker("drainer", {"DISPATCH_WORKER_GRACE_MS": str(grace_ms),
                                       "DISPATCH_WORKER_CONCURRENCY": "2"})
    submitted = []
    try:
        wait_for_assignment(producer, drainer.worker_id, submitted, payload_ms=1500)

        def running():
            rows = mysql("SELECT LOWER(HEX(task_id)) FROM task_attempts WHERE worker_id = "
                         f"'{drainer.worker_id}' AND outcome = 'running'")
            if not rows:
                submitted.append(submit(producer, {"type": "sleep", "payload": {"ms": 1500}}))
            return rows
        busy = wait_until(running, 30, "the drainer to be running a task", interval=0.3)
        start = time.monotonic()
        drainer.proc.send_signal(signal.SIGTERM)
        rc = drainer.proc.wait(timeout=grace_ms / 1000 + 10)
        elapsed = time.monotonic() - start
    finally:
        if drainer.proc.poll() is None:
            drainer.proc.kill()
            drainer.proc.wait()
        drainer.log.close()
    assert rc == 0, f"drainer exit code; log:\n{drainer.tail()}"
    assert elapsed < grace_ms / 1000 + 5

    by_hex = {hexid(i): i for i in submitted}
    running_ids = [by_hex[h[0]] for h in busy]
    for task_id in running_ids:
        producer.wait_status(task_id, {"SUCCEEDED"}, timeout=60)
    # the task in flight at SIGTERM was finished (1.5 s < grace), not abandoned
    assert any(o == "succeeded" and w == drainer.worker_id
               for i in running_ids for _, o, w in history(i))
    wait_until(lambda: all(s == "SUCCEEDED" for s in statuses(submitted).values()), 60,
               "every probe to succeed")
