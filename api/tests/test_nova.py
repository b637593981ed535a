"""Nova v2.1 under /compute: versions, microversions, flavors, keypairs, quota sets, limits, Nova's error body."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

C = "/compute/v2.1"


def public_key(comment="me@example"):
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode() + " " + comment


@pytest.fixture
def member(world):
    cloud, projects, tokens = world
    return cloud, projects, tokens["member-a"]


def call(cloud, method, path, token, **kw):
    return cloud.client.request(method, C + path, headers={"X-Auth-Token": token, **kw.pop("headers", {})}, **kw)


def test_versions_and_microversions(cloud):
    root = cloud.client.get("/compute/")
    assert root.status_code == 200
    (version,) = root.json()["versions"]
    assert (version["id"], version["version"], version["min_version"]) == ("v2.1", "2.1", "2.1")
    r = call(cloud, "GET", "/flavors", cloud.admin)
    assert r.headers["OpenStack-API-Version"] == "compute 2.1" and r.headers["X-OpenStack-Nova-API-Version"] == "2.1"
    assert call(cloud, "GET", "/flavors", cloud.admin, headers={"OpenStack-API-Version": "compute latest"}).status_code \
        == 200
    refused = call(cloud, "GET", "/flavors", cloud.admin, headers={"OpenStack-API-Version": "compute 2.95"})
    assert refused.status_code == 406 and refused.json()["computeFault"]["code"] == 406
    assert call(cloud, "GET", "/flavors", cloud.admin,
                headers={"X-OpenStack-Nova-API-Version": "2.60"}).status_code == 406


def test_flavors_admin_made_public_and_private(member):
    cloud, projects, token = member
    tiny = call(cloud, "POST", "/flavors", cloud.admin,
                json={"flavor": {"name": "m1.tiny", "vcpus": 1, "ram": 128, "disk": 1, "id": "1"}})
    assert tiny.status_code == 200, tiny.text
    assert tiny.json()["flavor"]["os-flavor-access:is_public"] is True and tiny.json()["flavor"]["swap"] == ""
    private = call(cloud, "POST", "/flavors", cloud.admin, json={"flavor": {
        "name": "big", "vcpus": 8, "ram": 16384, "disk": 80, "os-flavor-access:is_public": False}}).json()["flavor"]
    assert call(cloud, "POST", "/flavors", cloud.admin,
                json={"flavor": {"name": "m1.tiny", "vcpus": 1, "ram": 64, "disk": 1}}).status_code == 409
    # A member sees the public one only, and may not make flavors.
    assert [f["name"] for f in call(cloud, "GET", "/flavors/detail", token).json()["flavors"]] == ["m1.tiny"]
    assert call(cloud, "GET", "/flavors/" + private["id"], token).json()["itemNotFound"]["code"] == 404
    assert call(cloud, "POST", "/flavors", token,
                json={"flavor": {"name": "x", "vcpus": 1, "ram": 1, "disk": 0}}).json()["forbidden"]["code"] == 403
    # Given access, the project sees the private flavor.
    granted = call(cloud, "POST", "/flavors/%s/action" % private["id"], cloud.admin,
                   json={"addTenantAccess": {"tenant": projects["a"]}})
    assert granted.json()["flavor_access"] == [{"flavor_id": private["id"], "tenant_id": projects["a"]}]
    assert sorted(f["name"] for f in call(cloud, "GET", "/flavors", token).json()["flavors"]) == ["big", "m1.tiny"]
    assert [f["name"] for f in call(cloud, "GET", "/flavors/detail?minRam=1024", token).json()["flavors"]] == ["big"]
    assert sorted(f["name"] for f in call(cloud, "GET", "/flavors?is_public=none", cloud.admin)
                  .json()["flavors"]) == ["big", "m1.tiny"]
    assert call(cloud, "DELETE", "/flavors/1", cloud.admin).status_code == 202
    assert call(cloud, "GET", "/flavors/1", token).status_code == 404


@pytest.mark.parametrize("flavor", [
    {"name": "bad name", "vcpus": 1, "ram": 1, "disk": 0},
    {"name": "../x", "vcpus": 1, "ram": 1, "disk": 0},
    {"name": "ok", "vcpus": 0, "ram": 1, "disk": 0},
    {"name": "ok", "vcpus": 1, "ram": -5, "disk": 0},
    {"name": "ok", "vcpus": 1, "ram": 1, "disk": 0, "id": "a/b"},
    {"name": "ok", "vcpus": 1, "ram": 1, "disk": 0, "swap": "lots"},
    {"name": "ok", "vcpus": "many", "ram": 1, "disk": 0},
])
def test_bad_flavors_are_refused_with_novas_body(cloud, flavor):
    r = call(cloud, "POST", "/flavors", cloud.admin, json={"flavor": flavor})
    assert r.status_code == 400, r.text
    assert r.json()["badRequest"]["message"]
    assert call(cloud, "GET", "/flavors/detail?is_public=none", cloud.admin).json()["flavors"] == []


def test_keypairs_are_the_users_own(member, world):
    cloud, projects, token = member
    key = public_key()
    made = call(cloud, "POST", "/os-keypairs", token, json={"keypair": {"name": "laptop", "public_key": key}})
    assert made.status_code == 200, made.text
    assert made.json()["keypair"]["public_key"] == key and made.json()["keypair"]["fingerprint"].count(":") == 15
    assert "private_key" not in made.json()["keypair"]
    generated = call(cloud, "POST", "/os-keypairs", token, json={"keypair": {"name": "made"}}).json()["keypair"]
    assert generated["private_key"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert generated["public_key"].startswith("ssh-ed25519 ")
    listed = call(cloud, "GET", "/os-keypairs", token).json()["keypairs"]
    assert [k["keypair"]["name"] for k in listed] == ["laptop", "made"]
    assert "private_key" not in call(cloud, "GET", "/os-keypairs/made", token).json()["keypair"]
    assert call(cloud, "POST", "/os-keypairs", token, json={"keypair": {"name": "laptop", "public_key": key}}) \
        .json()["conflictingRequest"]["code"] == 409
    # Another user has none of them, and cannot delete them.
    other = world[2]["member-b"]
    assert call(cloud, "GET", "/os-keypairs", other).json()["keypairs"] == []
    assert call(cloud, "DELETE", "/os-keypairs/laptop", other).status_code == 404
    assert call(cloud, "DELETE", "/os-keypairs/laptop", token).status_code == 202
    assert call(cloud, "GET", "/os-keypairs/laptop", token).status_code == 404


@pytest.mark.parametrize("key", [
    "ssh-ed25519 AAAAnotbase64!!",
    "ssh-dss AAAAB3NzaC1kc3MAAACBAP",
    'command="rm -rf /" ' + public_key(),
    public_key() + "\n" + public_key(),
    public_key("evil\x00comment"),
    "ssh-rsa",
    "x" * 20000,
], ids=["not-base64", "dss", "with-options", "two-lines", "nul-in-comment", "no-key", "too-long"])
def test_a_public_key_that_is_not_exactly_one_key_is_refused(member, key):
    cloud, projects, token = member
    r = call(cloud, "POST", "/os-keypairs", token, json={"keypair": {"name": "k", "public_key": key}})
    assert r.status_code == 400, r.text
    assert call(cloud, "GET", "/os-keypairs", token).json()["keypairs"] == []


def test_quota_sets_and_limits(member):
    cloud, projects, token = member
    shown = call(cloud, "GET", "/os-quota-sets/" + projects["a"], token).json()["quota_set"]
    assert shown["id"] == projects["a"] and shown["instances"] == 10 and shown["cores"] == 20
    # Members read their own project's quotas only, and change none.
    assert call(cloud, "GET", "/os-quota-sets/" + projects["b"], token).status_code == 403
    assert call(cloud, "PUT", "/os-quota-sets/" + projects["a"], token,
                json={"quota_set": {"instances": 100}}).status_code == 403
    changed = call(cloud, "PUT", "/os-quota-sets/" + projects["a"], cloud.admin,
                   json={"quota_set": {"instances": 2, "cores": -1}})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["quota_set"]["instances"], changed.json()["quota_set"]["cores"]) == (2, -1)
    absolute = call(cloud, "GET", "/limits", token).json()["limits"]["absolute"]
    assert absolute["maxTotalInstances"] == 2 and absolute["maxTotalCores"] == -1
    assert absolute["totalInstancesUsed"] == 0
    for bad in ({"instances": -2}, {"instances": "x"}, {"nonsense": 1}, {"instances": 2 ** 40}):
        r = call(cloud, "PUT", "/os-quota-sets/" + projects["a"], cloud.admin, json={"quota_set": bad})
        assert r.status_code == 400, (bad, r.text)
    assert call(cloud, "GET", "/os-quota-sets/%s/defaults" % projects["a"], token).json()["quota_set"][
        "instances"] == 10
    assert call(cloud, "DELETE", "/os-quota-sets/" + projects["a"], cloud.admin).status_code == 202
    assert call(cloud, "GET", "/os-quota-sets/" + projects["a"], token).json()["quota_set"]["instances"] == 10


def test_the_keypair_quota_holds(member):
    cloud, projects, token = member
    call(cloud, "PUT", "/os-quota-sets/" + projects["a"], cloud.admin, json={"quota_set": {"key_pairs": 1}})
    assert call(cloud, "POST", "/os-keypairs", token, json={"keypair": {"name": "one"}}).status_code == 200
    r = call(cloud, "POST", "/os-keypairs", token, json={"keypair": {"name": "two"}})
    assert r.status_code == 403 and "Quota exceeded" in r.json()["forbidden"]["message"]


def test_a_missing_token_gets_novas_body(cloud):
    r = cloud.client.get(C + "/flavors")
    assert r.status_code == 401 and r.json()["unauthorized"]["code"] == 401
