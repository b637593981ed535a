"""Identity routes, tokens, rotation and revocation."""

from __future__ import annotations

import time

import jwt
import pytest
from fastapi import APIRouter

from nimbus_api.policy import PolicyRoute
from nimbus_api.security import verify_secret

from conftest import ADMIN_PASSWORD


def test_health_is_public(client):
    assert client.get("/healthz").json() == {"status": "ok"}


def policy_routes(app):
    """Every PolicyRoute of the app, looking inside included routers (FastAPI wraps them)."""
    found = []
    for route in app.routes:
        inner = getattr(route, "original_router", None)
        for sub in (inner.routes if inner is not None else [route]):
            if isinstance(sub, PolicyRoute):
                found.append(sub)
    return found


def test_every_route_but_the_public_ones_needs_a_token(client, app):
    public = {("POST", "/v1/auth/tokens"), ("GET", "/healthz"), ("GET", "/"), ("GET", "/ui/"),
              ("GET", "/ui/login"), ("POST", "/ui/session"),
              # Keystone v3: version discovery and token requests.
              ("GET", "/identity"), ("GET", "/identity/"), ("GET", "/identity/v3"), ("GET", "/identity/v3/"),
              ("POST", "/identity/v3/auth/tokens"),
              # Nova v2.1: version documents.
              ("GET", "/compute"), ("GET", "/compute/"), ("GET", "/compute/v2.1"), ("GET", "/compute/v2.1/"),
              # Glance v2: version documents.
              ("GET", "/image"), ("GET", "/image/"), ("GET", "/image/versions"),
              # Neutron v2.0: version document.
              ("GET", "/networking"), ("GET", "/networking/"),
              # Cinder v3: version documents.
              ("GET", "/volume"), ("GET", "/volume/"), ("GET", "/volume/v3"), ("GET", "/volume/v3/")}
    routes = policy_routes(app)
    assert len(routes) > 50
    checked = 0
    for route in routes:
        for method in route.methods:
            path = route.path_format.replace("{", "").replace("}", "")
            if (method, route.path_format) in public:
                assert route.policy == "public"
                continue
            r = client.request(method, path)
            assert r.status_code == 401, (method, route.path_format, r.status_code)
            checked += 1
    assert checked == len(routes) - len(public)


def test_a_route_without_a_policy_cannot_exist():
    router = APIRouter(route_class=PolicyRoute)
    with pytest.raises(RuntimeError, match="has no policy"):
        @router.get("/open")
        def open_route():
            return {}


def test_password_token_scoped_and_unscoped(cloud):
    project = cloud.project("demo")
    cloud.user("alice", roles=[(project, "member")])
    scoped = cloud.call("POST", "/v1/auth/tokens", json={
        "auth": {"password": {"user": "alice", "password": "password-123"}}, "project": "demo"}).json()
    assert (scoped["project_id"], scoped["role"], scoped["is_admin"]) == (project, "member", False)
    unscoped = cloud.call("POST", "/v1/auth/tokens", json={
        "auth": {"password": {"user": "alice", "password": "password-123"}}}).json()
    assert unscoped["project_id"] is None and unscoped["role"] is None
    me = cloud.call("GET", "/v1/auth/tokens", scoped["token"]).json()
    assert me["user"] == "alice" and me["token"] is None


@pytest.mark.parametrize("body, status", [
    ({"auth": {"password": {"user": "alice", "password": "wrong-password"}}}, 401),
    ({"auth": {"password": {"user": "nobody", "password": "password-123"}}}, 401),
    ({"auth": {"password": {"user": "alice", "password": "password-123"}}, "project": "elsewhere"}, 401),
    ({"auth": {"password": {"user": "alice", "password": "password-123"}}, "project": "admin"}, 403),
    ({"auth": {}}, 422),
])
def test_bad_credentials(cloud, body, status):
    cloud.user("alice", roles=[(cloud.project("demo"), "member")])
    r = cloud.call("POST", "/v1/auth/tokens", json=body)
    assert r.status_code == status, r.text
    assert "password-123" not in r.text


def test_passwords_are_stored_as_argon2_hashes(cloud, app):
    user_id = cloud.user("alice")
    from nimbus_api.models import User
    with app.state.sessions() as db:
        stored = db.get(User, user_id).password_hash
    assert stored.startswith("$argon2id$") and "password-123" not in stored
    assert verify_secret(stored, "password-123") and not verify_secret(stored, "password-124")


def test_expired_token_is_refused(cloud, app):
    # Beside a token of the default lifetime, so that what tells them apart is the expiry alone, whatever the
    # time a loaded machine takes between the calls.
    fresh = cloud.token("admin", ADMIN_PASSWORD, "admin")
    app.state.settings.token_ttl = 1
    token = cloud.token("admin", ADMIN_PASSWORD, "admin")
    time.sleep(2.1)
    assert cloud.call("GET", "/v1/users", fresh).status_code == 200
    r = cloud.call("GET", "/v1/users", token)
    assert r.status_code == 401 and r.json()["detail"] == "token expired"


def test_revoked_token_is_refused_and_others_are_not(cloud):
    first = cloud.token("admin", ADMIN_PASSWORD, "admin")
    second = cloud.token("admin", ADMIN_PASSWORD, "admin")
    assert cloud.call("DELETE", "/v1/auth/tokens", first).status_code == 204
    assert cloud.call("GET", "/v1/users", first).json()["detail"] == "token revoked"
    assert cloud.call("GET", "/v1/users", second).status_code == 200


def test_revoking_all_tokens_of_a_user_and_password_change(cloud):
    user_id = cloud.user("alice", roles=[(cloud.project("demo"), "reader")])
    token = cloud.token("alice", "password-123", "demo")
    r = cloud.call("PATCH", "/v1/users/%s" % user_id, token, json={"password": "new-password-456",
                                                                   "original_password": "password-123"})
    assert r.status_code == 200
    assert cloud.call("GET", "/v1/auth/tokens", token).status_code == 401
    fresh = cloud.token("alice", "new-password-456", "demo")
    assert cloud.call("POST", "/v1/users/%s/revoke-tokens" % user_id, fresh).status_code == 204
    assert cloud.call("GET", "/v1/auth/tokens", fresh).status_code == 401


def test_key_rotation_keeps_old_tokens_until_the_key_is_retired(cloud):
    old = cloud.token("admin", ADMIN_PASSWORD, "admin")
    old_kid = jwt.get_unverified_header(old)["kid"]
    keys = cloud.call("POST", "/v1/auth/keys/rotate", old).json()["active"]
    assert len(keys) == 2 and keys[1] == old_kid
    new = cloud.token("admin", ADMIN_PASSWORD, "admin")
    assert jwt.get_unverified_header(new)["kid"] == keys[0]
    assert cloud.call("GET", "/v1/users", old).status_code == 200
    retired = cloud.call("POST", "/v1/auth/keys/retire", new, params={"keep": 1}).json()
    assert retired["retired"] == [old_kid]
    r = cloud.call("GET", "/v1/users", old)
    assert r.status_code == 401 and "retired" in r.json()["detail"]
    assert cloud.call("GET", "/v1/users", new).status_code == 200


def test_a_forged_token_is_refused(cloud):
    token = cloud.token("admin", ADMIN_PASSWORD, "admin")
    claims = jwt.decode(token, options={"verify_signature": False})
    forged = jwt.encode(claims, "not-the-key", algorithm="HS256", headers=jwt.get_unverified_header(token))
    assert cloud.call("GET", "/v1/users", forged).status_code == 401


def test_application_credentials(cloud):
    project = cloud.project("demo")
    user_id = cloud.user("bot", roles=[(project, "member")])
    token = cloud.token("bot", "password-123", "demo")
    made = cloud.call("POST", "/v1/users/%s/application_credentials" % user_id, token,
                      json={"name": "ci", "project_id": project})
    assert made.status_code == 201
    cred = made.json()
    assert cred["secret"]
    listed = cloud.call("GET", "/v1/users/%s/application_credentials" % user_id, token).json()
    assert [c["secret"] for c in listed] == [None]
    via = cloud.call("POST", "/v1/auth/tokens", json={
        "auth": {"application_credential": {"id": cred["id"], "secret": cred["secret"]}}})
    assert via.status_code == 201 and via.json()["project_id"] == project and via.json()["role"] == "member"
    assert via.json()["method"] == "application_credential"
    bad = cloud.call("POST", "/v1/auth/tokens", json={
        "auth": {"application_credential": {"id": cred["id"], "secret": "guess"}}})
    assert bad.status_code == 401
    assert cloud.call("DELETE", "/v1/users/%s/application_credentials/%s" % (user_id, cred["id"]), token).status_code == 204
    gone = cloud.call("POST", "/v1/auth/tokens", json={
        "auth": {"application_credential": {"id": cred["id"], "secret": cred["secret"]}}})
    assert gone.status_code == 401


def test_a_token_rescopes_to_another_project_of_its_user(cloud):
    a, b = cloud.project("proj-a"), cloud.project("proj-b")
    cloud.user("dual", roles=[(a, "member"), (b, "reader")])
    cloud.project("proj-c")
    unscoped = cloud.call("POST", "/v1/auth/tokens", json={
        "auth": {"password": {"user": "dual", "password": "password-123"}}}).json()

    def rescope(token, project):
        return cloud.call("POST", "/v1/auth/tokens", json={"auth": {"token": {"id": token}}, "project": project})

    on_b = rescope(unscoped["token"], "proj-b")
    assert on_b.status_code == 201
    assert (on_b.json()["project_id"], on_b.json()["role"]) == (b, "reader")
    # Never outliving the token it came from.
    assert on_b.json()["expires_at"] <= unscoped["expires_at"]
    on_a = rescope(on_b.json()["token"], "proj-a").json()
    assert (on_a["project_id"], on_a["role"]) == (a, "member")
    assert rescope(unscoped["token"], "proj-c").status_code == 403
    assert rescope("not-a-token", "proj-a").status_code == 401
    cloud.call("DELETE", "/v1/auth/tokens", unscoped["token"])
    assert rescope(unscoped["token"], "proj-a").status_code == 401


def test_domains_projects_users_crud(cloud):
    a = cloud.admin
    d = cloud.call("POST", "/v1/domains", a, json={"name": "corp"})
    assert d.status_code == 201
    assert cloud.call("POST", "/v1/domains", a, json={"name": "corp"}).status_code == 409
    assert cloud.call("PATCH", "/v1/domains/corp", a, json={"description": "x"}).json()["description"] == "x"
    p = cloud.call("POST", "/v1/projects", a, json={"name": "web", "domain": "corp"})
    assert p.status_code == 201 and p.json()["domain_id"] == d.json()["id"]
    assert cloud.call("DELETE", "/v1/domains/corp", a).status_code == 409
    assert cloud.call("PATCH", "/v1/projects/%s" % p.json()["id"], a, json={"enabled": False}).json()["enabled"] is False
    assert cloud.call("DELETE", "/v1/projects/%s" % p.json()["id"], a).status_code == 204
    assert cloud.call("GET", "/v1/projects/%s" % p.json()["id"], a).status_code == 404
    assert cloud.call("DELETE", "/v1/domains/corp", a).status_code == 204
    u = cloud.call("POST", "/v1/users", a, json={"name": "bob", "password": "short"})
    assert u.status_code == 422
    bob = cloud.user("bob")
    assert cloud.call("GET", "/v1/users/%s" % bob, a).json()["name"] == "bob"
    assert cloud.call("DELETE", "/v1/users/%s" % bob, a).status_code == 204
    assert cloud.call("GET", "/v1/roles", a).json() == ["admin", "member", "reader"]


def test_catalog(cloud):
    a = cloud.admin
    s = cloud.call("POST", "/v1/services", a, json={"name": "compute", "type": "compute"}).json()
    r = cloud.call("PUT", "/v1/services/%s/endpoints" % s["id"], a, json={"interface": "public", "url": "http://x/"})
    assert r.status_code == 200
    r = cloud.call("PUT", "/v1/services/%s/endpoints" % s["id"], a, json={"interface": "public", "url": "http://y/"})
    assert [e["url"] for e in r.json()["endpoints"]] == ["http://y/"]
    user = cloud.user("reader1", roles=[(cloud.project("demo"), "reader")])
    assert user
    token = cloud.token("reader1", "password-123", "demo")
    assert [c["name"] for c in cloud.call("GET", "/v1/catalog", token).json()] == ["compute"]
    assert cloud.call("POST", "/v1/services", token, json={"name": "x", "type": "x"}).status_code == 403
