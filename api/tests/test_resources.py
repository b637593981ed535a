"""Resource views run the collection's real _info modules through ansible-runner.

Instances come from libvirt's test driver (a real libvirt connection whose domains are defined by an XML
file), so `instance_info` reads real domain XML with nimbus metadata; a second hypervisor that refuses
connections shows how an unreachable host is reported without hiding the others' results.
"""

from __future__ import annotations

import time

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
    results, errors = resources.ResourceViews(settings)._run(resources.VIEWS["networks"])
    items = resources.items_of(resources.VIEWS["networks"], results)
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


def counting_views(settings, last_change, answers):
    """ResourceViews whose reads are counted per module, answering ``answers`` (module -> one host's result)."""
    from nimbus_api import resources

    views = resources.ResourceViews(settings.model_copy(update={"resources_ttl": 3600}), last_change)
    runs = []

    def run(view):
        runs.append(view.module)
        return [("host-1", answers[view.module])], []

    views._run = run
    return views, runs


def test_a_job_that_changes_a_kind_as_a_side_effect_makes_its_next_read_fresh(settings):
    """A server's delete removes its ports and detaches its volumes: after such a job ends, the ports and volumes
    are read again, however young the cached read; a job of an unrelated resource leaves the cache alone."""
    ended = {}
    views, runs = counting_views(settings, lambda resources: max([ended.get(r, 0) for r in resources] or [0]), {
        "port_info": {"ports": [{"id": "p1", "name": "p1"}]},
        "volume_info": {"volumes": [{"id": "v1", "name": "v1"}], "snapshots": [], "backups": [],
                        "volume_types": [{"name": "standard"}]}})
    views.read("ports")
    views.read("ports")
    assert runs == ["port_info"]
    ended["image"] = time.time()
    views.read("ports")
    assert runs == ["port_info"]
    ended["server"] = time.time()
    items, _errors, read_at = views.read("ports")
    assert runs == ["port_info", "port_info"] and read_at < ended["server"] + 1 and items[0]["id"] == "p1"
    views.read("volumes")
    assert runs[-1] == "volume_info"
    ended["server"] = time.time()
    views.read("volumes")
    assert runs.count("volume_info") == 2


def test_kinds_of_one_module_share_its_read(settings):
    """The volumes, snapshots, backups and volume types are one run of volume_info on the storage hosts; each kind
    is its own list of it."""
    views, runs = counting_views(settings, None, {"volume_info": {
        "volumes": [{"id": "v1", "name": "v1"}], "snapshots": [{"id": "s1", "name": "s1"}], "backups": [],
        "volume_types": [{"name": "standard"}]}})
    kinds = {kind: views.read(kind)[0] for kind in ("volumes", "volume_snapshots", "volume_backups", "volume_types")}
    assert runs == ["volume_info"]
    assert {k: [i["name"] for i in v] for k, v in kinds.items()} == {
        "volumes": ["v1"], "volume_snapshots": ["s1"], "volume_backups": [], "volume_types": ["standard"]}
    assert kinds["volumes"][0]["host"] == "host-1"


def test_the_last_change_is_any_projects_job_of_the_resources_named(app):
    """What makes a read stale is in the jobs' records, whichever project or API process ran them: a finished job
    counts, one still running does not (its end will)."""
    from datetime import datetime, timedelta, timezone

    from nimbus_api.models import Job, JobTemplate, Operation, Project

    with app.state.sessions() as db:
        project = db.query(Project).first()
        template = JobTemplate(name="stand-in", playbook="chatty.yml", inventory="{}")
        db.add(template)
        db.flush()
        ended = datetime.now(timezone.utc) - timedelta(seconds=30)
        for resource, status, finished in (("server", "successful", ended), ("port", "running", None)):
            job = Job(template_id=template.id, project_id=project.id, launched_by="test", status=status,
                      finished_at=finished)
            db.add(job)
            db.flush()
            db.add(Operation(resource=resource, resource_id=resource + "-1", action="delete", project_id=project.id,
                             user_id="test", job_id=job.id, shown="{}"))
        db.commit()
    last_change = app.state.resources.last_change
    assert abs(last_change(("port", "server")) - ended.timestamp()) < 0.01
    assert last_change(("port",)) == 0 and last_change(("image", "volume")) == 0
