"""examples/custom_handler: built with the README's command against build/lib, run
as a worker with topics and a consumer group of its own (fed by a producer of its
own), and a "resize" task goes through it end to end."""
import os
import secrets
import subprocess

import pytest

from conftest import (JWT_SECRET, ROOT, Client, Service, binary, env, free_port,
                      stack_env_file, wait_until)

LIBS = ["-lmicrohttpd", "-lrdkafka", "-lmariadb", "-lhiredis", "-lcjson", "-lsodium",
        "-lcurl", "-pthread", "-lm"]


@pytest.fixture(scope="module")
def example_binary():
    build = env("DISPATCH_BUILD")
    lib_dir = os.path.join(build, "lib")
    libs = sorted(os.path.join(lib_dir, f) for f in os.listdir(lib_dir) if f.endswith(".a"))
    out = os.path.join(env("DISPATCH_TEST_DIR"), "custom_handler")
    # `make sanitize` (SANITIZE=1) built the libraries with ASan+UBSan: link them so
    san = (["-fsanitize=address,undefined", "-fno-omit-frame-pointer"]
           if os.environ.get("SANITIZE") == "1" else [])
    cmd = (["cc", "-std=c17", "-Wall", "-Wextra", "-Werror", "-D_GNU_SOURCE", "-Iinternal",
            "-Ipkg"] + san + ["examples/custom_handler/main.c", "-o", out, "-Wl,--start-group"]
           + libs + ["-Wl,--end-group"] + LIBS)
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"build failed:\n{' '.join(cmd)}\n{r.stderr}"
    return out


def test_example_serves_help_and_refuses_bad_config(example_binary):
    r = subprocess.run([example_binary, "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and "--worker-http-routes" in r.stdout
    r = subprocess.run([example_binary, "--worker-http-routes", "resize"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 78, r.stderr
    assert r.stderr.count("\n") == 1 and "--worker-http-routes" in r.stderr, r.stderr


@pytest.fixture(scope="module")
def own_topics():
    """Topics and a group no other worker of the session reads."""
    tag = secrets.token_hex(4)
    names = {"DISPATCH_KAFKA_TOPIC": f"example.{tag}.tasks",
             "DISPATCH_KAFKA_RETRY_TOPIC": f"example.{tag}.retry",
             "DISPATCH_KAFKA_DLQ_TOPIC": f"example.{tag}.dlq",
             "DISPATCH_KAFKA_GROUP": f"example-{tag}",
             "DISPATCH_KAFKA_PARTITIONS": "2"}
    r = subprocess.run([binary("dispatchctl"), "--config", stack_env_file(), "topics", "create"],
                       env={**os.environ, **names}, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return names


def test_resize_task_runs_in_the_embedded_worker(example_binary, own_topics, producer):
    api_port, ops_port = free_port(), free_port()
    api = Service("example-producer",
                  [binary("dispatch-producer"), "--config", stack_env_file(),
                   "--http-addr", f"127.0.0.1:{api_port}"],
                  f"http://127.0.0.1:{api_port}/healthz",
                  # no outbox relay: it must not move other tests' rows to these topics
                  {**own_topics, "DISPATCH_JWT_SECRET": JWT_SECRET,
                   "DISPATCH_OUTBOX_AGE_MS": "3600000"})
    worker = Service("example-worker",
                     [example_binary, "--config", stack_env_file(),
                      "--worker-http-addr", f"127.0.0.1:{ops_port}"],
                     f"http://127.0.0.1:{ops_port}/healthz", own_topics)
    try:
        wait_until(api.healthy, 20, "the example's producer")
        wait_until(worker.healthy, 30, "the example worker")
        client = Client(f"http://127.0.0.1:{api_port}", producer.token)
        payload = {"url": "https://img.example/cat.png", "width": 64, "height": 48}
        r = client.post("/tasks", {"type": "resize", "payload": payload})
        assert r.status == 202, r.body
        view = client.wait_status(r.json()["id"], {"SUCCEEDED", "DEAD"}, timeout=30)
        assert view["status"] == "SUCCEEDED", view
        assert view["result"] == {"thumbnail": "https://img.example/cat.png?w=64&h=48",
                                  "width": 64, "height": 48, "attempt": 1}
        # a payload that does not fit fails for good; the built-ins are still there
        r = client.post("/tasks", {"type": "resize", "payload": {"width": 1}})
        view = client.wait_status(r.json()["id"], {"SUCCEEDED", "DEAD"}, timeout=30)
        assert view["status"] == "DEAD" and view["attempts"] == 1, view
        assert "payload" in view["last_error"]
        r = client.post("/tasks", {"type": "echo", "payload": [1, 2]})
        view = client.wait_status(r.json()["id"], {"SUCCEEDED", "DEAD"}, timeout=30)
        assert view["status"] == "SUCCEEDED" and view["result"] == [1, 2], view
    finally:
        codes = (worker.stop(), api.stop())
    assert codes == (0, 0), f"exit codes {codes}; worker log:\n{worker.tail()}"
