"""Idempotency-Key on POST /tasks (draft-ietf-httpapi-idempotency-key-header, Stripe's
behaviours): replay, 422, 409, 400, per-user scope, and concurrent duplicates."""
import json
import secrets
import threading

from conftest import env, mysql, new_user, topic_messages


def key():
    return "k-" + secrets.token_hex(8)


def post(client, body, k, raw=None):
    headers = {"Idempotency-Key": k}
    if raw is not None:
        headers["Content-Type"] = "application/json"
        return client.post("/tasks", raw=raw, headers=headers)
    return client.post("/tasks", body, headers=headers)


def tasks_with_id(task_id):
    hex_id = task_id.replace("-", "")
    return int(mysql(f"SELECT COUNT(*) FROM tasks WHERE id = UNHEX('{hex_id}')")[0][0])


def test_same_key_same_body_replays_the_original_response(producer):
    k, body = key(), {"type": "echo", "payload": {"n": 1}}
    first = post(producer, body, k)
    assert first.status == 202
    assert "Idempotent-Replayed" not in first.headers
    again = post(producer, body, k)
    assert again.status == 202
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Location"] == first.headers["Location"]
    assert again.json() == first.json()


def test_replay_creates_no_second_task_and_no_second_message(producer):
    k = key()
    body = {"type": "noop", "payload": {"x": k}}
    ids = {post(producer, body, k).json()["id"] for _ in range(3)}
    assert len(ids) == 1
    task_id = ids.pop()
    # stored as the client sent it (Client.request uses json.dumps' default spacing)
    rows = mysql("SELECT COUNT(*) FROM tasks WHERE payload = " + "'" + json.dumps({"x": k}) + "'")
    assert rows == [["1"]]
    msgs = [m for m in topic_messages(env("DISPATCH_KAFKA_TOPIC")) if json.loads(m[2])["id"] == task_id]
    assert len(msgs) == 1


def test_body_is_compared_canonically(producer):
    k = key()
    a = post(producer, None, k, raw=b'{"type":"noop","payload":{"a":1,"b":[1,2]}}')
    b = post(producer, None, k, raw=b'{ "payload" : { "b":[1, 2], "a":1 }, "type":"noop" }')
    assert a.status == b.status == 202
    assert b.headers["Idempotent-Replayed"] == "true"
    assert a.json()["id"] == b.json()["id"]


def test_same_key_different_body_is_422(producer):
    k = key()
    assert post(producer, {"type": "noop", "payload": 1}, k).status == 202
    r = post(producer, {"type": "noop", "payload": 2}, k)
    assert r.status == 422
    assert r.headers["Content-Type"] == "application/problem+json"


def test_malformed_keys_are_400(producer):
    for bad in ["", '""', "x" * 256, "caf\u00e9", "   "]:
        r = producer.post("/tasks", {"type": "noop", "payload": 1}, headers={"Idempotency-Key": bad})
        assert r.status == 400, (bad, r.body)
    # 255 characters is the most allowed
    assert post(producer, {"type": "noop", "payload": 1}, "y" * 255).status == 202


def test_keys_are_scoped_per_user(anonymous, producer):
    k, body = key(), {"type": "noop", "payload": 1}
    mine = post(producer, body, k)
    theirs = post(anonymous.as_user(new_user(anonymous)[2]), body, k)
    assert mine.status == theirs.status == 202
    assert "Idempotent-Replayed" not in theirs.headers
    assert mine.json()["id"] != theirs.json()["id"]


def test_failed_validation_stores_nothing_under_the_key(producer):
    k = key()
    assert post(producer, {"type": "Bad Type", "payload": 1}, k).status == 400
    r = post(producer, {"type": "noop", "payload": 1}, k)
    assert r.status == 202
    assert "Idempotent-Replayed" not in r.headers


def test_concurrent_duplicates_make_exactly_one_task(producer):
    k, body = key(), {"type": "noop", "payload": {"race": True}}
    results = []
    lock = threading.Lock()
    start = threading.Barrier(64)

    def one():
        start.wait(timeout=30)
        r = post(producer, body, k)  # urllib: a fresh connection per request
        with lock:
            results.append(r)

    threads = [threading.Thread(target=one) for _ in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(results) == 64
    codes = sorted({r.status for r in results})
    assert set(codes) <= {202, 409}, codes
    ids = {r.json()["id"] for r in results if r.status == 202}
    assert len(ids) == 1, ids
    for r in results:
        if r.status == 409:
            assert r.headers["Retry-After"]
    task_id = ids.pop()
    assert tasks_with_id(task_id) == 1
    msgs = [m for m in topic_messages(env("DISPATCH_KAFKA_TOPIC")) if json.loads(m[2])["id"] == task_id]
    assert len(msgs) == 1
    # after the storm, the key replays
    again = post(producer, body, k)
    assert again.status == 202 and again.json()["id"] == task_id
