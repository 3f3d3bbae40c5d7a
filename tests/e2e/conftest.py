"""End-to-end fixtures: the real binaries against the harness's real services.

tests/run.sh starts MariaDB, Redis and Kafka (tests/infra/stack.sh) and exports
their DISPATCH_* settings, DISPATCH_TEST_DIR (holding stack.env) and DISPATCH_BUILD.
These fixtures start dispatch-producer and dispatch-worker on free ports and stop
them after the session.  Every wait is bounded.
"""
import base64
import json
import os
import secrets
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import openapi_check

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def env(name):
    value = os.environ.get(name)
    if not value:
        pytest.exit(f"{name} is not set: run the e2e suite through tests/run.sh (make test)", 2)
    return value


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout, what, interval=0.05):
    """Polls predicate until it returns a truthy value; fails naming what."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)


# the producer under test signs tokens with this; tests forge tokens with it too
JWT_SECRET = secrets.token_urlsafe(48)


class Client:
    def __init__(self, base, token=None):
        self.base = base
        self.token = token

    def as_user(self, token):
        return Client(self.base, token)

    def request(self, method, path, body=None, headers=None, raw=None, timeout=30):
        data = raw
        hdrs = dict(headers or {})
        if self.token and "Authorization" not in hdrs:
            hdrs["Authorization"] = f"Bearer {self.token}"
        if body is not None:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                resp = Response(r.status, r.headers, r.read())
        except urllib.error.HTTPError as e:
            resp = Response(e.code, e.headers, e.read())
        # every response the suite sees must be one the API document allows
        openapi_check.check(method, path, resp.status, resp.headers.get("Content-Type", ""),
                            resp.body)
        return resp

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body, **kw)

    def wait_status(self, task_id, statuses, timeout=20):
        def check():
            r = self.get(f"/tasks/{task_id}")
            return r.json() if r.status == 200 and r.json()["status"] in statuses else None
        return wait_until(check, timeout, f"task {task_id} to reach {statuses}")


class Service:
    """A dispatch binary run in the background with its log in the test dir."""

    def __init__(self, name, args, health_url, extra_env=None):
        self.name = name
        self.log_path = os.path.join(env("DISPATCH_TEST_DIR"), f"e2e-{name}.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT,
                                     env={**os.environ, **(extra_env or {})})
        self.health_url = health_url

    def healthy(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self.proc.returncode}; "
                                 f"log: {self.log_path}\n{self.tail()}")
        try:
            with urllib.request.urlopen(self.health_url, timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def tail(self, n=20):
        with open(self.log_path, "rb") as f:
            return b"".join(f.readlines()[-n:]).decode(errors="replace")

    def stop(self, timeout=20):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"{self.name} did not stop within {timeout}s of SIGTERM")
        self.log.close()
        return self.proc.returncode


def binary(name):
    return os.path.join(env("DISPATCH_BUILD"), "bin", name)


def stack_env_file():
    return os.path.join(env("DISPATCH_TEST_DIR"), "stack.env")


@pytest.fixture(scope="session")
def anonymous():
    """A client of the running producer without credentials."""
    port = free_port()
    # more connections from 127.0.0.1 than the default per-address limit (64):
    # suites release 64..100 requests at once
    svc = Service("producer", [binary("dispatch-producer"), "--config", stack_env_file(),
                               "--http-addr", f"127.0.0.1:{port}",
                               "--http-per-ip-connections", "1024"],
                  f"http://127.0.0.1:{port}/healthz", {"DISPATCH_JWT_SECRET": JWT_SECRET})
    wait_until(svc.healthy, 20, "the producer's /healthz")
    yield Client(f"http://127.0.0.1:{port}")
    assert svc.stop() == 0, f"producer exit code; log:\n{svc.tail()}"


def start_producer(name, *flags, extra_env=None):
    """Another producer of the stack with extra flags (e.g. explicit rate limits):
    (Service, Client).  The caller stops it (Service.stop)."""
    port = free_port()
    svc = Service(name, [binary("dispatch-producer"), "--config", stack_env_file(),
                         "--http-addr", f"127.0.0.1:{port}", *flags],
                  f"http://127.0.0.1:{port}/healthz",
                  {"DISPATCH_JWT_SECRET": JWT_SECRET, **(extra_env or {})})
    try:
        wait_until(svc.healthy, 20, f"{name}'s /healthz")
    except BaseException:
        svc.stop()
        raise
    return svc, Client(f"http://127.0.0.1:{port}")


def new_user(anonymous):
    """Registers a fresh user; returns (email, password, token)."""
    email = f"user-{secrets.token_hex(6)}@example.com"
    password = "correct horse battery " + secrets.token_hex(4)
    r = anonymous.post("/auth/register", {"email": email, "password": password})
    assert r.status == 201, r.body
    r = anonymous.post("/auth/login", {"email": email, "password": password})
    assert r.status == 200, r.body
    return email, password, r.json()["access_token"]


@pytest.fixture(scope="session")
def producer(anonymous):
    """A client signed in as a user of its own."""
    return anonymous.as_user(new_user(anonymous)[2])


class HttpTarget:
    """A local HTTP server the worker's http handler delivers to (the `worker`
    fixture routes HTTP_TYPES here).  /ok answers 200 with JSON, /bad 400, /flaky 503
    to the first delivery of each task and 200 to later ones.  Every request is kept
    in `requests` as (path, headers, parsed body)."""

    HTTP_TYPES = {"e2e.http-ok": "/ok", "e2e.http-bad": "/bad", "e2e.http-flaky": "/flaky"}

    def __init__(self):
        self.requests = []
        self.lock = threading.Lock()
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    doc = json.loads(body)
                except ValueError:
                    doc = None
                with target.lock:
                    target.requests.append((self.path, dict(self.headers), doc))
                    seen = sum(1 for p, _, d in target.requests
                               if p == self.path and d and doc and d.get("id") == doc.get("id"))
                if self.path == "/ok" or (self.path == "/flaky" and seen > 1):
                    self.answer(200, "application/json",
                                json.dumps({"received": doc and doc.get("id"), "seen": seen}))
                elif self.path == "/flaky":
                    self.answer(503, "text/plain", "try again")
                else:
                    self.answer(400, "text/plain", "no such thing")

            def answer(self, code, ctype, text):
                data = text.encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def routes(self):
        return ",".join(f"{t}=http://127.0.0.1:{self.port}{p}" for t, p in self.HTTP_TYPES.items())

    def received(self, task_id):
        with self.lock:
            return [r for r in self.requests if r[2] and r[2].get("id") == task_id]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="session")
def http_target():
    """Also exported as DISPATCH_WORKER_HTTP_ROUTES, so that every worker a test
    starts in the session worker's group delivers the http types the same way."""
    target = HttpTarget()
    os.environ["DISPATCH_WORKER_HTTP_ROUTES"] = target.routes
    yield target
    os.environ.pop("DISPATCH_WORKER_HTTP_ROUTES", None)
    target.close()


@pytest.fixture(scope="session")
def worker(http_target):
    port = free_port()
    svc = Service("worker", [binary("dispatch-worker"), "--config", stack_env_file(),
                             "--worker-http-addr", f"127.0.0.1:{port}"],
                  f"http://127.0.0.1:{port}/healthz",
                  {"DISPATCH_WORKER_HTTP_ROUTES": http_target.routes})
    svc.metrics_url = f"http://127.0.0.1:{port}/metrics"
    wait_until(svc.healthy, 30, "the worker's /healthz")
    yield svc
    assert svc.stop() == 0, f"worker exit code; log:\n{svc.tail()}"


def mysql(sql):
    """Runs one query with the mariadb client as the dispatch user; rows of strings."""
    out = subprocess.run(
        ["mariadb", "--protocol=tcp", "-h", env("DISPATCH_MYSQL_HOST"),
         "-P", env("DISPATCH_MYSQL_PORT"), "-u", env("DISPATCH_MYSQL_USER"),
         f"-p{env('DISPATCH_MYSQL_PASSWORD')}", "-N", "-B", env("DISPATCH_MYSQL_DATABASE"),
         "-e", sql], check=True, capture_output=True, text=True, timeout=30)
    return [line.split("\t") for line in out.stdout.splitlines()]


def topic_messages(topic):
    """Every message of topic, read with kcat as a real consumer: (key, headers, value)."""
    out = subprocess.run(
        ["kcat", "-C", "-b", env("DISPATCH_KAFKA_BROKERS"), "-t", topic, "-o", "beginning",
         "-e", "-q", "-f", "%k\x1f%h\x1f%s\x1e"],
        check=True, capture_output=True, timeout=60)
    msgs = []
    for rec in out.stdout.split(b"\x1e"):
        if not rec.strip():
            continue
        key, headers, value = rec.split(b"\x1f", 2)
        hdrs = dict(h.split("=", 1) for h in headers.decode().split(",") if "=" in h)
        msgs.append((key.decode(), hdrs, value.decode()))
    return msgs


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
