"""Reading and canceling tasks: ETag / If-None-Match on GET /tasks/{id}, the keyset
paginated GET /tasks, and POST /tasks/{id}/cancel.

A worker may be running in the same session (tests/e2e/test_skeleton.py starts one)
and would move tasks submitted over HTTP on.  Tests that need a task to hold still
in a given status therefore write its row directly ("seeded" tasks: no Kafka message,
so no worker ever sees them); tests where statuses do not matter submit over HTTP.
"""
import base64
import json
import re
import secrets
import time
import urllib.parse
import uuid

import pytest

from conftest import mysql, new_user

ETAG = re.compile(r'^"[0-9a-f]{32}"$')
_last_v7 = [0, 0]


def uuid7():
    """A UUIDv7 strictly greater than the previous one (ms timestamp + counter)."""
    ms = int(time.time() * 1000)
    if ms <= _last_v7[0]:
        ms, seq = _last_v7[0], _last_v7[1] + 1
    else:
        seq = 0
    _last_v7[:] = [ms, seq]
    b = (ms.to_bytes(6, "big") + bytes([0x70 | (seq >> 8 & 0x0F), seq & 0xFF])
         + bytes([0x80 | secrets.randbits(6)]) + secrets.token_bytes(7))
    return str(uuid.UUID(bytes=b))


def user_id_of(token):
    payload = token.split(".")[1]
    payload += "=" * (-len(payload) % 4)
    return json.loads(base64.urlsafe_b64decode(payload))["sub"]


def hexid(text):
    return text.replace("-", "")


class User:
    def __init__(self, anonymous):
        _, _, token = new_user(anonymous)
        self.client = anonymous.as_user(token)
        self.id = user_id_of(token)

    def seed(self, status="QUEUED", type_="seeded", n=1):
        """Writes n task rows of this user directly; returns their ids, oldest first."""
        ids = [uuid7() for _ in range(n)]
        finished = "UTC_TIMESTAMP(6)" if status in ("SUCCEEDED", "DEAD", "CANCELED") else "NULL"
        values = ", ".join(
            f"(UNHEX('{hexid(i)}'), UNHEX('{hexid(self.id)}'), '{type_}', '{status}', "
            f"'{{\"n\":{k}}}', UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), {finished})"
            for k, i in enumerate(ids))
        mysql("INSERT INTO tasks (id, user_id, type, status, payload, created_at, updated_at, "
              f"finished_at) VALUES {values}")
        return ids

    def submit(self, n=1, type_="noop"):
        ids = []
        for k in range(n):
            r = self.client.post("/tasks", {"type": type_, "payload": {"k": k}})
            assert r.status == 202, r.body
            ids.append(r.json()["id"])
        return ids

    def list(self, **params):
        return self.client.get("/tasks?" + urllib.parse.urlencode(params) if params else "/tasks")

    def all_pages(self, **params):
        """Follows next_cursor to the end; returns (ids, page sizes)."""
        ids, sizes, cursor = [], [], None
        for _ in range(100):
            query = dict(params, **({"cursor": cursor} if cursor else {}))
            r = self.list(**query)
            assert r.status == 200, r.body
            body = r.json()
            ids += [t["id"] for t in body["items"]]
            sizes.append(len(body["items"]))
            cursor = body["next_cursor"]
            if cursor is None:
                return ids, sizes
        raise AssertionError("next_cursor never became null")


@pytest.fixture
def user(anonymous):
    return User(anonymous)


@pytest.fixture
def other(anonymous):
    return User(anonymous)


# --- GET /tasks/{id}: ETag and If-None-Match ---------------------------------------

def test_get_has_a_strong_etag_that_is_stable_while_the_task_is(user):
    (tid,) = user.seed("QUEUED")
    first = user.client.get(f"/tasks/{tid}")
    second = user.client.get(f"/tasks/{tid}")
    assert first.status == second.status == 200
    assert ETAG.match(first.headers["ETag"]), first.headers["ETag"]
    assert first.headers["ETag"] == second.headers["ETag"]
    assert first.body == second.body


def test_etags_differ_between_tasks(user):
    a, b = user.seed("QUEUED", n=2)
    assert user.client.get(f"/tasks/{a}").headers["ETag"] != \
        user.client.get(f"/tasks/{b}").headers["ETag"]


def test_if_none_match_answers_304_without_a_body(user):
    (tid,) = user.seed("QUEUED")
    etag = user.client.get(f"/tasks/{tid}").headers["ETag"]
    for header in (etag, f'"other", {etag}', f'W/{etag}', f'"a",  W/"b" ,{etag}', "*"):
        r = user.client.get(f"/tasks/{tid}", headers={"If-None-Match": header})
        assert r.status == 304, (header, r.status, r.body)
        assert r.headers["ETag"] == etag
        assert r.body == b""
        assert "Content-Type" not in r.headers


def test_if_none_match_that_does_not_match_answers_200(user):
    (tid,) = user.seed("QUEUED")
    etag = user.client.get(f"/tasks/{tid}").headers["ETag"]
    for header in ('"nope"', etag[:-2] + '"', 'W/"x", "y"', "garbage", etag.strip('"')):
        r = user.client.get(f"/tasks/{tid}", headers={"If-None-Match": header})
        assert r.status == 200, (header, r.status)
        assert r.headers["ETag"] == etag
        assert r.json()["id"] == tid


def test_etag_changes_after_cancel(user):
    (tid,) = user.seed("QUEUED")
    before = user.client.get(f"/tasks/{tid}").headers["ETag"]
    assert user.client.post(f"/tasks/{tid}/cancel").status == 200
    r = user.client.get(f"/tasks/{tid}", headers={"If-None-Match": before})
    assert r.status == 200
    assert r.json()["status"] == "CANCELED"
    assert ETAG.match(r.headers["ETag"]) and r.headers["ETag"] != before
    again = user.client.get(f"/tasks/{tid}", headers={"If-None-Match": r.headers["ETag"]})
    assert again.status == 304


def test_get_keeps_400_and_404_with_conditions(user, other):
    (tid,) = user.seed("QUEUED")
    r = user.client.get("/tasks/not-a-uuid", headers={"If-None-Match": "*"})
    assert r.status == 400
    r = user.client.get(f"/tasks/{uuid7()}", headers={"If-None-Match": "*"})
    assert r.status == 404
    # another user's task is 404 whatever the condition: ids cannot be probed
    etag = user.client.get(f"/tasks/{tid}").headers["ETag"]
    for header in (None, "*", etag):
        r = other.client.get(f"/tasks/{tid}", headers={"If-None-Match": header} if header else {})
        assert r.status == 404, header
        assert "ETag" not in r.headers


# --- GET /tasks: listing -------------------------------------------------------------

def test_list_is_newest_first_with_a_null_cursor_at_the_end(user):
    ids = user.submit(4)
    r = user.list()
    assert r.status == 200
    body = r.json()
    assert [t["id"] for t in body["items"]] == ids[::-1]
    assert body["next_cursor"] is None
    created = [t["created_at"] for t in body["items"]]
    assert created == sorted(created, reverse=True)
    assert set(body["items"][0]) >= {"id", "type", "status", "payload", "created_at"}


def test_list_of_a_new_user_is_empty(user):
    r = user.list()
    assert r.status == 200
    assert r.json() == {"items": [], "next_cursor": None}


def test_pagination_walks_every_task_once(user):
    ids = user.submit(7)
    got, sizes = user.all_pages(limit=3)
    assert got == ids[::-1]
    assert sizes == [3, 3, 1]
    assert len(set(got)) == len(got)


def test_pagination_of_an_exact_multiple_ends_without_an_empty_page(user):
    ids = user.seed("QUEUED", n=6)
    got, sizes = user.all_pages(limit=3)
    assert got == ids[::-1]
    assert sizes == [3, 3]
    got, sizes = user.all_pages(limit=6)
    assert sizes == [6]


def test_default_limit_is_20_and_100_is_allowed(user):
    ids = user.seed("QUEUED", n=25)
    body = user.list().json()
    assert [t["id"] for t in body["items"]] == ids[::-1][:20]
    assert body["next_cursor"]
    rest = user.list(cursor=body["next_cursor"]).json()
    assert [t["id"] for t in rest["items"]] == ids[::-1][20:]
    assert rest["next_cursor"] is None
    body = user.list(limit=100).json()
    assert len(body["items"]) == 25 and body["next_cursor"] is None


def test_tasks_submitted_between_pages_do_not_shift_later_pages(user):
    ids = user.seed("QUEUED", n=5)
    first = user.list(limit=2).json()
    user.seed("QUEUED", n=3)  # newer than every listed task
    got, _ = user.all_pages(limit=2, cursor=first["next_cursor"])
    assert [t["id"] for t in first["items"]] + got == ids[::-1]


def test_filter_by_status_and_type(user):
    queued = user.seed("QUEUED", "alpha.one", n=2)
    done = user.seed("SUCCEEDED", "alpha.one", n=2)
    dead = user.seed("DEAD", "beta_two", n=1)
    canceled = user.seed("CANCELED", "beta_two", n=3)

    def ids(**params):
        return user.all_pages(**params)[0]

    assert ids(status="QUEUED") == queued[::-1]
    assert ids(status="SUCCEEDED") == done[::-1]
    assert ids(status="DEAD") == dead
    assert ids(status="CANCELED", limit=2) == canceled[::-1]
    assert ids(status="RUNNING") == []
    assert ids(type="alpha.one") == (queued + done)[::-1]
    assert ids(type="beta_two", limit=1) == (dead + canceled)[::-1]
    assert ids(type="alpha.one", status="SUCCEEDED") == done[::-1]
    assert ids(type="nothing-like-it") == []
    for t in user.list(status="CANCELED").json()["items"]:
        assert t["status"] == "CANCELED" and t["type"] == "beta_two"


def test_list_holds_only_the_callers_tasks(user, other):
    mine = user.seed("QUEUED", n=3)
    theirs = other.seed("QUEUED", n=3) + other.submit(1)
    got, _ = user.all_pages(limit=2)
    assert got == mine[::-1]
    got, _ = other.all_pages()
    assert set(got) == set(theirs)
    # another user's cursor only says "older than": it reveals nothing of theirs
    cursor = other.list(limit=1).json()["next_cursor"]
    got, _ = user.all_pages(cursor=cursor)
    assert not set(got) & set(theirs)


@pytest.mark.parametrize("query, name", [
    ("limit=0", "limit"), ("limit=101", "limit"), ("limit=-1", "limit"), ("limit=abc", "limit"),
    ("limit=1.5", "limit"), ("limit=", "limit"), ("limit=%2B5", "limit"), ("limit=+5", "limit"),
    ("limit=99999999999999999999", "limit"), ("limit", "limit"),
    ("status=queued", "status"), ("status=FOO", "status"), ("status=", "status"),
    ("type=Bad", "type"), ("type=-x", "type"), ("type=" + "a" * 65, "type"), ("type=a%20b", "type"),
    ("cursor=garbage", "cursor"), ("cursor=", "cursor"),
    ("cursor=AAAAAAAAAAAAAAAAAAAAA", "cursor"),    # 21 characters
    ("cursor=AAAAAAAAAAAAAAAAAAAAAB", "cursor"),   # unused low bits set: not canonical
    ("cursor=AAAAAAAAAAAAAAAAAAAA%2BA", "cursor"),  # '+' is not base64url
    ("cursor=AAAAAAAAAAAAAAAAAAAAAA%3D%3D", "cursor"),  # padded
    ("limit=5&limit=6", "limit"), ("sort=asc", "sort"),
])
def test_bad_query_parameters_are_400_naming_them(user, query, name):
    r = user.client.get("/tasks?" + query)
    assert r.status == 400, (query, r.status, r.body)
    problem = r.json()
    assert problem["type"] == "/problems/validation"
    assert f"'{name}'" in problem["detail"], problem["detail"]


def test_a_valid_cursor_of_no_task_is_accepted(user):
    user.seed("QUEUED", n=2)
    r = user.list(cursor="AAAAAAAAAAAAAAAAAAAAAA")  # 16 zero bytes: older than everything
    assert r.status == 200 and r.json() == {"items": [], "next_cursor": None}
    r = user.list(cursor="_____________________w")  # all ones: newer than everything
    assert r.status == 200 and len(r.json()["items"]) == 2


def test_list_and_cancel_need_a_token(anonymous):
    assert anonymous.get("/tasks").status == 401
    assert anonymous.post(f"/tasks/{uuid7()}/cancel").status == 401


def test_methods_and_routes_around_the_new_paths(user):
    assert user.client.request("DELETE", "/tasks").status == 405
    assert user.client.get(f"/tasks/{uuid7()}/cancel").status == 405
    assert user.client.post(f"/tasks/{uuid7()}/cancel/x").status == 404
    # POST /tasks still works next to GET /tasks
    assert user.client.post("/tasks", {"type": "noop", "payload": None}).status == 202


# --- POST /tasks/{id}/cancel -----------------------------------------------------------

@pytest.mark.parametrize("status", ["PENDING", "QUEUED", "RETRYING"])
def test_cancel_of_a_task_not_started_is_200_canceled(user, status):
    (tid,) = user.seed(status)
    before = user.client.get(f"/tasks/{tid}").json()
    r = user.client.post(f"/tasks/{tid}/cancel")
    assert r.status == 200, r.body
    view = r.json()
    assert view["id"] == tid and view["status"] == "CANCELED"
    assert view["finished_at"] is not None
    assert view["updated_at"] == view["finished_at"]
    assert view["updated_at"] > before["updated_at"]
    assert user.client.get(f"/tasks/{tid}").json() == view
    rows = mysql(f"SELECT status, finished_at IS NOT NULL FROM tasks WHERE id = UNHEX('{hexid(tid)}')")
    assert rows == [["CANCELED", "1"]]


def test_cancel_of_a_freshly_submitted_task(user):
    (tid,) = user.submit(1, type_="e2e.cancel-me")
    r = user.client.post(f"/tasks/{tid}/cancel")
    if r.status == 409:
        # only when a worker of this session claimed it first (see the module doc)
        pytest.skip(f"a worker took the task before the cancel: {r.json()['detail']}")
    assert r.status == 200, r.body
    assert r.json()["status"] == "CANCELED"
    assert user.client.get(f"/tasks/{tid}").json()["status"] == "CANCELED"


def test_second_cancel_is_409(user):
    (tid,) = user.seed("QUEUED")
    assert user.client.post(f"/tasks/{tid}/cancel").status == 200
    r = user.client.post(f"/tasks/{tid}/cancel")
    assert r.status == 409
    problem = r.json()
    assert problem["type"] == "/problems/not-cancelable"
    assert "CANCELED" in problem["detail"]


@pytest.mark.parametrize("status", ["RUNNING", "SUCCEEDED", "DEAD", "CANCELED"])
def test_cancel_of_a_running_or_finished_task_is_409_and_changes_nothing(user, status):
    (tid,) = user.seed(status)
    before = user.client.get(f"/tasks/{tid}")
    r = user.client.post(f"/tasks/{tid}/cancel")
    assert r.status == 409, r.body
    assert status in r.json()["detail"]
    after = user.client.get(f"/tasks/{tid}")
    assert after.body == before.body
    assert after.headers["ETag"] == before.headers["ETag"]


def test_cancel_of_another_users_or_an_unknown_task_is_404(user, other):
    (tid,) = user.seed("QUEUED")
    r = other.client.post(f"/tasks/{tid}/cancel")
    assert r.status == 404
    assert r.json()["type"] == "/problems/not-found"
    assert user.client.get(f"/tasks/{tid}").json()["status"] == "QUEUED"
    assert user.client.post(f"/tasks/{uuid7()}/cancel").status == 404
    assert user.client.post("/tasks/not-a-uuid/cancel").status == 400


def test_canceled_tasks_show_in_the_list_filter(user):
    ids = user.seed("QUEUED", n=3)
    assert user.client.post(f"/tasks/{ids[1]}/cancel").status == 200
    assert user.all_pages(status="CANCELED")[0] == [ids[1]]
    assert user.all_pages(status="QUEUED")[0] == [ids[2], ids[0]]
