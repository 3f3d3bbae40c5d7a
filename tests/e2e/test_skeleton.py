"""The walking skeleton over HTTP: POST /tasks -> Kafka -> worker -> SUCCEEDED."""
import json
import re
import subprocess
import uuid

from conftest import binary, env, mysql, stack_env_file, topic_messages

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def submit(producer, body, headers=None):
    r = producer.post("/tasks", body, headers=headers)
    assert r.status == 202, r.body
    view = r.json()
    assert r.headers["Location"] == f"/tasks/{view['id']}"
    return view


def test_healthz(producer):
    r = producer.get("/healthz")
    assert r.status == 200
    assert r.headers["X-Request-Id"]


def test_readyz_reports_each_dependency(producer):
    r = producer.get("/readyz")
    assert r.status == 200
    assert r.json()["dependencies"] == {"mysql": "up", "kafka": "up"}


def test_echo_task_runs_to_succeeded_with_its_result(producer, worker):
    payload = {"hello": "world", "n": [1, 2, 3], "unicode": "h\u00e9llo"}
    view = submit(producer, {"type": "echo", "payload": payload})
    assert view["status"] == "QUEUED"
    assert view["attempts"] == 0
    assert uuid.UUID(view["id"]).version == 7
    done = producer.wait_status(view["id"], {"SUCCEEDED"})
    assert done["result"] == payload
    assert done["attempts"] == 1
    assert done["started_at"] and done["finished_at"]
    assert done["finished_at"] >= done["started_at"] >= done["created_at"]


def test_noop_and_sleep_succeed(producer, worker):
    a = submit(producer, {"type": "noop", "payload": None})
    b = submit(producer, {"type": "sleep", "payload": {"ms": 50}})
    assert producer.wait_status(a["id"], {"SUCCEEDED"})["attempts"] == 1
    assert producer.wait_status(b["id"], {"SUCCEEDED"})["attempts"] == 1


def test_permanent_failure_ends_dead_with_last_error(producer, worker):
    view = submit(producer, {"type": "fail", "payload": {"times": 5, "permanent": True}})
    dead = producer.wait_status(view["id"], {"DEAD"})
    assert dead["last_error"]
    assert dead["attempts"] == 1


def test_row_id_is_binary_16(producer):
    view = submit(producer, {"type": "noop", "payload": 1})
    hex_id = view["id"].replace("-", "")
    rows = mysql(f"SELECT LENGTH(id), LOWER(HEX(id)) FROM tasks WHERE id = UNHEX('{hex_id}')")
    assert rows == [["16", hex_id]]


def test_message_is_on_the_topic_with_trace_context(producer):
    view = submit(producer, {"type": "echo", "payload": {"x": 1}},
                  headers={"traceparent": TRACEPARENT})
    msgs = [m for m in topic_messages(env("DISPATCH_KAFKA_TOPIC")) if m[0] == view["id"]]
    assert len(msgs) == 1, "exactly one message per accepted task"
    key, headers, value = msgs[0]
    assert headers.get("traceparent") == TRACEPARENT
    body = json.loads(value)
    assert body["id"] == view["id"]
    assert body["type"] == "echo"
    assert body["payload"] == {"x": 1}


def test_ordering_key_is_the_kafka_key(producer):
    view = submit(producer, {"type": "noop", "payload": 1, "ordering_key": "customer-7"})
    msgs = topic_messages(env("DISPATCH_KAFKA_TOPIC"))
    mine = [m for m in msgs if json.loads(m[2])["id"] == view["id"]]
    assert [m[0] for m in mine] == ["customer-7"]


def test_request_id_is_echoed_or_generated(producer):
    r = producer.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert r.headers["X-Request-Id"] == "abc-123"
    r = producer.get("/tasks/not-a-uuid")
    assert r.headers["X-Request-Id"] and r.headers["X-Request-Id"] != "abc-123"
    assert r.json()["request_id"] == r.headers["X-Request-Id"]


def test_unknown_task_is_404_problem(producer):
    r = producer.get(f"/tasks/{uuid.uuid4()}")
    assert r.status == 404
    assert r.headers["Content-Type"] == "application/problem+json"
    p = r.json()
    assert p["status"] == 404 and p["type"] and p["title"] and p["detail"]


def test_malformed_id_is_400(producer):
    assert producer.get("/tasks/1234").status == 400


def test_validation_errors_name_the_field(producer):
    cases = [
        ({"payload": 1}, "type"),
        ({"type": "Upper", "payload": 1}, "type"),
        ({"type": "echo"}, "payload"),
        ({"type": "echo", "payload": 1, "max_attempts": 101}, "max_attempts"),
        ({"type": "echo", "payload": 1, "run_at": "yesterday"}, "run_at"),
        ({"type": "echo", "payload": 1, "surprise": True}, "surprise"),
    ]
    for body, field in cases:
        r = producer.post("/tasks", body)
        assert r.status == 400, (body, r.body)
        assert field in r.json()["detail"], (body, r.json())


def test_bad_bodies(producer):
    assert producer.post("/tasks", raw=b"{nope", headers={"Content-Type": "application/json"}).status == 400
    assert producer.post("/tasks", raw=b"[]", headers={"Content-Type": "application/json"}).status == 400
    assert producer.post("/tasks", raw=b'{"type":"echo","payload":1}',
                         headers={"Content-Type": "text/plain"}).status == 415
    deep = b'{"type":"echo","payload":' + b"[" * 100 + b"]" * 100 + b"}"
    assert producer.post("/tasks", raw=deep, headers={"Content-Type": "application/json"}).status == 400
    big = b'{"type":"echo","payload":"' + b"x" * (1024 * 1024 + 1) + b'"}'
    assert producer.post("/tasks", raw=big, headers={"Content-Type": "application/json"}).status == 413


def test_wrong_method_is_405_and_unknown_route_404(producer):
    assert producer.request("DELETE", "/tasks").status == 405
    assert producer.get("/nowhere").status == 404


def test_dispatchctl_task_get_prints_the_view(producer):
    view = submit(producer, {"type": "noop", "payload": {"a": 1}})
    out = subprocess.run([binary("dispatchctl"), "--config", stack_env_file(), "task", "get",
                          view["id"]], capture_output=True, text=True, timeout=30, check=True)
    got = json.loads(out.stdout)
    assert got["id"] == view["id"] and got["payload"] == {"a": 1}


def test_invalid_configuration_exits_78_with_one_line():
    out = subprocess.run([binary("dispatch-producer"), "--http-threads", "0"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 78
    assert len(out.stderr.strip().splitlines()) == 1
    assert "http" in out.stderr


def test_check_config_redacts_secrets():
    out = subprocess.run([binary("dispatch-producer"), "--config", stack_env_file(),
                          "--check-config"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    assert env("DISPATCH_MYSQL_PASSWORD") not in out.stdout
    assert re.search(r"^DISPATCH_MYSQL_PASSWORD=<redacted>$", out.stdout, re.M)
