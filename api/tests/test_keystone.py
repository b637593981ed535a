"""Keystone v3 under /identity: the shapes keystoneauth and keystonemiddleware read, on the service's own rules."""

from __future__ import annotations

import pytest
from conftest import ADMIN_PASSWORD

V3 = "/identity/v3"


def password_auth(user, password, domain="Default", project=None, project_domain="Default", by_id=False):
    user_ref = {"id": user, "password": password} if by_id else \
        {"name": user, "domain": {"name": domain}, "password": password}
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": user_ref}}}}
    if project is not None:
        body["auth"]["scope"] = {"project": project if isinstance(project, dict) else
                                 {"name": project, "domain": {"name": project_domain}}}
    return body


def issue(cloud, body):
    return cloud.client.post(V3 + "/auth/tokens", json=body)


def subject(cloud, method, caller, token, **kw):
    return cloud.client.request(method, V3 + "/auth/tokens",
                                headers={"X-Auth-Token": caller, "X-Subject-Token": token}, **kw)


def test_version_discovery(cloud):
    root = cloud.client.get("/identity/")
    assert root.status_code == 300
    (version,) = root.json()["versions"]["values"]
    assert version["id"].startswith("v3.") and version["status"] == "stable"
    assert version["links"][0]["href"].endswith("/identity/v3/")
    assert cloud.client.get(V3).json()["version"]["id"] == version["id"]


def test_password_token_scoped_by_name_carries_the_catalog_and_implied_roles(cloud):
    r = issue(cloud, password_auth("admin", ADMIN_PASSWORD, project="admin"))
    assert r.status_code == 201, r.text
    token = r.headers["X-Subject-Token"]
    body = r.json()["token"]
    assert body["methods"] == ["password"]
    assert body["user"]["name"] == "admin" and body["user"]["domain"]["name"] == "Default"
    assert body["project"]["name"] == "admin"
    assert [role["name"] for role in body["roles"]] == ["admin", "member", "reader"]
    assert len(body["audit_ids"][0]) == 22
    assert body["expires_at"].endswith("Z") and body["issued_at"] < body["expires_at"]
    assert isinstance(body["catalog"], list)
    # The token works on the service's own API and on Keystone's.
    assert cloud.client.get("/v1/auth/tokens", headers={"X-Auth-Token": token}).status_code == 200
    assert cloud.client.get(V3 + "/auth/projects", headers={"X-Auth-Token": token}).status_code == 200


def test_scope_by_project_id_user_by_id_and_unscoped(cloud):
    project = cloud.project("blue")
    user_id = cloud.user("bob", roles=[(project, "member")])
    r = issue(cloud, password_auth(user_id, "password-123", project={"id": project}, by_id=True))
    assert r.status_code == 201, r.text
    assert r.json()["token"]["project"]["id"] == project
    assert [role["name"] for role in r.json()["token"]["roles"]] == ["member", "reader"]
    unscoped = issue(cloud, password_auth("bob", "password-123"))
    assert unscoped.status_code == 201
    assert "project" not in unscoped.json()["token"] and "catalog" not in unscoped.json()["token"]
    # Rescoping an unscoped token, as keystoneauth does after listing the user's projects.
    rescoped = issue(cloud, {"auth": {"identity": {"methods": ["token"],
                                                   "token": {"id": unscoped.headers["X-Subject-Token"]}},
                                      "scope": {"project": {"id": project}}}})
    assert rescoped.status_code == 201, rescoped.text
    assert rescoped.json()["token"]["project"]["name"] == "blue"


def test_application_credential_by_id_and_by_name(cloud):
    project = cloud.project("green")
    user_id = cloud.user("carol", roles=[(project, "member")])
    token = cloud.token("carol", "password-123", project)
    made = cloud.call("POST", "/v1/users/%s/application_credentials" % user_id, token,
                      json={"name": "ci", "project_id": project})
    assert made.status_code == 201, made.text
    cred = made.json()
    by_id = {"auth": {"identity": {"methods": ["application_credential"],
                                   "application_credential": {"id": cred["id"], "secret": cred["secret"]}}}}
    r = issue(cloud, by_id)
    assert r.status_code == 201, r.text
    body = r.json()["token"]
    assert body["project"]["id"] == project and body["application_credential"]["name"] == "ci"
    assert body["application_credential"]["restricted"] is True
    by_name = {"auth": {"identity": {"methods": ["application_credential"], "application_credential": {
        "name": "ci", "secret": cred["secret"], "user": {"name": "carol", "domain": {"name": "Default"}}}}}}
    assert issue(cloud, by_name).status_code == 201
    by_name["auth"]["identity"]["application_credential"]["secret"] = "wrong"
    assert issue(cloud, by_name).status_code == 401


def test_validate_check_and_revoke(cloud):
    project = cloud.project("red")
    cloud.user("dave", roles=[(project, "member")])
    cloud.user("erin", roles=[(project, "member")])
    dave = issue(cloud, password_auth("dave", "password-123", project="red")).headers["X-Subject-Token"]
    erin = issue(cloud, password_auth("erin", "password-123", project="red")).headers["X-Subject-Token"]
    admin = issue(cloud, password_auth("admin", ADMIN_PASSWORD, project="admin")).headers["X-Subject-Token"]

    shown = subject(cloud, "GET", admin, dave)
    assert shown.status_code == 200 and shown.headers["X-Subject-Token"] == dave
    assert shown.json()["token"]["user"]["name"] == "dave" and "catalog" in shown.json()["token"]
    assert "catalog" not in subject(cloud, "GET", admin, dave, params={"nocatalog": "1"}).json()["token"]
    assert subject(cloud, "HEAD", admin, dave).status_code == 200
    assert subject(cloud, "GET", dave, dave).status_code == 200  # one's own token
    # Another project member may not look at someone else's token.
    refused = subject(cloud, "GET", erin, dave)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == 403 and refused.json()["error"]["title"] == "Forbidden"

    assert subject(cloud, "DELETE", dave, dave).status_code == 204
    gone = subject(cloud, "GET", admin, dave)
    assert gone.status_code == 404 and gone.json()["error"]["message"] == "Could not find token"
    assert subject(cloud, "HEAD", admin, dave).status_code == 404
    assert cloud.client.get(V3 + "/auth/projects", headers={"X-Auth-Token": dave}).status_code == 401


def test_a_service_user_validates_tokens_as_keystonemiddleware_does(cloud):
    admin_project = cloud.client.get(V3 + "/auth/projects", headers={"X-Auth-Token": cloud.admin}).json()
    admin_id = next(p["id"] for p in admin_project["projects"] if p["name"] == "admin")
    cloud.user("nova", roles=[(admin_id, "reader")])
    project = cloud.project("yellow")
    cloud.user("frank", roles=[(project, "member")])
    service = issue(cloud, password_auth("nova", "password-123", project="admin")).headers["X-Subject-Token"]
    frank = issue(cloud, password_auth("frank", "password-123", project="yellow")).headers["X-Subject-Token"]
    r = subject(cloud, "GET", service, frank)
    assert r.status_code == 200 and r.json()["token"]["project"]["name"] == "yellow"


@pytest.mark.parametrize("body, status", [
    (password_auth("admin", "wrong-password", project="admin"), 401),
    (password_auth("nobody", "whatever-123"), 401),
    (password_auth("admin", ADMIN_PASSWORD, domain="Nowhere"), 401),
    ({"auth": {"identity": {"methods": ["password"]}}}, 400),
    ({"auth": {"identity": {"methods": ["totp"], "totp": {}}}}, 401),
    ({"auth": {"identity": {"methods": ["password", "totp"]}}}, 401),
    ({"auth": {"identity": {"methods": []}}}, 400),
    ({"auth": {}}, 400),
    ({"auth": {"identity": {"methods": ["token"], "token": {"id": "not-a-token"}}}}, 401),
    (dict(password_auth("admin", ADMIN_PASSWORD), auth=dict(password_auth("admin", ADMIN_PASSWORD)["auth"],
                                                            scope={"domain": {"name": "Default"}})), 400),
    (dict(password_auth("admin", ADMIN_PASSWORD), auth=dict(password_auth("admin", ADMIN_PASSWORD)["auth"],
                                                            scope={"system": {"all": True}})), 400),
    (dict(password_auth("admin", ADMIN_PASSWORD), auth=dict(password_auth("admin", ADMIN_PASSWORD)["auth"],
                                                            scope={"project": {"name": "admin"}})), 400),
    ({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "admin",
                                                                           "password": "x" * 5000}}}}}, 400),
])
def test_refusals_use_keystones_error_body(cloud, body, status):
    r = issue(cloud, body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == status and error["message"]
    assert "X-Subject-Token" not in r.headers
    if status == 401:
        assert r.headers["WWW-Authenticate"].startswith("Keystone uri=")


def test_no_role_on_the_project_gets_no_token(cloud):
    cloud.project("purple")
    cloud.user("gina")
    r = issue(cloud, password_auth("gina", "password-123", project="purple"))
    assert r.status_code in (401, 403) and "X-Subject-Token" not in r.headers


def test_admin_manages_projects_users_and_role_assignments(cloud):
    h = {"X-Auth-Token": cloud.admin}
    made = cloud.client.post(V3 + "/projects", headers=h, json={"project": {"name": "orange", "description": "d"}})
    assert made.status_code == 201, made.text
    project = made.json()["project"]
    assert project["domain_id"] and project["is_domain"] is False
    assert cloud.client.post(V3 + "/projects", headers=h, json={"project": {"name": "orange"}}).status_code == 409
    user = cloud.client.post(V3 + "/users", headers=h,
                             json={"user": {"name": "hank", "password": "password-123"}}).json()["user"]
    roles = cloud.client.get(V3 + "/roles", headers=h).json()["roles"]
    member = next(r for r in roles if r["name"] == "member")
    path = V3 + "/projects/%s/users/%s/roles/%s" % (project["id"], user["id"], member["id"])
    assert cloud.client.request("HEAD", path, headers=h).status_code == 404
    assert cloud.client.put(path, headers=h).status_code == 204
    assert cloud.client.request("HEAD", path, headers=h).status_code == 204
    listed = cloud.client.get(V3 + "/role_assignments", headers=h,
                              params={"user.id": user["id"], "include_names": "1"}).json()["role_assignments"]
    assert [(a["role"]["name"], a["scope"]["project"]["name"]) for a in listed] == [("member", "orange")]
    hank = issue(cloud, password_auth("hank", "password-123", project="orange"))
    assert hank.status_code == 201
    hank_token = hank.headers["X-Subject-Token"]
    # Hank sees his own assignments and projects only, and manages nothing.
    mine = cloud.client.get(V3 + "/role_assignments", headers={"X-Auth-Token": hank_token})
    assert [a["user"]["id"] for a in mine.json()["role_assignments"]] == [user["id"]]
    assert cloud.client.get(V3 + "/role_assignments", headers={"X-Auth-Token": hank_token},
                            params={"user.id": "someone-else"}).status_code == 403
    assert cloud.client.get(V3 + "/users", headers={"X-Auth-Token": hank_token}).status_code == 403
    assert cloud.client.post(V3 + "/projects", headers={"X-Auth-Token": hank_token},
                             json={"project": {"name": "mine"}}).status_code == 403
    assert [p["name"] for p in cloud.client.get(V3 + "/projects", headers={"X-Auth-Token": hank_token})
            .json()["projects"]] == ["orange"]
    # Revoking the role ends the tokens that carried it.
    assert cloud.client.delete(path, headers=h).status_code == 204
    assert subject(cloud, "GET", cloud.admin, hank_token).status_code == 404
    assert cloud.client.patch(V3 + "/projects/" + project["id"], headers=h,
                              json={"project": {"enabled": False}}).json()["project"]["enabled"] is False
    assert cloud.client.delete(V3 + "/users/" + user["id"], headers=h).status_code == 204
    assert cloud.client.delete(V3 + "/projects/" + project["id"], headers=h).status_code == 204
    assert cloud.client.get(V3 + "/projects/" + project["id"], headers=h).json()["error"]["code"] == 404


def test_users_change_their_own_password(cloud):
    user_id = cloud.user("ivy")
    token = issue(cloud, password_auth("ivy", "password-123")).headers["X-Subject-Token"]
    wrong = cloud.client.post(V3 + "/users/%s/password" % user_id, headers={"X-Auth-Token": token},
                              json={"user": {"password": "new-password-1", "original_password": "nope"}})
    assert wrong.status_code == 401
    ok = cloud.client.post(V3 + "/users/%s/password" % user_id, headers={"X-Auth-Token": token},
                           json={"user": {"password": "new-password-1", "original_password": "password-123"}})
    assert ok.status_code == 204
    assert issue(cloud, password_auth("ivy", "new-password-1")).status_code == 201
    assert issue(cloud, password_auth("ivy", "password-123")).status_code == 401


def test_the_catalog_lists_registered_endpoints(cloud):
    made = cloud.call("POST", "/v1/services", cloud.admin, json={"name": "nova", "type": "compute"})
    cloud.call("PUT", "/v1/services/%s/endpoints" % made.json()["id"], cloud.admin,
               json={"interface": "public", "url": "http://203.0.113.9:8080/compute/v2.1"})
    body = issue(cloud, password_auth("admin", ADMIN_PASSWORD, project="admin")).json()["token"]
    compute = next(s for s in body["catalog"] if s["type"] == "compute")
    assert compute["endpoints"] == [{"id": compute["endpoints"][0]["id"], "interface": "public",
                                     "region": "RegionOne", "region_id": "RegionOne",
                                     "url": "http://203.0.113.9:8080/compute/v2.1"}]
    listed = cloud.client.get(V3 + "/endpoints", headers={"X-Auth-Token": cloud.admin}).json()["endpoints"]
    assert [e["url"] for e in listed if e["service_id"] == made.json()["id"]] == [
        "http://203.0.113.9:8080/compute/v2.1"]


def test_the_v1_api_keeps_its_own_error_shape(cloud):
    r = cloud.client.get("/v1/projects")
    assert r.status_code == 401 and "detail" in r.json()


def test_catalog_urls_name_each_tokens_own_project(cloud):
    made = cloud.call("POST", "/v1/services", cloud.admin, json={"name": "swift", "type": "object-store"}).json()
    for interface, url in (("public", "http://203.0.113.7:8080/v1/AUTH_$(project_id)s"),
                           ("internal", "http://10.0.0.7:8080/v1/AUTH_%(tenant_id)s")):
        r = cloud.call("PUT", "/v1/services/%s/endpoints" % made["id"], cloud.admin,
                       json={"interface": interface, "url": url})
        assert r.status_code == 200, r.text
    blue, red = cloud.project("blue"), cloud.project("red")
    cloud.user("kim", roles=[(blue, "member"), (red, "member")])

    def store(catalog):
        return {e["interface"]: e["url"] for e in next(s for s in catalog if s["type"] == "object-store")["endpoints"]}

    for project in (blue, red):
        issued = issue(cloud, password_auth("kim", "password-123", project={"id": project}))
        token = issued.headers["X-Subject-Token"]
        mine = {"public": "http://203.0.113.7:8080/v1/AUTH_" + project,
                "internal": "http://10.0.0.7:8080/v1/AUTH_" + project}
        assert store(issued.json()["token"]["catalog"]) == mine
        assert store(subject(cloud, "GET", cloud.admin, token).json()["token"]["catalog"]) == mine
        listed = cloud.client.get(V3 + "/auth/catalog", headers={"X-Auth-Token": token}).json()["catalog"]
        assert store(listed) == mine
    # An unscoped token has no project to fill in: the endpoints that need one are left out, as Keystone does.
    unscoped = issue(cloud, password_auth("kim", "password-123")).headers["X-Subject-Token"]
    assert store(cloud.client.get(V3 + "/auth/catalog", headers={"X-Auth-Token": unscoped}).json()["catalog"]) == {}
    # The records keep the templates.
    records = cloud.client.get(V3 + "/endpoints", headers={"X-Auth-Token": cloud.admin},
                               params={"service_id": made["id"]}).json()["endpoints"]
    assert {e["interface"]: e["url"] for e in records} == {"public": "http://203.0.113.7:8080/v1/AUTH_$(project_id)s",
                                                           "internal": "http://10.0.0.7:8080/v1/AUTH_%(tenant_id)s"}


# Each with whether a row written past the API shows in a catalog: as it is (nothing in it is filled in), or not
# at all (a template the catalog does not know, as Keystone leaves a malformed endpoint out).
@pytest.mark.parametrize("url, shown", [
    ("http://x/v1/AUTH_$(admin_token)s", False), ("http://x/%(foo)s", False), ("http://x/$(user_id)s", False),
    ("http://x/{{ 7*7 }}", True), ("http://x/{{7*7}}", True), ("http://x/$(project_id", True),
    ("file:///etc/passwd", True), ("javascript:alert(1)", True), ("http:///no-host", True),
])
def test_endpoints_are_http_urls_with_no_template_but_the_project(cloud, app, url, shown):
    made = cloud.call("POST", "/v1/services", cloud.admin, json={"name": "swift", "type": "object-store"}).json()
    r = cloud.call("PUT", "/v1/services/%s/endpoints" % made["id"], cloud.admin,
                   json={"interface": "public", "url": url})
    assert r.status_code == 422, r.text
    assert cloud.client.get(V3 + "/endpoints", headers={"X-Auth-Token": cloud.admin}).json()["endpoints"] == []
    from nimbus_api.models import Endpoint

    with app.state.sessions() as db:
        db.add(Endpoint(service_id=made["id"], interface="public", url=url))
        db.commit()
    catalog = issue(cloud, password_auth("admin", ADMIN_PASSWORD, project="admin")).json()["token"]["catalog"]
    assert [e["url"] for s in catalog for e in s["endpoints"]] == ([url] if shown else [])
