"""The dead-letter queue from the operator's side: dispatchctl dlq list, tail, replay
and purge against the real worker, database and broker.

Rows that must be DEAD in a particular way (a handler that will succeed on replay, a
death long ago for purge) are written straight into the database; the rest die
through the worker.  Every wait is bounded (conftest.wait_until)."""
import base64
import json
import os
import secrets
import subprocess
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

from conftest import binary, env, mysql, stack_env_file, topic_messages, wait_until

TRACEPARENT = "00-5bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def ctl(*args, timeout=90):
    return subprocess.run([binary("dispatchctl"), "--config", stack_env_file(), *args],
                          capture_output=True, text=True, timeout=timeout)


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def submit(producer, body, headers=None):
    r = producer.post("/tasks", body, headers=headers)
    assert r.status == 202, r.body
    return r.json()


def rfc3339(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def uuid7():
    ms = int(time.time() * 1000)
    rand = secrets.randbits(74)
    v = (ms << 80) | (0x7 << 76) | ((rand >> 62) << 64) | (0b10 << 62) | (rand & ((1 << 62) - 1))
    return str(uuid.UUID(int=v))


def user_id(client):
    claims = client.token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))["sub"]


def hexid(task_id):
    return task_id.replace("-", "")


def insert_dead(owner, task_type, payload, finished="UTC_TIMESTAMP(6)", error="old failure",
                attempts=3):
    """A DEAD row as the worker leaves one (no DLQ record: replay does not need it)."""
    task_id = uuid7()
    mysql("INSERT INTO tasks (id, user_id, type, status, attempts, max_attempts, payload, "
          "last_error, traceparent, created_at, updated_at, finished_at) VALUES "
          f"(UNHEX('{hexid(task_id)}'), UNHEX('{hexid(owner)}'), '{task_type}', 'DEAD', "
          f"{attempts}, 3, '{json.dumps(payload)}', '{error}', '{TRACEPARENT}', "
          f"UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), {finished})")
    return task_id


def row(task_id):
    rows = mysql("SELECT status, attempts, IFNULL(last_error, '') FROM tasks "
                 f"WHERE id = UNHEX('{hexid(task_id)}')")
    return tuple(rows[0]) if rows else None


def attempts_of(task_id):
    """(attempt, outcome, worker, error) per task_attempts row, in order."""
    rows = mysql("SELECT attempt, outcome, worker_id, IFNULL(error, '') FROM task_attempts "
                 f"WHERE task_id = UNHEX('{hexid(task_id)}') ORDER BY id")
    return [(int(a), o, w, e) for a, o, w, e in rows]


def make_dead(producer):
    """A task that dies through the worker: permanent failure on attempt 1."""
    view = submit(producer, {"type": "fail", "payload": {"permanent": True}, "max_attempts": 3},
                  {"traceparent": TRACEPARENT})
    return producer.wait_status(view["id"], {"DEAD"}, timeout=30)


def dlq_records(task_id):
    """The task's records in the DLQ topic, as dlq tail --json prints them."""
    out = ctl("dlq", "tail", "--json")
    assert out.returncode == 0, out.stderr
    return [r for r in json_lines(out.stdout) if r["task_id"] == task_id]


def test_dead_task_is_listed(producer, worker):
    dead = make_dead(producer)
    out = ctl("dlq", "list", "--json", "--type", "fail", "--since", "1h")
    assert out.returncode == 0, out.stderr
    found = [t for t in json_lines(out.stdout) if t["id"] == dead["id"]]
    assert len(found) == 1
    t = found[0]
    assert t["status"] == "DEAD" and t["attempts"] == 1
    assert "injected failure" in t["last_error"]
    assert t["finished_at"] == dead["finished_at"]

    # newest death first
    deaths = [t["finished_at"] for t in json_lines(out.stdout)]
    assert deaths == sorted(deaths, reverse=True)

    table = ctl("dlq", "list", "--type", "fail", "--limit", "1000")
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0].split() == ["ID", "TYPE", "ATTEMPTS", "FINISHED_AT",
                                                    "LAST_ERROR"]
    assert dead["id"] in table.stdout

    later = (datetime.now(timezone.utc) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    none = ctl("dlq", "list", "--json", "--since", later)
    assert none.returncode == 0 and none.stdout == ""


def test_list_usage_errors_exit_64():
    for args in (["--limit", "0"], ["--type", "Not A Type"], ["--since", "yesterday"],
                 ["--bogus"], ["extra"]):
        out = ctl("dlq", "list", *args)
        assert out.returncode == 64, (args, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_tail_shows_the_record_with_every_failure_header(producer, worker):
    dead = make_dead(producer)
    before = datetime.now(timezone.utc)
    recs = dlq_records(dead["id"])
    assert len(recs) == 1, recs
    rec = recs[0]
    for h in ("x-error", "x-attempts", "x-first-failure", "x-last-failure", "x-worker"):
        assert rec["headers"].get(h), (h, rec["headers"])
    assert rec["type"] == "fail"
    assert rec["error"] == dead["last_error"]
    assert rec["attempts"] == 1
    first, last = rfc3339(rec["first_failure"]), rfc3339(rec["last_failure"])
    assert first <= last <= before + timedelta(seconds=5)
    assert last >= rfc3339(dead["created_at"]) - timedelta(seconds=5)
    assert rec["worker"]
    assert rec["traceparent"] == TRACEPARENT
    assert rec["trace_id"] == TRACEPARENT.split("-")[1]
    assert rec["message"]["id"] == dead["id"] and rec["message"]["payload"] == {"permanent": True}

    text = ctl("dlq", "tail")
    assert text.returncode == 0, text.stderr
    assert dead["id"] in text.stdout and TRACEPARENT in text.stdout


def test_follow_runs_until_sigterm(producer, worker):
    proc = subprocess.Popen([binary("dispatchctl"), "--config", stack_env_file(), "dlq", "tail",
                             "--follow", "--json"], stdout=subprocess.PIPE, text=True)
    seen = []
    reader = threading.Thread(target=lambda: seen.extend(json.loads(line) for line in proc.stdout),
                              daemon=True)
    reader.start()
    try:
        dead = make_dead(producer)
        wait_until(lambda: any(r["task_id"] == dead["id"] for r in list(seen)), 30,
                   "the new DLQ record in tail --follow")
        assert proc.poll() is None
    finally:
        proc.terminate()
        assert proc.wait(timeout=15) == 0
        reader.join(timeout=5)


def test_replay_runs_the_task_again(producer, worker):
    task_id = insert_dead(user_id(producer), "echo", {"again": True})

    dry = ctl("dlq", "replay", "--dry-run", task_id)
    assert dry.returncode == 0, dry.stderr
    assert f"would replay {task_id} echo" in dry.stdout
    assert row(task_id) == ("DEAD", "3", "old failure")
    assert attempts_of(task_id) == []

    out = ctl("dlq", "replay", task_id)
    assert out.returncode == 0, out.stderr
    assert f"replayed {task_id} echo" in out.stdout
    done = producer.wait_status(task_id, {"SUCCEEDED"}, timeout=30)
    assert done["result"] == {"again": True}
    assert done["attempts"] == 1
    assert done["last_error"] is None

    hist = attempts_of(task_id)
    assert [(a, o) for a, o, _, _ in hist] == [(0, "replayed"), (1, "succeeded")]
    assert hist[0][2].startswith("dispatchctl:")
    assert hist[0][3] == "old failure"  # the error the replay cleared is kept here

    # the message carries the row's trace context
    msgs = [m for m in topic_messages(env("DISPATCH_KAFKA_TOPIC"))
            if json.loads(m[2]).get("id") == task_id]
    assert len(msgs) == 1
    assert msgs[0][0] == task_id and msgs[0][1]["traceparent"] == TRACEPARENT

    history = ctl("task", "attempts", task_id, "--json")
    assert history.returncode == 0, history.stderr
    assert [h["outcome"] for h in json_lines(history.stdout)] == ["replayed", "succeeded"]


def test_replayed_task_that_fails_again_is_dead_again(producer, worker):
    dead = make_dead(producer)
    out = ctl("dlq", "replay", dead["id"])
    assert out.returncode == 0, out.stderr

    def dead_again():
        hist = attempts_of(dead["id"])
        return row(dead["id"])[0] == "DEAD" and len(hist) == 3 and hist
    hist = wait_until(dead_again, 30, "the replayed task to die again")
    assert [(a, o) for a, o, _, _ in hist] == [(1, "permanent"), (0, "replayed"), (1, "permanent")]
    assert wait_until(lambda: len(dlq_records(dead["id"])) == 2, 30, "a second DLQ record")


def test_replay_skips_what_is_not_dead_with_65(producer, worker):
    done = submit(producer, {"type": "noop", "payload": None})
    producer.wait_status(done["id"], {"SUCCEEDED"})
    dead_id = insert_dead(user_id(producer), "noop", None)
    unknown = uuid7()

    out = ctl("dlq", "replay", done["id"], dead_id, unknown)
    assert out.returncode == 65, out.stderr
    assert f"{done['id']} is SUCCEEDED, not DEAD: skipped" in out.stderr
    assert f"no task {unknown}: skipped" in out.stderr
    assert f"replayed {dead_id} noop" in out.stdout
    assert "1 replayed, 2 skipped" in out.stdout
    producer.wait_status(dead_id, {"SUCCEEDED"}, timeout=30)
    assert row(done["id"])[0] == "SUCCEEDED"
    assert [o for _, o, _, _ in attempts_of(done["id"])] == ["succeeded"]

    dry = ctl("dlq", "replay", "--dry-run", done["id"])
    assert dry.returncode == 65


def test_replay_usage_errors_exit_64():
    for args in ([], ["not-a-uuid"], ["--type", "echo", uuid7()], ["--rate", "fast", uuid7()],
                 ["--rate", "0/s", uuid7()]):
        out = ctl("dlq", "replay", *args)
        assert out.returncode == 64, (args, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_replay_by_type_is_paced(producer, worker):
    # a type of its own, with no handler: replayed, then dead again for good
    task_type = f"e2e-dlq-{secrets.token_hex(4)}"
    owner = user_id(producer)
    ids = [insert_dead(owner, task_type, {"i": i}) for i in range(3)]

    dry = ctl("dlq", "replay", "--type", task_type, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert all(f"would replay {i}" in dry.stdout for i in ids)
    assert "3 would be replayed" in dry.stdout
    assert all(row(i)[0] == "DEAD" for i in ids)

    start = time.monotonic()
    out = ctl("dlq", "replay", "--type", task_type, "--rate", "5/s")
    elapsed = time.monotonic() - start
    assert out.returncode == 0, out.stderr
    # oldest first, one every 200 ms at most
    assert [line.split()[1] for line in out.stdout.splitlines()[:3]] == ids
    assert elapsed >= 0.4
    for i in ids:
        assert wait_until(lambda i=i: [o for _, o, _, _ in attempts_of(i)][:1] == ["replayed"],
                          10, "the replay record")
        wait_until(lambda i=i: row(i)[0] == "DEAD" and len(attempts_of(i)) == 2, 30,
                   "the replayed task to die again")


def test_purge_needs_yes_and_is_audited(producer):
    task_type = f"e2e-purge-{secrets.token_hex(4)}"
    owner = user_id(producer)
    old = [insert_dead(owner, task_type, {}, finished="'2001-01-01 00:00:00'") for _ in range(2)]
    recent = insert_dead(owner, task_type, {})
    before = "2001-01-02T00:00:00Z"

    refused = ctl("dlq", "purge", "--before", before)
    assert refused.returncode == 64
    assert "2 dead tasks" in refused.stderr and "--yes" in refused.stderr
    assert all(row(i) for i in old)

    out = ctl("dlq", "purge", "--before", before, "--yes")
    assert out.returncode == 0, out.stderr
    assert "purged 2 dead tasks" in out.stdout
    audit = json.loads(out.stderr.strip().splitlines()[-1])
    assert audit["audit"] == "dlq.purge" and audit["purged"] == 2 and audit["ok"] is True
    assert audit["actor"].startswith("dispatchctl:")
    assert audit["before"].startswith("2001-01-02T00:00:00")
    assert all(row(i) is None for i in old)
    assert row(recent)[0] == "DEAD"
    for i in old:
        rows = mysql("SELECT action, actor, type FROM dlq_audit "
                     f"WHERE task_id = UNHEX('{hexid(i)}')")
        assert rows == [["purge", audit["actor"], task_type]]

    assert ctl("dlq", "purge").returncode == 64
    assert ctl("dlq", "purge", "--before", "soon").returncode == 64


def test_topics_create_keeps_dlq_records_forever():
    topic = f"e2e-dlq-retention-{secrets.token_hex(4)}"
    out = ctl("--kafka-dlq-topic", topic, "topics", "create")
    assert out.returncode == 0, out.stderr
    libs = os.path.join(os.environ.get("DISPATCH_CACHE", os.path.expanduser("~/.cache/dispatch")),
                        "kafka-3.9.1", "libs", "*")
    described = subprocess.run(
        ["java", "-cp", libs, "kafka.admin.ConfigCommand", "--bootstrap-server",
         env("DISPATCH_KAFKA_BROKERS"), "--entity-type", "topics", "--entity-name", topic,
         "--describe"], capture_output=True, text=True, timeout=120)
    assert described.returncode == 0, described.stderr
    assert "retention.ms=-1" in described.stdout
