"""Payloads as the client sent them (issue 9 items 6 and 7, SPEC §3.2, §4).

- The payload's bytes come back exactly, whitespace and digits included, through
  POST, GET, the list, cancel, the echo handler's result, the DLQ topic and
  `dispatchctl dlq list --json`; the idempotency fingerprint tells large numbers apart.
- A list of large payloads costs bounded memory on the producer (VmRSS sampled while
  it answers), because views splice the stored text instead of parsing it.
- sleep and fail exist only on a worker configured for them; timeout_ms has a
  ceiling; the http handler's errors name no address.

The gating and ceiling tests run a producer and workers of their own on topics and a
group no other worker of the session reads (as test_custom_handler does)."""
import json
import os
import re
import secrets
import socket
import subprocess
import threading
import time

import pytest

from conftest import (JWT_SECRET, Client, Service, binary, env, free_port, stack_env_file,
                      topic_messages, wait_until)

# Numbers a double cannot hold, a negative zero, escapes, nesting, and spacing
# the client chose: all of it must come back byte for byte.
PAYLOAD = ('{ "big": 12345678901234567891, "huge": 1e400, "neg0": -0.0,\n'
           '  "deep": {"a": [[{"b": [1, {"c": "}\\"{ \\u00e9\\ud83d\\ude00"}]}]], "z": [ ]},'
           ' "small": 1.50 }')


def post_raw(client, body, headers=None):
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    return client.request("POST", "/tasks", raw=body.encode(), headers=hdrs)


def submit_raw(client, type_, payload_text, extra=""):
    r = post_raw(client, f'{{"type": "{type_}", "payload": {payload_text}{extra}}}')
    assert r.status == 202, r.body
    assert payload_text.encode() in r.body, r.body  # the 202's view splices it too
    return r.json()["id"]


def later(seconds):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + seconds))


def test_payload_round_trips_byte_exact(producer, worker):
    raw = PAYLOAD.encode()
    task_id = submit_raw(producer, "echo", PAYLOAD)
    assert raw in producer.get(f"/tasks/{task_id}").body
    done = producer.wait_status(task_id, {"SUCCEEDED", "DEAD"}, timeout=30)
    assert done["status"] == "SUCCEEDED", done
    body = producer.get(f"/tasks/{task_id}").body
    # payload and the echo handler's result, both as sent
    assert body.count(raw) == 2, body
    assert b"1.2345678901234567e+19" not in body
    page = producer.get("/tasks?type=echo&limit=100")
    assert page.status == 200
    assert raw in page.body
    mine = [t for t in page.json()["items"] if t["id"] == task_id]
    assert mine and mine[0]["payload"]["big"] == 12345678901234567891


def test_a_payload_at_the_body_cap_reaches_the_worker(producer, worker):
    """The default body cap is 1 MiB, above Kafka's default record limit (~1 MB): the
    producer and the topics `topics create` makes take records that large, so such a
    task is published (202, not 503 broker-unavailable) and runs."""
    envelope = '{"type": "noop", "payload": ""}'
    text = json.dumps("x" * (1048576 - len(envelope)))
    body = f'{{"type": "noop", "payload": {text}}}'
    assert len(body) == 1048576
    r = post_raw(producer, body)
    assert r.status == 202, r.body[:300]
    done = producer.wait_status(r.json()["id"], {"SUCCEEDED", "DEAD"}, timeout=60)
    assert done["status"] == "SUCCEEDED", {k: done[k] for k in ("status", "last_error")}


def test_payload_round_trips_through_cancel(own_stack):
    producer = own_stack["client"]  # scheduled tasks stay off the session's topics
    task_id = submit_raw(producer, "noop", PAYLOAD, f', "run_at": "{later(3600)}"')
    r = producer.post(f"/tasks/{task_id}/cancel")
    assert r.status == 200, r.body
    assert r.json()["status"] == "CANCELED"
    assert PAYLOAD.encode() in r.body


def test_payload_round_trips_through_the_dlq(producer, worker):
    payload = '{"permanent": true, "times": 9, "id": 12345678901234567891, "x": 1e400}'
    task_id = submit_raw(producer, "fail", payload)
    dead = producer.wait_status(task_id, {"DEAD", "SUCCEEDED"}, timeout=30)
    assert dead["status"] == "DEAD", dead
    assert payload.encode() in producer.get(f"/tasks/{task_id}").body

    def in_dlq():
        return [v for _, _, v in topic_messages(env("DISPATCH_KAFKA_DLQ_TOPIC")) if task_id in v]
    msgs = wait_until(in_dlq, 30, "the task's DLQ record")
    assert payload in msgs[0], msgs[0]
    out = subprocess.run([binary("dispatchctl"), "--config", stack_env_file(), "dlq", "list",
                          "--type", "fail", "--json", "--limit", "1000"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if task_id in line]
    assert lines and payload in lines[0], out.stdout[-2000:]


def test_fingerprint_keeps_every_digit(own_stack):
    producer = own_stack["client"]
    key = "payloads-" + secrets.token_hex(6)
    first = '{"type": "noop", "payload": {"n": 12345678901234567891}, "run_at": "%s"}' % later(3600)
    r = post_raw(producer, first, {"Idempotency-Key": key})
    assert r.status == 202, r.body
    # the same JSON written differently is the same request: replayed
    same = first.replace('"n": 12345678901234567891', '"n" :1.2345678901234567891E19')
    r2 = post_raw(producer, same, {"Idempotency-Key": key})
    assert r2.status == 202 and r2.headers.get("Idempotent-Replayed") == "true", r2.body
    assert r2.body == r.body
    # one digit more or less is another request, though a double cannot tell them apart
    other = first.replace("12345678901234567891", "12345678901234567892")
    r3 = post_raw(producer, other, {"Idempotency-Key": key})
    assert r3.status == 422, r3.body
    assert r3.headers["Content-Type"].startswith("application/problem+json")


def test_timeout_ceiling_is_a_400(own_stack):
    producer = own_stack["client"]
    r = producer.post("/tasks", {"type": "noop", "payload": {}, "timeout_ms": 3600001})
    assert r.status == 400, r.body
    assert r.headers["Content-Type"].startswith("application/problem+json")
    assert "timeout_ms" in r.json()["detail"]
    r = producer.post("/tasks", {"type": "noop", "payload": {}, "timeout_ms": 3600000,
                                 "run_at": later(3600)})
    assert r.status == 202, r.body


# --- memory: a page of large payloads ------------------------------------------------

def vm_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def large_payload(approx_bytes):
    """A tree-heavy payload (many small members): what costs most as a cJSON tree."""
    item = '{"k": 12345, "v": "abcdefgh", "f": 1.5}'
    n = approx_bytes // (len(item) + 2)
    return "[" + ", ".join([item] * n) + "]"


def test_listing_large_payloads_costs_bounded_memory(own_topics):
    """A producer of its own (its pid is ours to watch) on this module's topics: the
    session's worker never sees the large tasks."""
    port = free_port()
    svc = Service("producer-payloads", [binary("dispatch-producer"), "--config", stack_env_file(),
                                        "--http-addr", f"127.0.0.1:{port}"],
                  f"http://127.0.0.1:{port}/healthz",
                  {**own_topics, "DISPATCH_JWT_SECRET": JWT_SECRET,
                   "DISPATCH_OUTBOX_AGE_MS": "3600000"})
    try:
        wait_until(svc.healthy, 20, "the producer's /healthz")
        from conftest import new_user
        client = Client(f"http://127.0.0.1:{port}", new_user(Client(f"http://127.0.0.1:{port}"))[2])
        n, size = 10, 900 * 1000
        payload = large_payload(size)
        for _ in range(n):
            submit_raw(client, "noop", payload)
        before = vm_rss_kib(svc.proc.pid)
        peak = [before]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], vm_rss_kib(svc.proc.pid))
                time.sleep(0.002)
        t = threading.Thread(target=sample, daemon=True)
        t.start()
        try:
            t0 = time.monotonic()
            r = client.get("/tasks?limit=100", timeout=60)
            took = time.monotonic() - t0
        finally:
            stop.set()
            t.join()
        assert r.status == 200
        items = r.json()["items"]
        assert len(items) == n
        assert payload.encode() in r.body
        growth_mib = (peak[0] - before) / 1024
        page_mib = len(r.body) / (1 << 20)
        print(f"list of {n} x {size} B: peak RSS growth {growth_mib:.1f} MiB, "
              f"page {page_mib:.1f} MiB, {took:.2f} s")
        # parsing each payload into a cJSON tree cost ~40 MiB per MiB; the spliced
        # views cost a few copies of the page at most
        assert growth_mib < 8 * page_mib + 32, (growth_mib, page_mib)
    finally:
        assert svc.stop() == 0, svc.tail()


def lru_hits(client):
    r = client.get("/metrics")
    assert r.status == 200
    m = re.search(rb'^cache_requests_total\{layer="lru",result="hit"\} (\S+)$', r.body, re.M)
    return float(m.group(1)) if m else 0.0


def test_lru_byte_budget(own_topics):
    """status_lru_bytes=1 MiB: 64 KiB per shard.  A small view is cached (LRU hits
    grow); a view of ~200 kB is larger than a shard's share, so it never is."""
    port = free_port()
    svc = Service("producer-lru-bytes", [binary("dispatch-producer"), "--config", stack_env_file(),
                                         "--http-addr", f"127.0.0.1:{port}"],
                  f"http://127.0.0.1:{port}/healthz",
                  {**own_topics, "DISPATCH_JWT_SECRET": JWT_SECRET,
                   "DISPATCH_OUTBOX_AGE_MS": "3600000", "DISPATCH_STATUS_LRU_BYTES": "1048576",
                   "DISPATCH_STATUS_LRU_TTL_MS": "60000"})
    try:
        wait_until(svc.healthy, 20, "the producer's /healthz")
        from conftest import new_user
        anon = Client(f"http://127.0.0.1:{port}")
        client = anon.as_user(new_user(anon)[2])
        run_at = f', "run_at": "{later(3600)}"'  # nothing changes them meanwhile
        small = submit_raw(client, "noop", '{"n": 1}', run_at)
        large = submit_raw(client, "noop", large_payload(200 * 1000), run_at)

        def hits_after(task_id):
            before = lru_hits(anon)
            for _ in range(6):
                assert client.get(f"/tasks/{task_id}").status == 200
            return lru_hits(anon) - before
        assert hits_after(large) == 0
        assert hits_after(small) >= 3
    finally:
        assert svc.stop() == 0, svc.tail()


# --- test handlers, ceilings and http errors on a worker of our own ------------------

@pytest.fixture(scope="module")
def own_topics():
    tag = secrets.token_hex(4)
    names = {"DISPATCH_KAFKA_TOPIC": f"payloads.{tag}.tasks",
             "DISPATCH_KAFKA_RETRY_TOPIC": f"payloads.{tag}.retry",
             "DISPATCH_KAFKA_DLQ_TOPIC": f"payloads.{tag}.dlq",
             "DISPATCH_KAFKA_GROUP": f"payloads-{tag}",
             "DISPATCH_KAFKA_PARTITIONS": "2"}
    r = subprocess.run([binary("dispatchctl"), "--config", stack_env_file(), "topics", "create"],
                       env={**os.environ, **names}, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return names


@pytest.fixture(scope="module")
def plain_config():
    """stack.env without the test-handler line: a worker configured as in production."""
    path = os.path.join(env("DISPATCH_TEST_DIR"), "stack-plain.env")
    with open(stack_env_file()) as f:
        lines = [line for line in f if not line.startswith("DISPATCH_WORKER_TEST_HANDLERS=")]
    with open(path, "w") as f:
        f.writelines(lines)
    os.chmod(path, 0o600)
    return path


def closed_port():
    """A port nobody listens on: bound a moment ago, then closed."""
    return free_port()


@pytest.fixture(scope="module")
def own_stack(own_topics, plain_config, producer):
    """A producer and a worker on our topics, the worker without test handlers and
    with one http route to a closed port."""
    api_port, ops_port, dead_port = free_port(), free_port(), closed_port()
    mute = socket.socket()  # accepts (the kernel does) and never answers
    mute.bind(("127.0.0.1", 0))
    mute.listen(16)
    mute_url = f"http://127.0.0.1:{mute.getsockname()[1]}/x"
    saved = os.environ.pop("DISPATCH_WORKER_TEST_HANDLERS", None)
    routes = os.environ.pop("DISPATCH_WORKER_HTTP_ROUTES", None)
    try:
        api = Service("payloads-producer",
                      [binary("dispatch-producer"), "--config", plain_config,
                       "--http-addr", f"127.0.0.1:{api_port}"],
                      f"http://127.0.0.1:{api_port}/healthz",
                      {**own_topics, "DISPATCH_JWT_SECRET": JWT_SECRET,
                       "DISPATCH_OUTBOX_AGE_MS": "3600000"})
        worker = Service("payloads-worker",
                         [binary("dispatch-worker"), "--config", plain_config,
                          "--worker-http-addr", f"127.0.0.1:{ops_port}",
                          "--worker-http-routes",
                          f"e2e.closed=http://127.0.0.1:{dead_port}/x,e2e.mute={mute_url}",
                          "--worker-task-timeout-ms", "5000", "--task-timeout-ms-max", "300",
                          "--worker-backoff-base-ms", "10", "--worker-backoff-cap-ms", "20"],
                         f"http://127.0.0.1:{ops_port}/healthz", own_topics)
    finally:
        if saved is not None:
            os.environ["DISPATCH_WORKER_TEST_HANDLERS"] = saved
        if routes is not None:
            os.environ["DISPATCH_WORKER_HTTP_ROUTES"] = routes
    try:
        wait_until(api.healthy, 20, "our producer")
        wait_until(worker.healthy, 30, "our worker")
        yield {"client": Client(f"http://127.0.0.1:{api_port}", producer.token),
               "worker": worker, "dead_port": dead_port, "topics": own_topics,
               "config": plain_config}
    finally:
        codes = (worker.stop(), api.stop())
        mute.close()
        assert codes == (0, 0), f"exit codes {codes}; worker log:\n{worker.tail()}"


def run_to_end(client, body, timeout=30):
    r = client.post("/tasks", body)
    assert r.status == 202, r.body
    return client.wait_status(r.json()["id"], {"SUCCEEDED", "DEAD"}, timeout=timeout)


def test_sleep_and_fail_are_off_by_default(own_stack):
    client = own_stack["client"]
    for type_, payload in (("sleep", {"ms": 1}), ("fail", {"times": 1})):
        view = run_to_end(client, {"type": type_, "payload": payload, "max_attempts": 3})
        assert view["status"] == "DEAD", view
        assert view["attempts"] == 1, view  # for good at once, as any unknown type
        assert view["last_error"] == f"unknown task type: {type_}", view
    # the plain built-ins are there
    assert run_to_end(client, {"type": "noop", "payload": {}})["status"] == "SUCCEEDED"


def test_http_errors_name_no_address(own_stack):
    client = own_stack["client"]
    view = run_to_end(client, {"type": "e2e.closed", "payload": {"a": 1}, "max_attempts": 2})
    assert view["status"] == "DEAD", view
    err = view["last_error"]
    assert err == "delivery failed: connection refused or unreachable", err
    assert "127.0.0.1" not in err and str(own_stack["dead_port"]) not in err
    assert "http://" not in json.dumps(view)
    # the operator's log has the detail
    log = own_stack["worker"].tail(200)
    assert re.search(rf'"url":"http://127.0.0.1:{own_stack["dead_port"]}/x"', log), log


def test_worker_clamps_timeouts_to_the_ceiling(own_stack):
    """Our worker's ceiling (300 ms) is below what the producer allows (1 h): the
    worker enforces its own.  Without a sleep handler, a route to a socket that
    accepts and never answers stands in for a long task."""
    client = own_stack["client"]
    t0 = time.monotonic()
    view = run_to_end(client, {"type": "e2e.mute", "payload": {}, "timeout_ms": 60000,
                               "max_attempts": 1}, timeout=40)
    took = time.monotonic() - t0
    assert view["status"] == "DEAD", view
    assert "timeout" in view["last_error"], view
    assert took < 20, took  # 300 ms and the bookkeeping, not the task's 60 s
