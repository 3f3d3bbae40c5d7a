"""Hostile input: the service answers 4xx, never crashes, never hangs other clients."""
import socket
import time

import pytest

from conftest import JWT_SECRET, Client, Service, binary, free_port, stack_env_file, wait_until


def raw(port, data, timeout=5):
    """Sends raw bytes, returns what the server answered (b'' if it just closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks):
                    break
        except (socket.timeout, ConnectionResetError):
            pass
        return b"".join(chunks)


def status_of(reply):
    return int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.") else None


@pytest.fixture(scope="module")
def strict():
    """A producer with a 2 s idle timeout, so slow clients are cut off quickly."""
    port = free_port()
    svc = Service("producer-hostile", [binary("dispatch-producer"), "--config", stack_env_file(),
                                       "--http-addr", f"127.0.0.1:{port}", "--http-timeout-s", "2"],
                  f"http://127.0.0.1:{port}/healthz", {"DISPATCH_JWT_SECRET": JWT_SECRET})
    try:
        wait_until(svc.healthy, 20, "the hostile-test producer's /healthz")
        yield port, Client(f"http://127.0.0.1:{port}"), svc
    finally:
        assert svc.stop() == 0, svc.tail()


def test_huge_headers_are_refused_and_the_service_lives_on(strict):
    port, client, svc = strict
    reply = raw(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n")
    assert status_of(reply) in (None, 400, 413, 431), reply[:100]
    reply = raw(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" +
                b"".join(b"X-H%d: v\r\n" % i for i in range(5000)) + b"\r\n")
    assert status_of(reply) in (None, 400, 413, 431), reply[:100]
    assert client.get("/healthz").status == 200
    assert svc.proc.poll() is None


def test_garbage_request_lines_get_400(strict):
    port, client, svc = strict
    for junk in (b"\x00\x01\x02\r\n\r\n", b"HELLO\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
                 b"GET /healthz HTTP/1.1\r\nContent-Length: -5\r\n\r\n"):
        reply = raw(port, junk)
        assert status_of(reply) in (None, 400, 404, 405, 413, 505), (junk, reply[:100])
    assert client.get("/healthz").status == 200


def test_slow_clients_do_not_hold_up_others(strict):
    port, client, svc = strict
    slow = []
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"POST /tasks HTTP/1.1\r\nHost: x\r\nContent-Le")  # and then nothing
        slow.append(s)
    try:
        started = time.monotonic()
        for _ in range(20):
            assert client.get("/healthz").status == 200
        assert time.monotonic() - started < 2, "other clients were held up"
        # the idle timeout (2 s) closes every stalled connection (perhaps after an
        # error reply): reading must reach end-of-stream well before our deadline
        deadline = time.monotonic() + 10
        for s in slow:
            while True:
                s.settimeout(max(0.1, deadline - time.monotonic()))
                try:
                    if s.recv(1024) == b"":
                        break
                except ConnectionResetError:
                    break
                except socket.timeout:
                    pytest.fail("a stalled connection was not closed by the idle timeout")
    finally:
        for s in slow:
            s.close()
    assert svc.proc.poll() is None


def test_a_body_that_never_finishes_is_cut_off(strict):
    port, client, svc = strict
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"POST /tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 1000\r\n\r\n{\"type\":")
        started = time.monotonic()
        data = s.recv(1024)
        while data:
            data = s.recv(1024)
        assert time.monotonic() - started < 8, "the stalled upload was not timed out"
    assert client.get("/healthz").status == 200


def test_bad_json_of_every_kind_is_400(anonymous, producer):
    bodies = [b"{", b"{}}", b'{"type":"echo","payload":1,}', b"\xff\xfe",
              b'{"type":"echo","payload":"\xed\xa0\x80"}', b'{"type":"echo","payload":"\\ud800"}',
              b'{"type":"echo","payload":1,"type":"noop"}', b'{"type":"echo","payload":NaN}',
              b"[" * 10000]
    for body in bodies:
        r = producer.post("/tasks", raw=body, headers={"Content-Type": "application/json"})
        assert r.status == 400, (body[:40], r.status, r.body[:200])
    # and nothing of it poisoned a batch: a good task still goes through
    assert producer.post("/tasks", {"type": "noop", "payload": 1}).status == 202
