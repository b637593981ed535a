"""Neutron's networks and subnets: each change a job of its runbook's template, BUILD until the hosts show it, the
display names kept by the API, tenant VNIs given out once, project isolation, quotas, Neutron's errors.

The runbooks here are stand-ins with the real ones' names and variables that keep the hosts' networks in a JSON
file the networks view reads (the real runbooks run on real hosts in the network_multinode scenario)."""

from __future__ import annotations

import json

import pytest
from conftest import Cloud, bootstrapped_app, register_runbooks, settle, with_views
from fastapi.testclient import TestClient

from nimbus_api.models import Job, Operation, Segment

N = "/networking/v2.0"

# network_info's items, kept in a file: what each stand-in runbook does to the hosts.
EDIT = r"""
- hosts: compute
  gather_facts: false
  tasks:
    - name: Fail as a host would
      ansible.builtin.fail:
        msg: "physical network {{ network_physical_network | default('') }} is not on this host"
      when: (network_physical_network | default('')) == 'nowhere'
    - name: Read the hosts' networks
      ansible.builtin.slurp:
        src: "{{ standin_networks }}"
      register: current
    - name: A subnet needs its network on the hosts, as the real runbook checks
      ansible.builtin.assert:
        that: subnet_network in (current.content | b64decode | from_json | map(attribute='name'))
        fail_msg: network {{ subnet_network }} is not a network of this project
      when: subnet_network is defined
    - name: Write them back changed
      ansible.builtin.copy:
        dest: "{{ standin_networks }}"
        content: "{{ (%s) | to_json }}"
        mode: "0600"
      vars:
        nets: "{{ current.content | b64decode | from_json }}"
"""
STANDINS = {
    "network_create.yml": EDIT % (
        "nets + [{'name': network_id, 'project': nimbus_project, 'type': network_type,"
        " 'segmentation_id': network_segmentation_id | default(none), 'mtu': network_mtu | default(1450),"
        " 'physical_network': network_physical_network | default(none), 'shared': network_shared,"
        " 'external': network_external, 'subnets': [], 'port_count': 0}]"),
    "network_delete.yml": EDIT % "nets | rejectattr('name', 'equalto', network_id) | list",
    "subnet_create.yml": EDIT % (
        "nets | rejectattr('name', 'equalto', subnet_network) | list + (nets | selectattr('name', 'equalto',"
        " subnet_network) | map('combine', {'subnets': (nets | selectattr('name', 'equalto', subnet_network)"
        " | first).subnets + [{'name': subnet_id, 'network': subnet_network, 'project': nimbus_project,"
        " 'cidr': subnet_cidr, 'gateway': subnet_gateway | default(none), 'allocation_pools':"
        " subnet_allocation_pools | default([]), 'dns_servers': subnet_dns_servers | default([]),"
        " 'host_routes': subnet_host_routes | default([]), 'enable_dhcp': subnet_enable_dhcp}]}) | list)"),
    "subnet_delete.yml": EDIT % (
        "nets | rejectattr('name', 'equalto', subnet_network) | list + (nets | selectattr('name', 'equalto',"
        " subnet_network) | map('combine', {'subnets': (nets | selectattr('name', 'equalto', subnet_network)"
        " | first).subnets | rejectattr('name', 'equalto', subnet_id) | list}) | list)"),
}


@pytest.fixture
def neutron(settings, tmp_path):
    for name, text in STANDINS.items():
        (settings.playbooks_dir / name).write_text(text)
    hosts = tmp_path / "networks.json"
    hosts.write_text(json.dumps([{"name": "public", "project": "", "type": "flat", "physical_network": "external",
                                  "segmentation_id": None, "mtu": 1500, "shared": False, "external": True,
                                  "subnets": [], "port_count": 0}]))
    app = bootstrapped_app(settings.model_copy(update={"tenant_vni_range": "10000:10002"}))
    with_views(app, networks=lambda: json.loads(hosts.read_text()))
    with TestClient(app) as client:
        cloud = Cloud(client)
        a, b = cloud.project("proj-a"), cloud.project("proj-b")
        cloud.user("member-a", roles=[(a, "member")])
        cloud.user("reader-a", roles=[(a, "reader")])
        cloud.user("member-b", roles=[(b, "member")])
        register_runbooks(app, standin_networks=str(hosts))
        tokens = {n: cloud.token(n, "password-123", p) for n, p in
                  (("member-a", "proj-a"), ("reader-a", "proj-a"), ("member-b", "proj-b"))}
        yield cloud, app, {"a": a, "b": b}, tokens, hosts


def call(cloud, method, token, path, status, **kw):
    r = cloud.client.request(method, N + path, headers={"X-Auth-Token": token}, **kw)
    assert r.status_code == status, r.text
    return r.json() if r.content else None


def test_versions_and_extensions(neutron):
    cloud, app, p, t, hosts = neutron
    r = cloud.client.get("/networking")
    assert r.json()["versions"][0]["id"] == "v2.0"
    aliases = {e["alias"] for e in call(cloud, "GET", t["member-a"], "/extensions", 200)["extensions"]}
    assert {"external-net", "provider"} <= aliases
    assert call(cloud, "GET", t["member-a"], "/extensions/nope", 404)["NeutronError"]["type"] == "NotFound"


def test_a_tenant_network_and_its_subnet(neutron):
    cloud, app, p, t, hosts = neutron
    made = call(cloud, "POST", t["member-a"], "/networks", 201, json={"network": {"name": "private {{ x }}"}})
    network = made["network"]
    assert (network["status"], network["name"], network["project_id"]) == ("BUILD", "private {{ x }}", p["a"])
    assert "provider:segmentation_id" not in network  # the cloud admin's to know
    settle(app)
    shown = call(cloud, "GET", t["member-a"], "/networks/" + network["id"], 200)["network"]
    assert (shown["status"], shown["name"], shown["mtu"]) == ("ACTIVE", "private {{ x }}", 1450), shown
    on_hosts = {n["name"]: n for n in json.loads(hosts.read_text())}
    assert (on_hosts[network["id"]]["type"], on_hosts[network["id"]]["segmentation_id"]) == ("vxlan", 10000)
    # The external network is every project's to see; another project's network is not.
    names = {n["name"] for n in call(cloud, "GET", t["member-a"], "/networks", 200)["networks"]}
    assert names == {"private {{ x }}", "public"}
    assert call(cloud, "GET", t["member-b"], "/networks/" + network["id"], 404)["NeutronError"]["type"] == "NotFound"
    assert [n["name"] for n in call(cloud, "GET", t["member-a"], "/networks?router:external=true", 200)["networks"]] \
        == ["public"]
    # Subnet: checked, then made by its runbook.
    body = {"subnet": {"network_id": network["id"], "cidr": "10.20.0.0/24", "name": "sub",
                       "dns_nameservers": ["10.20.0.1"]}}
    subnet = call(cloud, "POST", t["member-a"], "/subnets", 201, json=body)["subnet"]
    assert (subnet["gateway_ip"], subnet["cidr"], subnet["network_id"]) == ("10.20.0.1", "10.20.0.0/24", network["id"])
    settle(app)
    listed = call(cloud, "GET", t["member-a"], "/subnets", 200)["subnets"]
    assert [(s["name"], s["cidr"], s["dns_nameservers"]) for s in listed] == [("sub", "10.20.0.0/24", ["10.20.0.1"])]
    assert call(cloud, "GET", t["member-a"], "/networks/" + network["id"], 200)["network"]["subnets"] == [subnet["id"]]
    for bad in ({"cidr": "10.20.0.128/25"}, {"cidr": "10.30.0.1/24"}, {"cidr": "fd00::/64"},
                {"cidr": "10.30.0.0/24", "gateway_ip": "10.99.0.1"}, {"cidr": "10.30.0.0/24", "ip_version": 6},
                {"cidr": "10.30.0.0/24", "dns_nameservers": ["$(reboot)"]}):
        call(cloud, "POST", t["member-a"], "/subnets", 400, json={"subnet": dict(network_id=network["id"], **bad)})
    # Another project cannot add a subnet to it, nor delete it; a reader cannot either.
    call(cloud, "POST", t["member-b"], "/subnets", 404, json={"subnet": dict(body["subnet"], cidr="10.40.0.0/24")})
    call(cloud, "DELETE", t["member-b"], "/networks/" + network["id"], 404)
    call(cloud, "DELETE", t["reader-a"], "/networks/" + network["id"], 403)
    # Renamed in place; the hosts do not change.
    renamed = call(cloud, "PUT", t["member-a"], "/networks/" + network["id"], 200,
                   json={"network": {"name": "renamed"}})["network"]
    assert renamed["name"] == "renamed"
    call(cloud, "PUT", t["member-a"], "/networks/" + network["id"], 400, json={"network": {"shared": True}})
    call(cloud, "DELETE", t["member-a"], "/subnets/" + subnet["id"], 204)
    settle(app)
    assert call(cloud, "GET", t["member-a"], "/subnets", 200)["subnets"] == []
    call(cloud, "DELETE", t["member-a"], "/networks/" + network["id"], 204)
    settle(app)
    call(cloud, "GET", t["member-a"], "/networks/" + network["id"], 404)
    assert network["id"] not in {n["name"] for n in json.loads(hosts.read_text())}


def test_vnis_are_given_once_and_come_back_after_a_delete(neutron):
    cloud, app, p, t, hosts = neutron
    ids = [call(cloud, "POST", t["member-a" if n % 2 else "member-b"], "/networks", 201,
                json={"network": {"name": "n%d" % n}})["network"]["id"] for n in range(3)]
    # The range holds three: the fourth is refused, with nothing queued.
    r = call(cloud, "POST", t["member-a"], "/networks", 503, json={"network": {"name": "n3"}})
    assert "tenant_vni_range" in r["NeutronError"]["message"]
    settle(app)
    on_hosts = {n["name"]: n["segmentation_id"] for n in json.loads(hosts.read_text()) if n["type"] == "vxlan"}
    assert [on_hosts[i] for i in ids] == [10000, 10001, 10002]
    # n0 (project b's) goes; its VNI is given again once its deletion has finished.
    call(cloud, "DELETE", t["member-b"], "/networks/" + ids[0], 204)
    settle(app)
    again = call(cloud, "POST", t["member-a"], "/networks", 201, json={"network": {"name": "again"}})["network"]
    settle(app)
    on_hosts = {n["name"]: n["segmentation_id"] for n in json.loads(hosts.read_text()) if n["type"] == "vxlan"}
    assert on_hosts[again["id"]] == 10000 and ids[0] not in on_hosts
    with app.state.sessions() as db:
        assert db.query(Segment).count() == 3


def test_admin_only_attributes_quotas_and_a_failed_create(neutron):
    cloud, app, p, t, hosts = neutron
    for attrs in ({"shared": True}, {"router:external": True}, {"provider:network_type": "flat"}):
        r = call(cloud, "POST", t["member-a"], "/networks", 403, json={"network": dict(name="x", **attrs)})
        assert r["NeutronError"]["type"] == "PolicyNotAuthorized"
    call(cloud, "POST", t["member-a"], "/networks", 403, json={"network": {"name": "x", "project_id": p["b"]}})
    # The cloud admin makes a provider network for project a, which a sees; a failed one shows its fault.
    admin = cloud.admin
    flat = call(cloud, "POST", admin, "/networks", 201, json={"network": {
        "name": "flat", "provider:network_type": "flat", "provider:physical_network": "physnet1",
        "project_id": p["a"]}})["network"]
    doomed = call(cloud, "POST", admin, "/networks", 201, json={"network": {
        "name": "doomed", "provider:network_type": "flat", "provider:physical_network": "nowhere"}})["network"]
    settle(app)
    assert call(cloud, "GET", t["member-a"], "/networks/" + flat["id"], 200)["network"]["status"] == "ACTIVE"
    failed = call(cloud, "GET", admin, "/networks/" + doomed["id"], 200)["network"]
    assert failed["status"] == "ERROR" and "physical network nowhere is not on this host" in failed["description"]
    call(cloud, "DELETE", admin, "/networks/" + doomed["id"], 204)
    settle(app)
    call(cloud, "GET", admin, "/networks/" + doomed["id"], 404)
    call(cloud, "POST", admin, "/networks", 400, json={"network": {"name": "x", "provider:network_type": "vlan"}})
    # Quota: one more network than allowed is refused (Neutron's 409), with nothing queued.
    from nimbus_api import quotas
    with app.state.sessions() as db:
        quotas.set_limits(db, p["b"], {"networks": 1})
        db.commit()
        before = db.query(Job).count()
    call(cloud, "POST", t["member-b"], "/networks", 201, json={"network": {"name": "one"}})
    r = call(cloud, "POST", t["member-b"], "/networks", 409, json={"network": {"name": "two"}})
    assert "Quota exceeded" in r["NeutronError"]["message"]
    with app.state.sessions() as db:
        assert db.query(Job).count() == before + 1
        assert db.query(Operation).filter(Operation.resource == "network").count() == 4


def test_a_subnet_made_at_once_waits_for_its_network(neutron):
    """A client makes the subnet right after the network, while the network's job is still queued: the subnet's job
    runs after the network's (its stand-in fails on a network the hosts do not have yet)."""
    cloud, app, p, t, hosts = neutron
    network = call(cloud, "POST", t["member-a"], "/networks", 201, json={"network": {"name": "quick"}})["network"]
    subnet = call(cloud, "POST", t["member-a"], "/subnets", 201, json={"subnet": {
        "network_id": network["id"], "cidr": "10.60.0.0/24"}})["subnet"]
    settle(app)
    assert call(cloud, "GET", t["member-a"], "/networks/" + network["id"], 200)["network"]["subnets"] == [subnet["id"]]
    # And the other way round: the network's deletion waits for its subnet's.
    call(cloud, "DELETE", t["member-a"], "/subnets/" + subnet["id"], 204)
    call(cloud, "DELETE", t["member-a"], "/networks/" + network["id"], 204)
    settle(app)
    with app.state.sessions() as db:
        jobs = {o.action + " " + o.resource: db.get(Job, o.job_id) for o in db.query(Operation)}
    assert all(j.status == "successful" for j in jobs.values()), {k: j.status for k, j in jobs.items()}
    assert jobs["create subnet"].after == jobs["create network"].id
    assert jobs["delete network"].after == jobs["delete subnet"].id
    order = sorted(jobs, key=lambda k: jobs[k].started_at)
    assert order == ["create network", "create subnet", "delete subnet", "delete network"]
    assert [n["name"] for n in json.loads(hosts.read_text())] == ["public"]


def test_a_job_waits_while_a_job_it_comes_after_has_not_ended(neutron):
    cloud, app, p, t, hosts = neutron
    from nimbus_api.models import JobTemplate
    runner = app.state.runner
    with app.state.sessions() as db:
        template = db.query(JobTemplate).filter(JobTemplate.name == "nimbus.network_delete").one()
        first = Job(template_id=template.id, project_id=p["a"], launched_by="x", status="running",
                    extra_vars="{}", targets="")
        db.add(first)
        db.flush()
        second = Job(template_id=template.id, project_id=p["a"], launched_by="x", extra_vars="{}", targets="",
                     after=first.id)
        db.add(second)
        db.commit()
        assert runner.waiting(db, second) is True
        assert runner.run(second.id) == "pending"
        first.status = "failed"  # ended, however: the next one may go
        db.commit()
        assert runner.waiting(db, second) is False
