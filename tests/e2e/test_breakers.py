"""Faltering dependencies (SPEC §3.2, issue 9): with MariaDB hung (SIGSTOP) or the
broker killed (SIGKILL) while requests keep coming, every POST /tasks answers within
the request deadline (2 s by default) plus a margin, every 503 carries Retry-After,
the dependency's circuit opens (circuit_breaker_state moves 0 -> 1, and to 2 while a
probe is out), later requests get 503 within milliseconds, /readyz answers from the
prober at once, and once the dependency is back the circuit closes on its own and
POSTs get 202 again.  No accepted task is lost: every 202 reaches SUCCEEDED, and a
request answered 503 left either nothing or a task the relay publishes later.

The services are the harness's own: they are stopped and started again the way
tests/infra/stack.sh does (its spawn command, the process's own command line), so
the suites after this one find them running."""
import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid

import pytest

from conftest import (JWT_SECRET, ROOT, Client, Service, binary, env, free_port, mysql, new_user,
                      stack_env_file, wait_until)

STACK = os.path.join(ROOT, "tests", "infra", "stack.sh")
DEADLINE_S = 2.0  # request_deadline_ms's default: the fixture leaves it alone
MARGIN_S = 1.5    # a loaded two-core box
FAST_S = 0.3      # "within milliseconds", generously


def pid_of(name):
    with open(os.path.join(env("DISPATCH_TEST_DIR"), "run", f"{name}.pid")) as f:
        return int(f.read().strip())


@pytest.fixture
def guarded(anonymous):
    """A producer of its own: default deadline, circuits open for 4 s (so that a test
    sees the fast 503s of an open circuit before the next probe), a relay that takes
    PENDING rows after 0.5 s."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    svc = Service("producer-breakers", [binary("dispatch-producer"), "--config", stack_env_file(),
                                        "--http-addr", f"127.0.0.1:{port}"],
                  f"{base}/healthz",
                  {"DISPATCH_JWT_SECRET": JWT_SECRET, "DISPATCH_OUTBOX_AGE_MS": "500",
                   "DISPATCH_MYSQL_BREAKER_OPEN_MS": "4000",
                   "DISPATCH_KAFKA_BREAKER_OPEN_MS": "4000",
                   "DISPATCH_MYSQL_BREAKER_THRESHOLD": "3",
                   "DISPATCH_KAFKA_BREAKER_THRESHOLD": "3",
                   "DISPATCH_PROBE_INTERVAL_MS": "250", "DISPATCH_PROBE_TIMEOUT_MS": "400",
                   "DISPATCH_MYSQL_ACQUIRE_TIMEOUT_MS": "500"})
    try:
        wait_until(svc.healthy, 20, "the breakers producer's /healthz")
        client = Client(base, new_user(anonymous)[2])
        client.svc = svc
        yield client
    finally:
        assert svc.stop(timeout=40) == 0, svc.tail()


def breaker_state(base, dependency):
    with urllib.request.urlopen(base + "/metrics", timeout=5) as r:
        text = r.read().decode()
    m = re.search(r'^circuit_breaker_state\{dependency="%s"\} (\S+)$' % dependency, text, re.M)
    assert m, f"no circuit_breaker_state for {dependency}"
    return int(float(m.group(1)))


class Load:
    """Threads POSTing tasks (each with its own Idempotency-Key and a payload naming
    it) until stopped; every answer is kept with its latency."""

    def __init__(self, client, tag, threads=4):
        self.client = client
        self.tag = tag
        self.results = []  # (key, status, seconds, headers, body)
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True)
                        for i in range(threads)]
        for t in self.threads:
            t.start()

    def run(self, i):
        n = 0
        while not self.stopping.is_set():
            n += 1
            key = f"{self.tag}-{i}-{n}-{time.time_ns()}"
            t0 = time.monotonic()
            r = self.client.post("/tasks", {"type": "noop", "payload": {"probe": key}},
                                 headers={"Idempotency-Key": key}, timeout=30)
            with self.lock:
                self.results.append((key, r.status, time.monotonic() - t0, r.headers, r.body))
            self.stopping.wait(0.05)  # pacing, not synchronisation

    def accepted(self):
        with self.lock:
            return sum(1 for r in self.results if r[1] == 202)

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(40)
        return list(self.results)


def watch_states(base, dependency, until, seen):
    """Polls the gauge until until() is true, collecting every value seen."""
    def done():
        seen.add(breaker_state(base, dependency))
        return until()
    return done


def assert_bounded(results, what):
    assert results, f"no requests answered during {what}"
    slowest = max(r[2] for r in results)
    print(f"{what}: {len(results)} POSTs, slowest {slowest:.3f} s, "
          f"{sum(1 for r in results if r[1] == 503)} x 503")
    assert slowest < DEADLINE_S + MARGIN_S, f"a POST took {slowest:.2f} s during {what}"
    for key, status, _, headers, body in results:
        assert status in (202, 503), (status, body)
        if status == 503:
            assert int(headers["Retry-After"]) >= 1, body


def assert_fast_503s(client, n=5):
    times = []
    for _ in range(n):
        t0 = time.monotonic()
        r = client.post("/tasks", {"type": "noop", "payload": {"fast": True}})
        times.append(time.monotonic() - t0)
        assert r.status == 503, r.body
        assert r.json()["type"] == "/problems/circuit-open", r.body
        assert int(r.headers["Retry-After"]) >= 1
    print(f"open circuit: 503 in {max(times) * 1000:.1f} ms at most")
    assert max(times) < FAST_S, times


def timed_in_background(client, requests):
    """Sends each (method, path) on a thread of its own; returns (answers, threads,
    requests), answers[i] = (status, seconds) once thread i is done."""
    answers = [(None, None)] * len(requests)

    def one(i, method, path):
        t0 = time.monotonic()
        r = client.request(method, path)
        answers[i] = (r.status, time.monotonic() - t0)

    threads = [threading.Thread(target=one, args=(i, m, p), daemon=True)
               for i, (m, p) in enumerate(requests)]
    for t in threads:
        t.start()
    return answers, threads, requests


def assert_reads_refused_fast(client):
    """MariaDB's circuit open: the list and a cancel are refused before any work, and
    a status lookup that misses every cache fails at once (503, not a hang)."""
    unknown = str(uuid.uuid4())
    for method, path, kind in (("GET", "/tasks", "/problems/circuit-open"),
                               ("POST", f"/tasks/{unknown}/cancel", "/problems/circuit-open"),
                               ("GET", f"/tasks/{unknown}", None)):
        t0 = time.monotonic()
        r = client.request(method, path)
        took = time.monotonic() - t0
        assert r.status == 503, (path, r.body)
        assert int(r.headers["Retry-After"]) >= 1
        if kind:
            assert r.json()["type"] == kind, r.body
        print(f"open circuit: {method} {path.split('/')[1]}... 503 in {took * 1000:.1f} ms")
        assert took < FAST_S, (path, took)


def assert_readyz_fast(base, dependency, state):
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(base + "/readyz", timeout=5) as r:
            status, body = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read()
    took = time.monotonic() - t0
    print(f"/readyz with {dependency} {state}: {status} in {took * 1000:.1f} ms")
    doc = json.loads(body)
    assert doc["dependencies"][dependency] == state, doc
    assert status == (200 if state == "up" else 503)
    assert set(doc["breakers"]) == {"mysql", "kafka", "redis"}, doc
    assert took < FAST_S, took
    return doc


def assert_nothing_lost(client, results, tag):
    accepted = [r for r in results if r[1] == 202]
    refused = {r[0] for r in results if r[1] == 503}
    for key, _, _, _, body in accepted:
        client.wait_status(json.loads(body)["id"], {"SUCCEEDED"}, timeout=90)
    # the rows the refused requests left, if any: one query for all of them
    stored = {}
    for hex_id, payload in mysql("SELECT LOWER(HEX(id)), payload FROM tasks "
                                 f"WHERE payload LIKE '%\"{tag}-%'"):
        key = json.loads(payload).get("probe")
        assert key not in stored, f"two tasks for one Idempotency-Key {key}"
        stored[key] = hex_id
    later = [stored[k] for k in refused if k in stored]
    for hex_id in later:  # stored before the answer: the relay publishes it, a worker runs it
        tid = f"{hex_id[:8]}-{hex_id[8:12]}-{hex_id[12:16]}-{hex_id[16:20]}-{hex_id[20:]}"
        client.wait_status(tid, {"SUCCEEDED"}, timeout=90)
    print(f"{len(accepted)} accepted all SUCCEEDED; {len(refused)} refused, "
          f"{len(later)} of them stored and run later")


def recovered(client):
    r = client.post("/tasks", {"type": "noop", "payload": {"after": "recovery"}}, timeout=30)
    assert r.status in (202, 503), r.body
    return r.status == 202


def test_mariadb_hung_fast_503_then_recovery(guarded, worker):
    client, base = guarded, guarded.base
    assert client.post("/tasks", {"type": "noop", "payload": 0}).status == 202
    assert breaker_state(base, "mysql") == 0
    assert_readyz_fast(base, "mysql", "up")
    pid = pid_of("mariadb")
    seen = set()
    load = Load(client, "db")  # requests keep coming, before, during and after
    wait_until(lambda: load.accepted() >= 4, 20, "accepted tasks before the outage")
    os.kill(pid, signal.SIGSTOP)
    try:
        # reads sent before the circuit opens hang on MariaDB: the deadline answers them
        reads = timed_in_background(client, [("GET", "/tasks"),
                                             ("GET", f"/tasks/{uuid.uuid4()}"),
                                             ("POST", f"/tasks/{uuid.uuid4()}/cancel")])
        wait_until(watch_states(base, "mysql", lambda: 1 in seen, seen), 15,
                   "the MariaDB circuit to open", interval=0.05)
        assert_fast_503s(client)
        assert_reads_refused_fast(client)
        assert_readyz_fast(base, "mysql", "down")
        # the next probe goes out (half-open), hangs, and the circuit opens again
        wait_until(watch_states(base, "mysql", lambda: 2 in seen, seen), 20,
                   "a half-open probe", interval=0.05)
        results = load.stop()
        for t in reads[1]:
            t.join(30)
    finally:
        load.stopping.set()  # a failed wait must not leave the load running
        os.kill(pid, signal.SIGCONT)
    for (method, path), (status, took) in zip(reads[2], reads[0]):
        print(f"MariaDB hung: {method} {path.split('/')[1]}... {status} in {took:.3f} s")
        assert status in (200, 404, 503), (path, status)
        assert took < DEADLINE_S + MARGIN_S, (path, took)
    assert_bounded(results, "MariaDB SIGSTOP")
    wait_until(lambda: recovered(client), 30, "POST /tasks to be accepted again", interval=0.2)
    wait_until(lambda: breaker_state(base, "mysql") == 0, 10, "the MariaDB circuit to close")
    assert seen >= {0, 1, 2}, seen
    wait_until(lambda: client.get("/readyz").status == 200, 10, "/readyz to say ready")
    assert_nothing_lost(client, results, "db")


def kafka_ready():
    out = subprocess.run(["kcat", "-b", env("DISPATCH_KAFKA_BROKERS"), "-L", "-m", "2"],
                         capture_output=True, text=True, timeout=10)
    return out.returncode == 0 and " broker 1 at " in out.stdout


def test_broker_killed_fast_503_then_recovery(guarded, worker):
    client, base = guarded, guarded.base
    assert client.post("/tasks", {"type": "noop", "payload": 0}).status == 202
    assert breaker_state(base, "kafka") == 0
    pid = pid_of("kafka")
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        cmdline = [a.decode() for a in f.read().split(b"\0") if a]
    seen = set()
    load = Load(client, "kafka")
    wait_until(lambda: load.accepted() >= 4, 20, "accepted tasks before the outage")
    os.kill(pid, signal.SIGKILL)
    restarted = False
    try:
        wait_until(watch_states(base, "kafka", lambda: 1 in seen, seen), 15,
                   "the Kafka circuit to open", interval=0.05)
        assert_fast_503s(client)
        assert_readyz_fast(base, "kafka", "down")
        wait_until(watch_states(base, "kafka", lambda: 2 in seen, seen), 20,
                   "a half-open probe", interval=0.05)
        # back, with the very command line the harness started it with
        subprocess.run([STACK, "spawn", os.path.realpath(env("DISPATCH_TEST_DIR")), "kafka",
                        "--", *cmdline], check=True, capture_output=True, timeout=30)
        restarted = True
        wait_until(kafka_ready, 90, "the restarted broker", interval=0.5)
        wait_until(lambda: recovered(client), 60, "POST /tasks to be accepted again",
                   interval=0.2)
        results = load.stop()
    finally:
        load.stopping.set()
        if not restarted:
            subprocess.run([STACK, "spawn", os.path.realpath(env("DISPATCH_TEST_DIR")), "kafka",
                            "--", *cmdline], capture_output=True, timeout=30)
            wait_until(kafka_ready, 90, "the restarted broker", interval=0.5)
    assert_bounded(results, "broker SIGKILL and restart")
    wait_until(lambda: breaker_state(base, "kafka") == 0, 10, "the Kafka circuit to close")
    assert seen >= {0, 1, 2}, seen
    wait_until(lambda: client.get("/readyz").status == 200, 20, "/readyz to say ready")
    assert_nothing_lost(client, results, "kafka")
