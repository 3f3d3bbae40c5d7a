"""Accounts and access tokens: register, login, and every forged token refused."""
import hashlib
import hmac
import json
import secrets
import time

from conftest import JWT_SECRET, b64url, new_user


def forge(header, claims, key=JWT_SECRET.encode(), signature=None):
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    if signature is None:
        signature = b64url(hmac.new(key, signing_input.encode(), hashlib.sha256).digest())
    return f"{signing_input}.{signature}"


def claims_for(sub, **over):
    now = int(time.time())
    c = {"iss": "dispatch", "sub": sub, "iat": now, "nbf": now, "exp": now + 600}
    c.update(over)
    return c


def user_id_of(anonymous, token):
    # the token's subject is the user id: the tests forge tokens for that user
    payload = token.split(".")[1]
    payload += "=" * (-len(payload) % 4)
    import base64
    return json.loads(base64.urlsafe_b64decode(payload))["sub"]


def test_register_returns_201_with_id_email_created_at(anonymous):
    email = f"New-{secrets.token_hex(4)}@Example.com"
    r = anonymous.post("/auth/register", {"email": email, "password": "a" * 12})
    assert r.status == 201
    body = r.json()
    assert body["email"] == email.lower()
    assert body["id"] and body["created_at"]


def test_register_conflicts_and_validation(anonymous):
    email, password, _ = new_user(anonymous)
    assert anonymous.post("/auth/register", {"email": email, "password": password}).status == 409
    assert anonymous.post("/auth/register", {"email": email.upper(), "password": password}).status == 409
    for body in ({"email": "not-an-email", "password": "a" * 12},
                 {"email": "x@example.com", "password": "a" * 11},
                 {"email": "x@example.com", "password": "a" * 129},
                 {"email": "x@example.com"},
                 {"password": "a" * 12}):
        r = anonymous.post("/auth/register", body)
        assert r.status == 400, (body, r.body)
    # 12 characters of multi-byte UTF-8 count as 12, not as bytes
    r = anonymous.post("/auth/register", {"email": f"u-{secrets.token_hex(4)}@example.com",
                                          "password": "\u00e9" * 12})
    assert r.status == 201


def test_login_gives_a_bearer_token(anonymous):
    email, password, _ = new_user(anonymous)
    r = anonymous.post("/auth/login", {"email": email, "password": password})
    assert r.status == 200
    body = r.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] > 0
    assert body["access_token"].count(".") == 2


def test_unknown_email_and_wrong_password_look_alike(anonymous):
    email, _, _ = new_user(anonymous)
    wrong = anonymous.post("/auth/login", {"email": email, "password": "not the password!"})
    unknown = anonymous.post("/auth/login", {"email": "nobody-" + email,
                                             "password": "not the password!"})
    assert wrong.status == unknown.status == 401
    assert wrong.json()["detail"] == unknown.json()["detail"]
    assert wrong.json()["type"] == unknown.json()["type"]


def test_tasks_need_a_token(anonymous):
    r = anonymous.post("/tasks", {"type": "noop", "payload": 1})
    assert r.status == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert anonymous.get("/tasks/01a20128-0325-7488-bcdd-e8b048b1cd64").status == 401


def test_forged_tokens_are_401(anonymous, producer):
    sub = user_id_of(anonymous, producer.token)
    hs256 = {"alg": "HS256", "typ": "JWT"}
    now = int(time.time())
    good = forge(hs256, claims_for(sub))
    assert anonymous.as_user(good).post("/tasks", {"type": "noop", "payload": 1}).status == 202
    forged = {
        "alg none": forge({"alg": "none", "typ": "JWT"}, claims_for(sub), signature=""),
        "alg HS512": forge({"alg": "HS512", "typ": "JWT"}, claims_for(sub)),
        "wrong key": forge(hs256, claims_for(sub), key=b"k" * 40),
        "tampered": good.split(".")[0] + "." + b64url(json.dumps(claims_for(sub, exp=now + 99999)).encode()) + "." + good.split(".")[2],
        "expired": forge(hs256, claims_for(sub, iat=now - 900, nbf=now - 900, exp=now - 300)),
        "not yet valid": forge(hs256, claims_for(sub, nbf=now + 300, exp=now + 900)),
        "issued in the future": forge(hs256, claims_for(sub, iat=now + 300)),
        "other issuer": forge(hs256, claims_for(sub, iss="evil")),
        "garbage": "not.a.token",
    }
    for name, token in forged.items():
        r = anonymous.as_user(token).post("/tasks", {"type": "noop", "payload": 1})
        assert r.status == 401, (name, r.body)


def test_another_users_task_is_404(anonymous, producer):
    view = producer.post("/tasks", {"type": "noop", "payload": 1}).json()
    other = anonymous.as_user(new_user(anonymous)[2])
    r = other.get(f"/tasks/{view['id']}")
    assert r.status == 404
    assert producer.get(f"/tasks/{view['id']}").status == 200
