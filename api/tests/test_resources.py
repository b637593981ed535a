"""Resource views run the collection's real _info modules through ansible-runner.

Instances come from libvirt's test driver (a real libvirt connection whose domains are defined by an XML
file), so `instance_info` reads real domain XML with nimbus metadata; a second hypervisor that refuses
connections shows how an unreachable host is reported without hiding the others' results.
"""

from __future__ import annotations

import pytest
from conftest import Cloud, bootstrapped_app
from fastapi.testclient import TestClient


@pytest.fixture
def views(views_settings, hypervisor):
    with TestClient(bootstrapped_app(views_settings)) as client:
        cloud = Cloud(client)
        a, b = cloud.project("proj-a"), cloud.project("proj-b")
        cloud.user("reader-a", roles=[(a, "reader")])
        cloud.user("reader-b", roles=[(b, "reader")])
        yield cloud, {"a": a, "b": b}, {"a": cloud.token("reader-a", "password-123", "proj-a"),
                                        "b": cloud.token("reader-b", "password-123", "proj-b")}


def get(cloud, token, project, kind):
    r = cloud.call("GET", "/v1/projects/%s/resources/%s" % (project, kind), token)
    assert r.status_code == 200, r.text
    return r.json()


def test_each_project_sees_its_own_instances_and_a_dead_host_is_reported(views, hypervisor):
    cloud, p, t = views
    # Projects are matched by id (what jobs pass as nimbus_project), never by name: names repeat across domains.
    hypervisor([("web-a", p["a"]), ("db-a", p["a"]), ("named-a", "proj-a"), ("web-b", p["b"])])
    mine = get(cloud, t["a"], p["a"], "instances")
    assert mine["available"] is True
    assert [(i["name"], i["host"], i["state"]) for i in mine["items"]] == [("db-a", "hv1", "running"),
                                                                           ("web-a", "hv1", "running")]
    assert [e["host"] for e in mine["errors"]] == ["hv2"]
    theirs = get(cloud, t["b"], p["b"], "instances")
    assert [i["name"] for i in theirs["items"]] == ["web-b"]
    # Another project's view is refused outright.
    assert cloud.call("GET", "/v1/projects/%s/resources/instances" % p["b"], t["a"]).status_code == 403


def test_reads_are_cached_briefly(views, hypervisor):
    import time

    cloud, p, t = views
    resources = cloud.client.app.state.resources
    resources.settings = resources.settings.model_copy(update={"resources_ttl": 2})
    hypervisor([("web-a", p["a"])])
    first = get(cloud, t["a"], p["a"], "instances")
    hypervisor([("web-a", p["a"]), ("new-a", p["a"])])
    again = get(cloud, t["a"], p["a"], "instances")
    assert again["read_at"] == first["read_at"] and len(again["items"]) == 1
    time.sleep(2.1)
    fresh = get(cloud, t["a"], p["a"], "instances")
    assert fresh["read_at"] > first["read_at"]
    assert sorted(i["name"] for i in fresh["items"]) == ["new-a", "web-a"]


def test_kinds_without_a_module_are_empty_and_marked(views):
    cloud, p, t = views
    view = get(cloud, t["a"], p["a"], "volumes")
    assert view == {"kind": "volumes", "available": False, "items": [], "errors": [], "read_at": None}
    # image_info exists, but the images view runs it on the image store's host, which this cloud has not: the
    # view is not run at all.
    images = get(cloud, t["a"], p["a"], "images")
    assert images == {"kind": "images", "available": False, "items": [], "errors": [], "read_at": None}
    # The hypervisors' caches are read on the compute hosts, and the view says which could not answer (these
    # have no image cache).
    cached = cloud.client.app.state.resources.for_project("cached_images", type("P", (), {"id": p["a"]}))
    assert cached["available"] is True and cached["items"] == []
    assert {e["host"] for e in cached["errors"]} == {"hv1", "hv2"}
    assert "apply the nimbus.cloud.kvm role first" in next(e["msg"] for e in cached["errors"] if e["host"] == "hv1")
    assert cloud.call("GET", "/v1/projects/%s/resources/flavors" % p["a"], t["a"]).status_code == 422


def test_without_an_inventory_views_are_empty(cloud):
    project = cloud.project("lonely")
    r = cloud.call("GET", "/v1/projects/%s/resources/instances" % project, cloud.admin)
    assert r.status_code == 200 and r.json()["available"] is False


def test_a_network_on_several_hosts_is_listed_once_with_the_network_nodes_subnets(settings, monkeypatch):
    """Compute hosts carry a network with no subnets; the network node holds them: whichever answers first, the
    one item has them."""
    import types

    from nimbus_api import resources

    answers = [("compute-1", {"id": "n1", "name": "net", "subnets": [], "port_count": 0}),
               ("net-1", {"id": "n1", "name": "net", "subnets": [{"name": "s1"}], "port_count": 2}),
               ("compute-2", {"id": "n1", "name": "net", "subnets": [], "port_count": 0})]
    events = [{"event": "runner_on_ok", "event_data": {"host": h, "res": {"networks": [i]}}} for h, i in answers]
    monkeypatch.setattr(resources.ansible_runner, "run", lambda **kw: types.SimpleNamespace(events=events))
    items, errors = resources.ResourceViews(settings)._run(resources.VIEWS["networks"])
    assert errors == [] and len(items) == 1
    assert (items[0]["subnets"], items[0]["port_count"], items[0]["host"]) == ([{"name": "s1"}], 2, "compute-1")


@pytest.mark.parametrize("inventory, pattern, runs", [
    ("compute:\n  hosts:\n    hv1: {}\n", "images[0]", False),
    ("compute:\n  hosts:\n    hv1: {}\n", "network:compute", True),
    ("all:\n  children:\n    images:\n      hosts:\n        s1: {}\n", "images[0]", True),
    ("all:\n  children:\n    storage:\n      children:\n        images:\n          hosts: {s1: {}}\n", "storage:x", True),
    ("images:\n  hosts: {}\n", "images[0]", False),
    ("[images]\ns1\n", "images[0]", True),  # not YAML: Ansible decides
])
def test_a_view_runs_only_where_its_groups_have_hosts(inventory, pattern, runs):
    from nimbus_api.resources import groups_with_hosts, pattern_groups

    groups = groups_with_hosts(inventory)
    assert (groups is None or any(g in groups for g in pattern_groups(pattern))) is runs
