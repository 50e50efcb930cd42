"""Users and sessions (seed 002; rules in cloud/sessions.py): the first user
registers as admin, admins add the others with a role, sessions expire and
refresh, browsers use a cookie with a CSRF token, scripts a Bearer token."""

from __future__ import annotations

import time

import pytest

from cloud import sessions
from cloud.appkeys import DB
from cloud.models import Session, User
from cloud.routes import API
from cloud.store import keys as key_store

ADA = {"email": "Ada@Example.com", "password": "correct horse"}


class Clock:
    """The cloud's clock, moved by the test (Config.clock)."""

    def __init__(self):
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def cloud_config(cloud_config, clock):
    cloud_config.password_cost = 4  # bcrypt's cheapest: these tests log in often (the default's test is below)
    cloud_config.clock = clock
    return cloud_config


async def _call(api, method, path, body=None, expect=200, token=None, headers=None):
    """A request without an API key: as a browser (the client's cookie jar)
    or a script (`token` as Bearer)."""
    hdrs = dict(headers or {})
    if token:
        hdrs["Authorization"] = f"Bearer {token}"
    resp = await api.client.request(method, API + path, json=body, headers=hdrs)
    text = await resp.text()
    assert resp.status == expect, f"{method} {path}: {resp.status} {text}"
    if resp.status >= 400:
        assert resp.content_type == "application/problem+json"
    return (await resp.json(content_type=None)) if text else None, resp


def _cookie(api, name):
    morsel = api.client.session.cookie_jar.filter_cookies(api.client.make_url("/")).get(name)
    return morsel.value if morsel else None


async def _register_ada(api):
    body, resp = await _call(api, "POST", "/auth/register", ADA, expect=201)
    return body, resp


async def _login(api, email, password, expect=200):
    api.client.session.cookie_jar.clear()
    body, _ = await _call(api, "POST", "/auth/login", {"email": email, "password": password}, expect=expect)
    return body


async def test_the_first_user_to_register_is_admin_and_registration_then_closes(api):
    assert (await _call(api, "GET", "/auth/status"))[0] == {"has_users": False}
    body, resp = await _register_ada(api)
    assert body["user"]["email"] == "ada@example.com" and body["user"]["role"] == "admin"
    assert body["access_token"].startswith("ffs_") and body["csrf_token"]
    assert body["expires_at"] < body["refresh_expires_at"]
    session = resp.cookies[sessions.SESSION_COOKIE]
    assert session.value == body["access_token"]
    assert session["httponly"] and session["samesite"] == "Strict" and session["path"] == "/"
    csrf = resp.cookies[sessions.CSRF_COOKIE]
    assert csrf.value == body["csrf_token"] and not csrf["httponly"] and csrf["samesite"] == "Strict"
    assert (await _call(api, "GET", "/auth/status"))[0] == {"has_users": True}
    api.client.session.cookie_jar.clear()
    problem, _ = await _call(api, "POST", "/auth/register", {"email": "eve@example.com", "password": "x" * 12},
                             expect=403)
    assert problem["detail"] == "registration is closed: ask an admin"
    assert api.app[DB].call(lambda: User.select().count()) == 1
    # only the hash is stored: bcrypt
    stored = api.app[DB].call(lambda: User.get().password_hash)
    assert stored.startswith("$2b$04$") and "correct horse" not in stored


def test_passwords_are_hashed_with_bcrypt_cost_12_by_default():
    from cloud.config import Config

    hashed = sessions.hash_password(b"correct horse", Config().password_cost)
    assert hashed.startswith("$2b$12$")
    assert sessions.check_password("correct horse", hashed) and not sessions.check_password("wrong horse", hashed)


async def test_bad_registrations_name_the_field(api):
    for body, pointer in [({"email": "nobody", "password": "long enough"}, "/email"),
                          ({"email": "a@b.c", "password": "short"}, "/password"),
                          ({"email": "a@b.c", "password": "é" * 40}, "/password"),  # 80 bytes: past bcrypt's 72
                          ({"email": "a@b.c"}, "/password"),
                          ({"email": "a@b.c", "password": "long enough", "role": "admin"}, "/role")]:
        problem, _ = await _call(api, "POST", "/auth/register", body, expect=422)
        assert [p["pointer"] for p in problem["errors"]] == [pointer], problem
    assert (await _call(api, "GET", "/auth/status"))[0] == {"has_users": False}


async def test_login_with_wrong_credentials_is_401_and_says_no_more(api):
    await _register_ada(api)
    wrong = await _login(api, "ada@example.com", "wrong horse", expect=401)
    unknown = await _login(api, "bob@example.com", "correct horse", expect=401)
    assert wrong["detail"] == unknown["detail"] == "wrong email or password"
    body = await _login(api, "ADA@example.com ", "correct horse")
    assert body["user"]["email"] == "ada@example.com"


async def test_a_cookie_session_reads_and_changes_only_with_the_csrf_token(api, seed_flow):
    body, _ = await _register_ada(api)
    me, _ = await _call(api, "GET", "/auth/me")
    assert me["user"]["email"] == "ada@example.com" and me["expires_at"] == body["expires_at"]
    problem, _ = await _call(api, "POST", "/flows", seed_flow(), expect=403)
    assert problem["detail"].startswith("missing or wrong X-CSRF-Token")
    await _call(api, "POST", "/flows", seed_flow(), expect=403, headers={sessions.CSRF_HEADER: "nope"})
    # a token that matches a planted cookie but not the session is refused too
    api.client.session.cookie_jar.update_cookies({sessions.CSRF_COOKIE: "planted"})
    await _call(api, "POST", "/flows", seed_flow(), expect=403, headers={sessions.CSRF_HEADER: "planted"})
    api.client.session.cookie_jar.update_cookies({sessions.CSRF_COOKIE: body["csrf_token"]})
    flow, _ = await _call(api, "POST", "/flows", seed_flow(), expect=201,
                          headers={sessions.CSRF_HEADER: _cookie(api, sessions.CSRF_COOKIE)})
    await _call(api, "DELETE", f"/flows/{flow['id']}", expect=403)
    await _call(api, "DELETE", f"/flows/{flow['id']}", expect=204, headers={sessions.CSRF_HEADER: body["csrf_token"]})


async def test_a_bearer_session_token_needs_no_csrf(api, seed_flow):
    body, _ = await _register_ada(api)
    api.client.session.cookie_jar.clear()
    await _call(api, "POST", "/flows", seed_flow(), expect=201, token=body["access_token"])
    await _call(api, "GET", "/flows", expect=401)  # no cookie, no token
    await _call(api, "GET", "/flows", expect=401, token="ffs_made-up")


async def _user(api, admin_token, email, role):
    made, _ = await _call(api, "POST", "/users", {"email": email, "password": "password " + role, "role": role},
                          expect=201, token=admin_token)
    assert made["user"]["role"] == role
    return (await _login(api, email, "password " + role))["access_token"]


@pytest.mark.parametrize("role, create_flow, manage_users", [
    ("viewer", 403, 403), ("operator", 201, 403), ("admin", 201, 200)])
async def test_a_users_role_gives_the_rights_of_a_key_of_that_role(api, seed_flow, role, create_flow, manage_users):
    admin = (await _register_ada(api))[0]["access_token"]
    token = admin if role == "admin" else await _user(api, admin, f"{role}@example.com", role)
    await _call(api, "GET", "/flows", token=token)
    await _call(api, "POST", "/flows", seed_flow(), expect=create_flow, token=token)
    await _call(api, "GET", "/users", expect=manage_users, token=token)
    await _call(api, "POST", "/keys", {"role": "viewer"}, expect=201 if role == "admin" else 403, token=token)
    await _call(api, "POST", "/auth/refresh", expect=200, token=token)  # any role refreshes and logs out


async def test_admins_manage_users_but_never_remove_the_last_admin(api):
    admin = (await _register_ada(api))[0]
    token, ada_id = admin["access_token"], admin["user"]["id"]
    await _call(api, "POST", "/users", {"email": "ada@example.com", "password": "x" * 10, "role": "viewer"},
                expect=409, token=token)
    problem, _ = await _call(api, "POST", "/users", {"email": "bo@example.com", "password": "x" * 10, "role": "root"},
                             expect=422, token=token)
    assert problem["errors"][0]["pointer"] == "/role"
    for i in range(3):
        await _call(api, "POST", "/users", {"email": f"u{i}@example.com", "password": "x" * 10, "role": "viewer"},
                    expect=201, token=token)
    page, _ = await _call(api, "GET", "/users?limit=2", token=token)
    assert [u["email"] for u in page["users"]] == ["ada@example.com", "u0@example.com"] and page["next"]
    rest, _ = await _call(api, "GET", page["next"].removeprefix(API), token=token)
    assert [u["email"] for u in rest["users"]] == ["u1@example.com", "u2@example.com"] and rest["next"] is None
    assert all("password" not in key for u in page["users"] for key in u)
    problem, _ = await _call(api, "PATCH", f"/users/{ada_id}", {"role": "viewer"}, expect=409, token=token)
    assert "last admin" in problem["detail"]
    await _call(api, "DELETE", f"/users/{ada_id}", expect=409, token=token)
    u0 = page["users"][1]["id"]
    promoted, _ = await _call(api, "PATCH", f"/users/{u0}", {"role": "admin"}, token=token)
    assert promoted["user"]["role"] == "admin"
    await _call(api, "PATCH", f"/users/{ada_id}", {"role": "operator"}, token=token)
    # the demotion takes effect on Ada's next request, with the same session
    await _call(api, "GET", "/users", expect=403, token=token)
    await _call(api, "DELETE", "/users/999", expect=404, token=(await _login(api, "u0@example.com", "x" * 10))["access_token"])


async def test_a_new_password_or_a_deleted_user_ends_their_sessions(api):
    admin = (await _register_ada(api))[0]["access_token"]
    bob = await _user(api, admin, "bob@example.com", "operator")
    bob_id = api.app[DB].call(lambda: User.get(User.email == "bob@example.com").id)
    await _call(api, "PATCH", f"/users/{bob_id}", {"password": "a new one!"}, token=admin)
    await _call(api, "GET", "/flows", expect=401, token=bob)
    await _login(api, "bob@example.com", "password operator", expect=401)
    bob = (await _login(api, "bob@example.com", "a new one!"))["access_token"]
    await _call(api, "DELETE", f"/users/{bob_id}", expect=204, token=admin)
    await _call(api, "GET", "/flows", expect=401, token=bob)


async def test_sessions_expire_after_24_h_and_refresh_until_7_days_after_login(api, clock):
    start = clock.now
    first = (await _register_ada(api))[0]
    token = first["access_token"]
    clock.now = start + sessions.ACCESS_S - 1
    await _call(api, "GET", "/flows", token=token)
    clock.now = start + sessions.ACCESS_S + 1
    problem, _ = await _call(api, "GET", "/flows", expect=401, token=token)
    assert "expired" in problem["detail"] and "/auth/refresh" in problem["detail"]
    renewed = (await _call(api, "POST", "/auth/refresh", token=token))[0]
    assert renewed["access_token"] != token and renewed["refresh_expires_at"] == first["refresh_expires_at"]
    await _call(api, "GET", "/flows", expect=401, token=token)  # the old token stopped working
    await _call(api, "GET", "/flows", token=renewed["access_token"])
    token = renewed["access_token"]
    for day in range(2, 7):  # refreshed each day: still the same login
        clock.now = start + day * 86400
        token = (await _call(api, "POST", "/auth/refresh", token=token))[0]["access_token"]
    clock.now = start + sessions.REFRESH_S - 60
    last = (await _call(api, "POST", "/auth/refresh", token=token))[0]
    assert last["expires_at"] == last["refresh_expires_at"] == first["refresh_expires_at"]  # never past 7 days
    token = last["access_token"]
    clock.now = start + sessions.REFRESH_S + 1
    await _call(api, "GET", "/flows", expect=401, token=token)
    problem, _ = await _call(api, "POST", "/auth/refresh", expect=401, token=token)
    assert "log in again" in problem["detail"]
    await _login(api, "ada@example.com", "correct horse")  # a login starts a new 7 days, and sweeps the dead one
    assert api.app[DB].call(lambda: Session.select().count()) == 1


async def test_a_cookie_session_refreshes_and_logs_out_with_the_csrf_token(api):
    first = (await _register_ada(api))[0]
    await _call(api, "POST", "/auth/refresh", expect=403)
    renewed, resp = await _call(api, "POST", "/auth/refresh", headers={sessions.CSRF_HEADER: first["csrf_token"]})
    assert _cookie(api, sessions.SESSION_COOKIE) == renewed["access_token"] != first["access_token"]
    assert _cookie(api, sessions.CSRF_COOKIE) == renewed["csrf_token"] != first["csrf_token"]
    await _call(api, "POST", "/auth/logout", expect=403, headers={sessions.CSRF_HEADER: first["csrf_token"]})
    _, resp = await _call(api, "POST", "/auth/logout", expect=204, headers={sessions.CSRF_HEADER: renewed["csrf_token"]})
    assert resp.cookies[sessions.SESSION_COOKIE].value == "" and resp.cookies[sessions.CSRF_COOKIE].value == ""
    await _call(api, "GET", "/flows", expect=401, token=renewed["access_token"])
    assert api.app[DB].call(lambda: Session.select().count()) == 0


async def test_api_keys_keep_working_and_are_no_session(api, seed_flow):
    await _register_ada(api)
    api.client.session.cookie_jar.clear()
    await api.post("/flows", seed_flow(), expect=201)  # x-api-key: no CSRF
    await api.post("/flows", seed_flow(), role=None, expect=201, headers={"Authorization": f"Bearer {api.keys['operator']}"})
    me = await api.get("/auth/me", role="viewer")
    assert me["user"] is None and me["key"]["role"] == "viewer"
    problem = await api.post("/auth/logout", role="viewer", expect=400)
    assert "API key" in problem["detail"]


async def test_triggered_by_names_the_user_or_the_key_not_the_role(api):
    admin = (await _register_ada(api))[0]["access_token"]
    flow = await api.published_flow({"name": "tidy", "steps": [{"node": "clear-cache", "params": {}}]})
    await api.post("/devices", {"id": "t0", "board": "unix-sim"}, expect=201)
    target = {"flow_id": flow["id"], "target_devices": ["t0"]}
    by_user, _ = await _call(api, "POST", "/executions", target, expect=201, token=admin)
    assert by_user["triggered_by"] == "user:ada@example.com"
    named = await api.post("/keys", {"role": "operator", "name": "ci"}, expect=201)
    by_key = await api.post("/executions", target, role=None, headers={"x-api-key": named["key"]}, expect=201)
    assert by_key["triggered_by"] == "key:ci"
    replayed = await api.post(f"/executions/{by_user['id']}/replay", role="operator", expect=201)
    unnamed_id = api.app[DB].call(key_store.key_of, api.keys["operator"])[0]
    assert replayed["triggered_by"] == f"key:{unnamed_id}"
    pipe = await api.post("/pipelines", {"name": "p", "steps": [{"flow_id": flow["id"]}, {"flow_id": flow["id"]}],
                                         "targets": {"target_devices": ["t0"]}}, expect=201)
    run, _ = await _call(api, "POST", f"/pipelines/{pipe['id']}/runs", expect=201, token=admin)
    assert run["triggered_by"] == "user:ada@example.com"
    step = await api.get(f"/executions/{run['steps_snapshot'][0]['execution_id']}")
    assert step["triggered_by"] == "user:ada@example.com"


async def test_an_idempotency_key_is_scoped_to_the_user_across_a_refresh(api):
    token = (await _register_ada(api))[0]["access_token"]
    api.client.session.cookie_jar.clear()
    headers = {"Idempotency-Key": "provision-1"}
    body = {"board": "unix-sim"}
    first, _ = await _call(api, "POST", "/devices", body, expect=201, token=token, headers=headers)
    token = (await _call(api, "POST", "/auth/refresh", token=token))[0]["access_token"]
    again, resp = await _call(api, "POST", "/devices", body, expect=201, token=token, headers=headers)
    assert again["id"] == first["id"] and resp.headers["Idempotent-Replayed"] == "true"
    # the same key sent with an API key is another scope: another device
    other = await api.post("/devices", body, expect=201, headers=headers)
    assert other["id"] != first["id"]


async def test_a_user_changes_their_own_password_and_their_other_sessions_end(api):
    admin = (await _register_ada(api))[0]["access_token"]
    await _user(api, admin, "vi@example.com", "viewer")
    other = (await _login(api, "vi@example.com", "password viewer"))["access_token"]
    browser = await _login(api, "vi@example.com", "password viewer")  # the cookie session that asks
    csrf = {sessions.CSRF_HEADER: browser["csrf_token"]}
    change = {"current_password": "password viewer", "new_password": "a better one"}
    await _call(api, "POST", "/auth/password", change, expect=403)  # a change: the CSRF token is needed
    problem, _ = await _call(api, "POST", "/auth/password", {**change, "current_password": "guess"}, expect=422,
                             headers=csrf)
    assert [p["pointer"] for p in problem["errors"]] == ["/current_password"]
    problem, _ = await _call(api, "POST", "/auth/password", {**change, "new_password": "short"}, expect=422,
                             headers=csrf)
    assert [p["pointer"] for p in problem["errors"]] == ["/new_password"]
    await _call(api, "GET", "/flows", token=other)  # nothing changed yet
    done, _ = await _call(api, "POST", "/auth/password", change, headers=csrf)  # a viewer may
    assert done["user"]["email"] == "vi@example.com" and done["user"]["role"] == "viewer"
    await _call(api, "GET", "/auth/me")  # this session goes on
    await _call(api, "GET", "/flows", expect=401, token=other)  # the other one ended
    await _call(api, "GET", "/flows", token=admin)  # nobody else's
    await _login(api, "vi@example.com", "password viewer", expect=401)
    await _login(api, "vi@example.com", "a better one")
    stored = api.app[DB].call(lambda: User.get(User.email == "vi@example.com").password_hash)
    assert stored.startswith("$2b$") and "better" not in stored
    problem, _ = await _call(api, "POST", "/auth/password", change, expect=400,
                             headers={"x-api-key": api.keys["viewer"]})
    assert "API key" in problem["detail"]
