"""Neutron's ports, security groups and rules: each change a job of its runbook, the project's default group made
once, rule ids stable from what a rule matches, the hostile inputs refused before anything is queued, project
isolation, quotas, and servers created with a port or with groups.

The runbooks are stand-ins with the real ones' names and variables, keeping the network node's ports and the
compute hosts' groups in JSON files that the views read (the real runbooks run on real hosts in the
network_multinode scenario)."""

from __future__ import annotations

import json

import pytest
from conftest import TINY_IMAGE, Cloud, bootstrapped_app, register_runbooks, with_views
from fastapi.testclient import TestClient
from test_neutron import call, settle

from nimbus_api.models import Job, Operation

EDIT = r"""
- hosts: compute
  gather_facts: false
  tasks:
    - name: Read the hosts' {kind}
      ansible.builtin.slurp:
        src: "{{{{ standin_{kind} }}}}"
      register: current
    - name: Write them back changed
      ansible.builtin.copy:
        dest: "{{{{ standin_{kind} }}}}"
        content: "{{{{ ({change}) | to_json }}}}"
        mode: "0600"
      vars:
        items: "{{{{ current.content | b64decode | from_json }}}}"
"""
STANDINS = {
    "port_create.yml": EDIT.format(kind="ports", change=(
        "items + [{'name': port_id, 'id': port_id, 'network': port_network, 'project': nimbus_project, 'mac':"
        " port_mac | default('fa:16:3e:00:00:09'), 'fixed_ips': port_fixed_ips | default([{'subnet': 'subnet-1',"
        " 'ip': '10.1.0.9'}]), 'device_owner': '', 'device_id': '', 'security_groups':"
        " port_security_groups | default([]), 'port_security': port_security}]")),
    "port_delete.yml": EDIT.format(kind="ports", change="items | rejectattr('name', 'equalto', port_id) | list"),
    "security_group_create.yml": EDIT.format(kind="groups", change=(
        "items | rejectattr('name', 'equalto', security_group_id) | list + [{'name': security_group_id,"
        " 'project': nimbus_project, 'description': security_group_description | default(''),"
        " 'allow_all_egress': false, 'rules': security_group_rules | default([])}]")),
    "security_group_delete.yml": EDIT.format(
        kind="groups", change="items | rejectattr('name', 'equalto', security_group_id) | list"),
    "server_create.yml": "- hosts: compute\n  gather_facts: false\n  tasks: []\n",
}
NETWORKS = [{"name": "net-a", "project": None, "type": "vxlan", "segmentation_id": 10000, "mtu": 1450,
             "shared": False, "external": False, "port_count": 0,
             "subnets": [{"name": "subnet-1", "network": "net-a", "project": None, "cidr": "10.1.0.0/24",
                          "gateway": "10.1.0.1", "enable_dhcp": True}]},
            {"name": "net-b", "project": None, "type": "vxlan", "segmentation_id": 10001, "mtu": 1450,
             "shared": False, "external": False, "port_count": 0,
             "subnets": [{"name": "subnet-2", "network": "net-b", "project": None, "cidr": "10.2.0.0/24",
                          "gateway": "10.2.0.1", "enable_dhcp": True}]}]


@pytest.fixture
def neutron(settings, tmp_path):
    for name, text in STANDINS.items():
        (settings.playbooks_dir / name).write_text(text)
    files = {kind: tmp_path / (kind + ".json") for kind in ("ports", "groups")}
    for path in files.values():
        path.write_text("[]")
    app = bootstrapped_app(settings)
    with TestClient(app) as client:
        cloud = Cloud(client)
        a, b = cloud.project("proj-a"), cloud.project("proj-b")
        networks = json.loads(json.dumps(NETWORKS))
        networks[0]["project"] = networks[0]["subnets"][0]["project"] = a
        networks[1]["project"] = networks[1]["subnets"][0]["project"] = b
        with_views(app, networks=lambda: networks, ports=lambda: json.loads(files["ports"].read_text()),
                   security_groups=lambda: json.loads(files["groups"].read_text()), images=lambda: [TINY_IMAGE],
                   instances=lambda: [])
        cloud.user("member-a", roles=[(a, "member")])
        cloud.user("reader-a", roles=[(a, "reader")])
        cloud.user("member-b", roles=[(b, "member")])
        register_runbooks(app, standin_ports=str(files["ports"]), standin_groups=str(files["groups"]))
        tokens = {n: cloud.token(n, "password-123", p) for n, p in
                  (("member-a", "proj-a"), ("reader-a", "proj-a"), ("member-b", "proj-b"))}
        yield cloud, app, {"a": a, "b": b}, tokens, files


def on_hosts(files, kind):
    return {i["name"]: i for i in json.loads(files[kind].read_text())}


def jobs_of(app, resource):
    """The (action, variables) of each job queued for this kind of resource, oldest first."""
    with app.state.sessions() as db:
        return [(op.action, json.loads(db.get(Job, op.job_id).extra_vars)) for op in
                db.query(Operation).filter(Operation.resource == resource).order_by(Operation.id)]


def job_vars(app, resource):
    return [variables for _action, variables in jobs_of(app, resource)]


def test_each_project_has_one_default_group(neutron):
    cloud, app, p, t, files = neutron
    listed = call(cloud, "GET", t["member-a"], "/security-groups", 200)["security_groups"]
    assert [g["name"] for g in listed] == ["default"]
    default = listed[0]
    rules = {(r["direction"], r["protocol"], r["remote_group_id"]) for r in default["security_group_rules"]}
    assert rules == {("egress", None, None), ("ingress", None, default["id"])}
    # Asked again (and by a reader, who may not make one), it is still one group, made once.
    call(cloud, "GET", t["member-a"], "/security-groups", 200)
    assert [g["id"] for g in call(cloud, "GET", t["reader-a"], "/security-groups", 200)["security_groups"]] \
        == [default["id"]]
    settle(app)
    assert [action for action, _vars in jobs_of(app, "security_group")] == ["create"]
    held = on_hosts(files, "groups")[default["id"]]
    assert (held["project"], held["allow_all_egress"]) == (p["a"], False)
    assert {r["direction"] for r in held["rules"]} == {"ingress", "egress"}
    # Another project sees its own default group only; a second "default" is refused.
    other = call(cloud, "GET", t["member-b"], "/security-groups", 200)["security_groups"]
    assert [g["name"] for g in other] == ["default"] and other[0]["id"] != default["id"]
    call(cloud, "POST", t["member-a"], "/security-groups", 409, json={"security_group": {"name": "default"}})
    call(cloud, "DELETE", t["member-a"], "/security-groups/" + default["id"], 409)


def test_a_group_and_its_rules(neutron):
    cloud, app, p, t, files = neutron
    made = call(cloud, "POST", t["member-a"], "/security-groups", 201,
                json={"security_group": {"name": "web {{ x }}", "description": "{% raw %}"}})["security_group"]
    group_id = made["id"]
    assert (made["name"], made["description"]) == ("web {{ x }}", "{% raw %}")
    assert [(r["direction"], r["protocol"]) for r in made["security_group_rules"]] == [("egress", None)]
    ssh = call(cloud, "POST", t["member-a"], "/security-group-rules", 201, json={"security_group_rule": {
        "security_group_id": group_id, "direction": "ingress", "protocol": "tcp", "port_range_min": 22,
        "port_range_max": 22, "remote_ip_prefix": "192.0.2.0/24"}})["security_group_rule"]
    # The rule shows at once, before its job ran, with the id it keeps.
    shown = call(cloud, "GET", t["member-a"], "/security-group-rules/" + ssh["id"], 200)["security_group_rule"]
    assert (shown["port_range_min"], shown["port_range_max"], shown["remote_ip_prefix"]) == (22, 22, "192.0.2.0/24")
    call(cloud, "POST", t["member-a"], "/security-group-rules", 409, json={"security_group_rule": {
        "security_group_id": group_id, "direction": "ingress", "protocol": "6", "port_range_min": 22,
        "remote_ip_prefix": "192.0.2.0/24"}})
    settle(app)
    held = on_hosts(files, "groups")[group_id]
    assert held["description"] == "{% raw %}"
    assert {"direction": "ingress", "protocol": "tcp", "port_range_min": 22, "port_range_max": None,
            "remote_ip_prefix": "192.0.2.0/24", "remote_group": None} in held["rules"]
    after = call(cloud, "GET", t["member-a"], "/security-groups/" + group_id, 200)["security_group"]
    ids = {r["id"] for r in after["security_group_rules"]}
    assert ssh["id"] in ids and len(ids) == 2
    # Deleting the egress rule closes egress, as in Neutron.
    egress = [r["id"] for r in after["security_group_rules"] if r["direction"] == "egress"][0]
    call(cloud, "DELETE", t["member-a"], "/security-group-rules/" + egress, 204)
    settle(app)
    assert [r["direction"] for r in on_hosts(files, "groups")[group_id]["rules"]] == ["ingress"]
    listed = call(cloud, "GET", t["member-a"], "/security-group-rules?security_group_id=" + group_id,
                  200)["security_group_rules"]
    assert [r["id"] for r in listed] == [ssh["id"]]
    # Changes of one group run one after the other.
    vars_seen = [v["security_group_rules"] for v in job_vars(app, "security_group") if v["security_group_id"] == group_id]
    assert [len(r) for r in vars_seen] == [1, 2, 1]
    call(cloud, "DELETE", t["member-a"], "/security-groups/" + group_id, 204)
    settle(app)
    assert group_id not in on_hosts(files, "groups")
    call(cloud, "GET", t["member-a"], "/security-groups/" + group_id, 404)


@pytest.mark.parametrize("rule,status", [
    ({"protocol": "tcp; nft flush ruleset"}, 400),
    ({"protocol": "gre"}, 400),
    ({"ethertype": "IPv6"}, 400),
    ({"remote_ip_prefix": "::/0"}, 400),
    ({"remote_ip_prefix": "10.0.0.0/8 accept"}, 400),
    ({"protocol": "tcp", "port_range_min": 80, "port_range_max": 22}, 400),
    ({"protocol": "any", "port_range_min": 80}, 400),
    ({"protocol": "icmp", "port_range_min": 300}, 400),
    ({"direction": "sideways"}, 400),
    ({"remote_ip_prefix": "10.0.0.0/8", "remote_group_id": "x"}, 400),
    ({"remote_group_id": "{{ lookup('pipe', 'id') }}"}, 404),
])
def test_hostile_rules_are_refused_and_nothing_is_queued(neutron, rule, status):
    cloud, app, p, t, files = neutron
    group_id = call(cloud, "POST", t["member-a"], "/security-groups", 201,
                    json={"security_group": {"name": "g"}})["security_group"]["id"]
    body = dict({"security_group_id": group_id, "direction": "ingress"}, **rule)
    call(cloud, "POST", t["member-a"], "/security-group-rules", status, json={"security_group_rule": body})
    assert len(jobs_of(app, "security_group")) == 1  # the group's own creation only


def test_groups_are_their_projects(neutron):
    cloud, app, p, t, files = neutron
    a_group = call(cloud, "POST", t["member-a"], "/security-groups", 201,
                   json={"security_group": {"name": "a-only"}})["security_group"]["id"]
    b_group = call(cloud, "POST", t["member-b"], "/security-groups", 201,
                   json={"security_group": {"name": "b-only"}})["security_group"]["id"]
    settle(app)
    call(cloud, "GET", t["member-b"], "/security-groups/" + a_group, 404)
    call(cloud, "DELETE", t["member-b"], "/security-groups/" + a_group, 404)
    call(cloud, "POST", t["member-b"], "/security-group-rules", 404, json={"security_group_rule": {
        "security_group_id": a_group, "direction": "ingress"}})
    # A rule may not name another project's group as its peers.
    call(cloud, "POST", t["member-a"], "/security-group-rules", 404, json={"security_group_rule": {
        "security_group_id": a_group, "direction": "ingress", "remote_group_id": b_group}})
    assert b_group not in {r["security_group_id"] for r in
                           call(cloud, "GET", t["member-a"], "/security-group-rules", 200)["security_group_rules"]}
    call(cloud, "POST", t["reader-a"], "/security-groups", 403, json={"security_group": {"name": "r"}})
    call(cloud, "POST", t["member-a"], "/security-groups", 403,
         json={"security_group": {"name": "x", "project_id": p["b"]}})


def test_group_quotas(neutron):
    cloud, app, p, t, files = neutron
    from nimbus_api import quotas

    with app.state.sessions() as db:
        quotas.set_limits(db, p["a"], {"security_groups": 1, "security_group_rules": 1})
        db.commit()
    made = call(cloud, "POST", t["member-a"], "/security-groups", 201, json={"security_group": {"name": "one"}})
    call(cloud, "POST", t["member-a"], "/security-groups", 409, json={"security_group": {"name": "two"}})
    call(cloud, "POST", t["member-a"], "/security-group-rules", 409, json={"security_group_rule": {
        "security_group_id": made["security_group"]["id"], "direction": "ingress", "protocol": "icmp"}})


def test_a_port_made_used_by_a_server_and_deleted(neutron):
    cloud, app, p, t, files = neutron
    made = call(cloud, "POST", t["member-a"], "/ports", 201, json={"port": {
        "network_id": "net-a", "name": "db {{ 1 }}", "fixed_ips": [{"ip_address": "10.1.0.50"}],
        "mac_address": "FA:16:3E:00:00:50"}})["port"]
    port_id = made["id"]
    assert (made["name"], made["status"], made["network_id"]) == ("db {{ 1 }}", "DOWN", "net-a")
    settle(app)
    held = on_hosts(files, "ports")[port_id]
    assert (held["fixed_ips"], held["mac"]) == ([{"subnet": "subnet-1", "ip": "10.1.0.50"}], "fa:16:3e:00:00:50")
    default = [g["id"] for g in call(cloud, "GET", t["member-a"], "/security-groups", 200)["security_groups"]]
    assert held["security_groups"] == default  # no groups named: the project's default group
    listed = call(cloud, "GET", t["member-a"], "/ports?network_id=net-a", 200)["ports"]
    assert [(q["id"], q["fixed_ips"]) for q in listed] == [(port_id, [{"subnet_id": "subnet-1",
                                                                       "ip_address": "10.1.0.50"}])]
    assert call(cloud, "GET", t["member-b"], "/ports", 200)["ports"] == []
    call(cloud, "GET", t["member-b"], "/ports/" + port_id, 404)
    call(cloud, "PUT", t["member-a"], "/ports/" + port_id, 200, json={"port": {"name": "db"}})
    call(cloud, "PUT", t["member-a"], "/ports/" + port_id, 400, json={"port": {"device_id": "x"}})

    # A server created with the port takes it as it is.
    r = cloud.client.post("/compute/v2.1/servers", headers={"X-Auth-Token": t["member-a"]}, json={"server": {
        "name": "db1", "flavorRef": flavor(app), "imageRef": TINY_IMAGE["id"], "networks": [{"port": port_id}]}})
    assert r.status_code == 202, r.text
    settle(app)
    server_vars = job_vars(app, "server")[0]
    assert server_vars["server_networks"] == [{"network": "net-a", "port": port_id}]
    assert server_vars["server_security_groups"] == []  # the server makes no port, so needs no group
    # Plugged in (as the runbook leaves it), it is not deleted here, nor given to another server.
    ports = json.loads(files["ports"].read_text())
    ports[0].update(device_id=server_vars["server_id"], device_owner="compute")
    files["ports"].write_text(json.dumps(ports))
    shown = call(cloud, "GET", t["member-a"], "/ports/" + port_id, 200)["port"]
    assert (shown["status"], shown["device_owner"]) == ("ACTIVE", "compute:nova")
    call(cloud, "DELETE", t["member-a"], "/ports/" + port_id, 409)
    r = cloud.client.post("/compute/v2.1/servers", headers={"X-Auth-Token": t["member-a"]}, json={"server": {
        "name": "db2", "flavorRef": flavor(app), "imageRef": TINY_IMAGE["id"], "networks": [{"port": port_id}]}})
    assert r.status_code == 409, r.text
    # Another project's port is as unknown as one that does not exist: 400, as Nova answers either.
    for asker, port in (("member-b", port_id), ("member-a", "0" * 8 + "-0000-4000-8000-" + "0" * 12)):
        r = cloud.client.post("/compute/v2.1/servers", headers={"X-Auth-Token": t[asker]}, json={"server": {
            "name": "db3", "flavorRef": flavor(app), "imageRef": TINY_IMAGE["id"], "networks": [{"port": port}]}})
        assert r.status_code == 400 and "could not be found" in r.text, r.text
    ports[0].update(device_id="", device_owner="")
    files["ports"].write_text(json.dumps(ports))
    call(cloud, "DELETE", t["member-b"], "/ports/" + port_id, 404)
    call(cloud, "DELETE", t["member-a"], "/ports/" + port_id, 204)
    settle(app)
    assert on_hosts(files, "ports") == {}


@pytest.mark.parametrize("port,status", [
    ({"network_id": "net-b"}, 404),  # another project's network
    ({"network_id": "net-a", "fixed_ips": [{"ip_address": "10.2.0.5"}]}, 400),
    ({"network_id": "net-a", "fixed_ips": [{"subnet_id": "subnet-2"}]}, 400),
    ({"network_id": "net-a", "fixed_ips": [{"ip_address": "10.1.0.5; reboot"}]}, 400),
    ({"network_id": "net-a", "mac_address": "fa:16:3e:00:00:0g"}, 400),
    ({"network_id": "net-a", "device_id": "someone-else", "device_owner": "compute:nova"}, 400),
    ({"network_id": "net-a", "security_groups": ["no-such-group"]}, 404),
    ({"network_id": "net-a", "port_security_enabled": False, "security_groups": ["default"]}, 400),
])
def test_bad_ports_are_refused_and_nothing_is_queued(neutron, port, status):
    cloud, app, p, t, files = neutron
    call(cloud, "POST", t["member-a"], "/ports", status, json={"port": port})
    assert jobs_of(app, "port") == []


def test_port_quota_counts_the_ports_servers_make(neutron):
    cloud, app, p, t, files = neutron
    from nimbus_api import quotas

    with app.state.sessions() as db:
        quotas.set_limits(db, p["a"], {"ports": 1})
        db.commit()
    call(cloud, "POST", t["member-a"], "/ports", 201, json={"port": {"network_id": "net-a", "security_groups": []}})
    call(cloud, "POST", t["member-a"], "/ports", 409, json={"port": {"network_id": "net-a"}})
    r = cloud.client.post("/compute/v2.1/servers", headers={"X-Auth-Token": t["member-a"]}, json={"server": {
        "name": "vm", "flavorRef": flavor(app), "imageRef": TINY_IMAGE["id"], "networks": [{"uuid": "net-a"}]}})
    assert r.status_code == 403 and "port" in r.text, r.text


def test_a_server_on_a_network_gets_the_groups_it_names(neutron):
    cloud, app, p, t, files = neutron
    web = call(cloud, "POST", t["member-a"], "/security-groups", 201,
               json={"security_group": {"name": "web"}})["security_group"]["id"]
    r = cloud.client.post("/compute/v2.1/servers", headers={"X-Auth-Token": t["member-a"]}, json={"server": {
        "name": "vm", "flavorRef": flavor(app), "imageRef": TINY_IMAGE["id"], "networks": [{"uuid": "net-a"}],
        "security_groups": [{"name": "web"}, {"name": web}]}})
    assert r.status_code == 202, r.text
    assert r.json()["server"]["security_groups"] == [{"name": "web"}, {"name": web}]
    r = cloud.client.post("/compute/v2.1/servers", headers={"X-Auth-Token": t["member-a"]}, json={"server": {
        "name": "vm2", "flavorRef": flavor(app), "imageRef": TINY_IMAGE["id"], "networks": [{"uuid": "net-a"}]}})
    assert r.status_code == 202, r.text
    settle(app)
    first, second = job_vars(app, "server")
    assert first["server_security_groups"] == [web]
    default = [g["id"] for g in call(cloud, "GET", t["member-a"], "/security-groups?name=default", 200)["security_groups"]]
    assert second["server_security_groups"] == default
    r = cloud.client.post("/compute/v2.1/servers", headers={"X-Auth-Token": t["member-b"]}, json={"server": {
        "name": "vm", "flavorRef": flavor(app), "imageRef": TINY_IMAGE["id"], "networks": [{"uuid": "net-b"}],
        "security_groups": [{"name": web}]}})
    assert r.status_code == 404, r.text


def flavor(app):
    from nimbus_api.models import Flavor

    with app.state.sessions() as db:
        existing = db.query(Flavor).first()
        if existing is None:
            existing = Flavor(id="1", name="m1.nano", vcpus=1, ram_mb=64, disk_gb=1, is_public=True)
            db.add(existing)
            db.commit()
        return existing.id
