"""The RBAC matrix: who may do what, per role and project."""

from __future__ import annotations

import pytest


@pytest.fixture
def world(cloud):
    a, b = cloud.project("proj-a"), cloud.project("proj-b")
    users = {}
    for role in ("admin", "member", "reader"):
        users[role] = cloud.user("%s-a" % role, roles=[(a, role)])
    cloud.user("member-b", roles=[(b, "member")])
    tokens = {role: cloud.token("%s-a" % role, "password-123", "proj-a") for role in users}
    tokens["member-b"] = cloud.token("member-b", "password-123", "proj-b")
    tokens["cloud-admin"] = cloud.admin
    return cloud, {"a": a, "b": b}, users, tokens


# (who, method, path, status): path takes {a} and {b} for the project ids.
MATRIX = [
    ("reader", "GET", "/v1/projects/{a}", 200),
    ("member", "GET", "/v1/projects/{a}", 200),
    ("member-b", "GET", "/v1/projects/{a}", 403),
    ("member-b", "GET", "/v1/projects/{a}/assignments", 403),
    ("reader", "GET", "/v1/projects/{a}/assignments", 200),
    ("cloud-admin", "GET", "/v1/projects/{b}", 200),
    ("admin", "GET", "/v1/users", 403),  # a project admin is not the cloud admin
    ("cloud-admin", "GET", "/v1/users", 200),
    ("member", "POST", "/v1/projects", 403),
    ("reader", "GET", "/v1/domains", 403),
    ("member", "POST", "/v1/auth/keys/rotate", 403),
    ("cloud-admin", "GET", "/v1/auth/keys", 200),
]


@pytest.mark.parametrize("who, method, path, status", MATRIX)
def test_matrix(world, who, method, path, status):
    cloud, projects, users, tokens = world
    r = cloud.call(method, path.format(**projects), tokens[who], json={"name": "x"} if method == "POST" else None)
    assert r.status_code == status, (who, method, path, r.text)


def test_a_member_of_a_sees_nothing_of_b(world):
    cloud, projects, users, tokens = world
    listed = cloud.call("GET", "/v1/projects", tokens["member-b"]).json()
    assert [p["name"] for p in listed] == ["proj-b"]
    everything = cloud.call("GET", "/v1/projects", tokens["cloud-admin"]).json()
    assert {"proj-a", "proj-b", "admin"} <= {p["name"] for p in everything}


def test_users_see_and_change_only_themselves(world):
    cloud, projects, users, tokens = world
    assert cloud.call("GET", "/v1/users/%s" % users["reader"], tokens["reader"]).status_code == 200
    assert cloud.call("GET", "/v1/users/%s" % users["member"], tokens["reader"]).status_code == 403
    r = cloud.call("PATCH", "/v1/users/%s" % users["reader"], tokens["reader"], json={"enabled": False})
    assert r.status_code == 403


def test_taking_a_role_away_ends_its_tokens(world):
    cloud, projects, users, tokens = world
    r = cloud.call("DELETE", "/v1/projects/%s/users/%s/roles/member" % (projects["a"], users["member"]), cloud.admin)
    assert r.status_code == 204
    assert cloud.call("GET", "/v1/projects/%s" % projects["a"], tokens["member"]).status_code == 401
    denied = cloud.call("POST", "/v1/auth/tokens", json={
        "auth": {"password": {"user": "member-a", "password": "password-123"}}, "project": "proj-a"})
    assert denied.status_code == 403
