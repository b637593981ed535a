"""Nova's server reads come from the hypervisors: the real instance_info through the instances resource view, on
libvirt's test driver (see conftest's hypervisor)."""

from __future__ import annotations

import pytest
from conftest import Cloud, bootstrapped_app
from fastapi.testclient import TestClient

C = "/compute/v2.1"


@pytest.fixture
def compute(views_settings, hypervisor):
    with TestClient(bootstrapped_app(views_settings)) as client:
        cloud = Cloud(client)
        a, b = cloud.project("proj-a"), cloud.project("proj-b")
        cloud.user("member-a", roles=[(a, "member")])
        cloud.user("member-b", roles=[(b, "member")])
        hypervisor([("web-a", a), ("db-a", a), ("web-b", b)])
        yield cloud, {"a": a, "b": b}, {"a": cloud.token("member-a", "password-123", "proj-a"),
                                        "b": cloud.token("member-b", "password-123", "proj-b")}


def get(cloud, token, path, status=200):
    r = cloud.client.get(C + path, headers={"X-Auth-Token": token})
    assert r.status_code == status, r.text
    return r.json()


def test_each_project_lists_its_own_servers(compute):
    cloud, p, t = compute
    listed = get(cloud, t["a"], "/servers")["servers"]
    assert sorted(s["name"] for s in listed) == ["db-a", "web-a"]
    assert all(set(s) == {"id", "name", "links"} for s in listed)
    detail = {s["name"]: s for s in get(cloud, t["a"], "/servers/detail")["servers"]}
    web = detail["web-a"]
    assert (web["status"], web["tenant_id"], web["OS-EXT-STS:vm_state"], web["OS-EXT-STS:power_state"]) == \
        ("ACTIVE", p["a"], "active", 1)
    assert web["flavor"]["id"] == "m1.tiny" and web["hostId"]
    assert "OS-EXT-SRV-ATTR:host" not in web  # the hypervisor is the cloud admin's to know
    assert get(cloud, t["a"], "/servers/" + web["id"])["server"]["name"] == "web-a"
    # Another project's server is not found, not forbidden: its existence is not told.
    other = get(cloud, t["b"], "/servers")["servers"][0]
    assert get(cloud, t["a"], "/servers/" + other["id"], 404)["itemNotFound"]["code"] == 404


def test_filters_and_the_admins_view(compute):
    cloud, p, t = compute
    assert [s["name"] for s in get(cloud, t["a"], "/servers/detail?name=^web")["servers"]] == ["web-a"]
    assert get(cloud, t["a"], "/servers/detail?status=SHUTOFF")["servers"] == []
    assert get(cloud, t["a"], "/servers?name=(", 400)["badRequest"]["code"] == 400
    # A pattern that would backtrack for ever is refused, not run.
    assert get(cloud, t["a"], "/servers?name=(a%2B)%2B$", 400)["badRequest"]["code"] == 400
    assert [s["name"] for s in get(cloud, t["a"], "/servers?name=-a$")["servers"]] == ["db-a", "web-a"]
    assert [s["name"] for s in get(cloud, t["a"], "/servers?name=^db-a$")["servers"]] == ["db-a"]
    # A flavor of that name in the API: the server points at its id.
    made = cloud.client.post(C + "/flavors", headers={"X-Auth-Token": cloud.admin},
                             json={"flavor": {"name": "m1.tiny", "vcpus": 1, "ram": 256, "disk": 1}}).json()
    assert get(cloud, t["a"], "/servers/detail?name=web")["servers"][0]["flavor"]["id"] == made["flavor"]["id"]
    everyone = get(cloud, cloud.admin, "/servers/detail?all_tenants=1")["servers"]
    assert sorted(s["name"] for s in everyone) == ["db-a", "web-a", "web-b"]
    assert {s["OS-EXT-SRV-ATTR:host"] for s in everyone} == {"hv1"}
    # all_tenants from anyone else is the own project, as in Nova.
    assert sorted(s["name"] for s in get(cloud, t["a"], "/servers?all_tenants=1")["servers"]) == ["db-a", "web-a"]


def test_limits_count_the_projects_servers(compute):
    cloud, p, t = compute
    absolute = get(cloud, t["a"], "/limits")["limits"]["absolute"]
    assert (absolute["totalInstancesUsed"], absolute["totalCoresUsed"], absolute["totalRAMUsed"]) == (2, 2, 512)
