"""Neutron's routers and floating IPs: each change a job of its runbook given the whole state, interfaces added and
removed one after the other, floating IPs carried by the project's router, what Neutron refuses refused before
anything is queued, project isolation and quotas.

The runbooks are stand-ins with the real ones' names and variables, keeping the network node's routers, floating
IPs and ports in JSON files the views read (the real runbooks run on real hosts in the network_multinode
scenario)."""

from __future__ import annotations

import json
import threading

import pytest
from conftest import Cloud, bootstrapped_app, register_runbooks, with_views
from fastapi.testclient import TestClient
from test_neutron import call, settle
from test_neutron_ports_security import job_vars, jobs_of
from nimbus_api.openstack.neutron_ports import host_port_id

READ = r"""
    - name: Read the {kind}
      ansible.builtin.slurp:
        src: "{{{{ standin_{kind} }}}}"
      register: read_{kind}
"""
WRITE = r"""
- hosts: compute
  gather_facts: false
  tasks:
{reads}
    - name: Write them back changed
      ansible.builtin.copy:
        dest: "{{{{ standin_{kind} }}}}"
        content: "{{{{ ({change}) | to_json }}}}"
        mode: "0600"
      vars:
        routers: "{{{{ read_routers.content | b64decode | from_json }}}}"
        fips: "{{{{ read_fips.content | b64decode | from_json if read_fips is defined else [] }}}}"
        ports: "{{{{ read_ports.content | b64decode | from_json if read_ports is defined else [] }}}}"
"""


def standin(kind, change, reads=("routers",)):
    return WRITE.format(kind=kind, change=change, reads="".join(READ.format(kind=k) for k in reads))


STANDINS = {
    "router_create.yml": standin("routers", (
        "routers | rejectattr('name', 'equalto', router_id) | list + [{'name': router_id, 'project': nimbus_project,"
        " 'enable_snat': router_enable_snat | default(true), 'external_gateway': ({'network':"
        " router_external_network, 'subnet': 'public-subnet', 'ip': '172.24.4.10'} if router_external_network"
        " | default('') else none), 'interfaces': router_interfaces | default([]) | map('combine', {'ip': '10.1.0.1',"
        " 'port_id': 'x'}) | list}]")),
    "router_delete.yml": standin("routers", "routers | rejectattr('name', 'equalto', router_id) | list"),
    "floating_ip_create.yml": standin("fips", (
        "fips | rejectattr('name', 'equalto', floating_ip_id) | list + [{'name': floating_ip_id, 'project':"
        " nimbus_project, 'router': floating_ip_router, 'network': 'public', 'floating_ip':"
        " floating_ip_address | default('172.24.4.20'), 'port_id': ((ports | selectattr('name', 'equalto',"
        " floating_ip_port) | first).id if floating_ip_port | default('') else none), 'fixed_ip':"
        " floating_ip_fixed_ip | default('10.1.0.9') if floating_ip_port | default('') else none}]"),
        reads=("routers", "fips", "ports")),
    "floating_ip_delete.yml": standin("fips", "fips | rejectattr('name', 'equalto', floating_ip_id) | list",
                                      reads=("routers", "fips")),
}


def network(name, project, cidr, external=False, shared=False):
    return {"name": name, "project": project, "type": "flat" if external else "vxlan", "segmentation_id": None,
            "mtu": 1500, "shared": shared, "external": external, "port_count": 0,
            "subnets": [{"name": name + "-subnet", "network": name, "project": project, "cidr": cidr,
                         "gateway": cidr.replace("0/24", "1"), "enable_dhcp": not external}]}


@pytest.fixture
def neutron(settings, tmp_path):
    for name, text in STANDINS.items():
        (settings.playbooks_dir / name).write_text(text)
    files = {kind: tmp_path / (kind + ".json") for kind in ("routers", "fips", "ports")}
    for path in files.values():
        path.write_text("[]")
    app = bootstrapped_app(settings)
    with TestClient(app) as client:
        cloud = Cloud(client)
        a, b = cloud.project("proj-a"), cloud.project("proj-b")
        networks = [network("public", "", "172.24.4.0/24", external=True), network("net-a", a, "10.1.0.0/24"),
                    network("net-a2", a, "10.3.0.0/24"), network("net-b", b, "10.2.0.0/24")]
        files["ports"].write_text(json.dumps([
            {"name": "port-a", "id": "host-id-a", "network": "net-a", "project": a, "mac": "fa:16:3e:00:00:01",
             "fixed_ips": [{"subnet": "net-a-subnet", "ip": "10.1.0.9"}], "device_owner": "compute",
             "device_id": "vm-a", "security_groups": []},
            {"name": "port-a2", "id": "host-id-a2", "network": "net-a2", "project": a, "mac": "fa:16:3e:00:00:02",
             "fixed_ips": [{"subnet": "net-a2-subnet", "ip": "10.3.0.9"}], "device_owner": "compute",
             "device_id": "vm-a2", "security_groups": []},
            {"name": "port-b", "id": "host-id-b", "network": "net-b", "project": b, "mac": "fa:16:3e:00:00:03",
             "fixed_ips": [{"subnet": "net-b-subnet", "ip": "10.2.0.9"}], "device_owner": "compute",
             "device_id": "vm-b", "security_groups": []}]))
        with_views(app, networks=lambda: networks,
                   routers=lambda: json.loads(files["routers"].read_text()),
                   floating_ips=lambda: json.loads(files["fips"].read_text()),
                   ports=lambda: json.loads(files["ports"].read_text()), security_groups=lambda: [])
        cloud.user("member-a", roles=[(a, "member")])
        cloud.user("member-b", roles=[(b, "member")])
        register_runbooks(app, **{"standin_" + k: str(v) for k, v in files.items()})
        tokens = {n: cloud.token(n, "password-123", p) for n, p in (("member-a", "proj-a"), ("member-b", "proj-b"))}
        yield cloud, app, {"a": a, "b": b}, tokens, files


def on_hosts(files, kind):
    return {i["name"]: i for i in json.loads(files[kind].read_text())}


def make_router(cloud, token, **body):
    return call(cloud, "POST", token, "/routers", 201, json={"router": dict({"name": "r {{ 1 }}"}, **body)})["router"]


def test_a_router_its_gateway_and_interfaces(neutron):
    cloud, app, p, t, files = neutron
    made = make_router(cloud, t["member-a"], external_gateway_info={"network_id": "public"})
    router_id = made["id"]
    assert (made["name"], made["status"], made["external_gateway_info"]["network_id"]) == \
        ("r {{ 1 }}", "ALLOCATING", "public")
    # Two interfaces asked for at once: each change is queued with the whole state, after the one before.
    added = call(cloud, "PUT", t["member-a"], "/routers/%s/add_router_interface" % router_id, 200,
                 json={"subnet_id": "net-a-subnet"})
    assert added["port_id"] == host_port_id("net-a", "router-" + router_id)
    call(cloud, "PUT", t["member-a"], "/routers/%s/add_router_interface" % router_id, 200,
         json={"subnet_id": "net-a2-subnet"})
    call(cloud, "PUT", t["member-a"], "/routers/%s/add_router_interface" % router_id, 400,
         json={"subnet_id": "net-a-subnet"})  # one per network
    settle(app)
    held = on_hosts(files, "routers")[router_id]
    assert [i["subnet"] for i in held["interfaces"]] == ["net-a-subnet", "net-a2-subnet"]
    assert held["external_gateway"]["network"] == "public" and held["project"] == p["a"]
    runs = [v.get("router_interfaces", []) for v in job_vars(app, "router")]
    assert [len(r) for r in runs] == [0, 1, 2]
    shown = call(cloud, "GET", t["member-a"], "/routers/" + router_id, 200)["router"]
    assert (shown["status"], shown["external_gateway_info"]["external_fixed_ips"][0]["ip_address"]) == \
        ("ACTIVE", "172.24.4.10")
    # Another project's subnet, an external network as an interface, a bad gateway: refused, nothing queued.
    call(cloud, "PUT", t["member-a"], "/routers/%s/add_router_interface" % router_id, 404,
         json={"subnet_id": "net-b-subnet"})
    call(cloud, "PUT", t["member-a"], "/routers/%s/add_router_interface" % router_id, 400,
         json={"subnet_id": "public-subnet"})
    call(cloud, "PUT", t["member-a"], "/routers/" + router_id, 400,
         json={"router": {"external_gateway_info": {"network_id": "net-a"}}})
    call(cloud, "PUT", t["member-a"], "/routers/" + router_id, 400, json={"router": {"routes": []}})
    call(cloud, "PUT", t["member-a"], "/routers/" + router_id, 403, json={"router": {"external_gateway_info": {
        "network_id": "public", "external_fixed_ips": [{"ip_address": "172.24.4.99"}]}}})
    assert len(jobs_of(app, "router")) == 3
    # Deleting needs the interfaces gone first, as in Neutron.
    call(cloud, "DELETE", t["member-a"], "/routers/" + router_id, 409)
    call(cloud, "PUT", t["member-a"], "/routers/%s/remove_router_interface" % router_id, 200,
         json={"subnet_id": "net-a-subnet"})
    call(cloud, "PUT", t["member-a"], "/routers/%s/remove_router_interface" % router_id, 200,
         json={"port_id": host_port_id("net-a2", "router-" + router_id)})
    call(cloud, "PUT", t["member-a"], "/routers/" + router_id, 200, json={"router": {"external_gateway_info": {}}})
    settle(app)
    held = on_hosts(files, "routers")[router_id]
    assert (held["interfaces"], held["external_gateway"]) == ([], None)
    call(cloud, "PUT", t["member-b"], "/routers/" + router_id, 404, json={"router": {"name": "mine"}})
    call(cloud, "DELETE", t["member-b"], "/routers/" + router_id, 404)
    call(cloud, "DELETE", t["member-a"], "/routers/" + router_id, 204)
    settle(app)
    assert on_hosts(files, "routers") == {}


def test_floating_ips_are_carried_by_the_projects_router(neutron):
    cloud, app, p, t, files = neutron
    # Without a router of the project on the external network there is nothing to carry one.
    call(cloud, "POST", t["member-a"], "/floatingips", 409, json={"floatingip": {"floating_network_id": "public"}})
    router_id = make_router(cloud, t["member-a"], external_gateway_info={"network_id": "public"})["id"]
    call(cloud, "PUT", t["member-a"], "/routers/%s/add_router_interface" % router_id, 200,
         json={"subnet_id": "net-a-subnet"})
    # Another project's router gateway holds the highest address of public: the floating IP takes the next one,
    # chosen here so that the answer carries it, as Neutron's does.
    ports = json.loads(files["ports"].read_text())
    ports.append({"name": "router-theirs-gw", "id": "host-id-gw", "network": "public", "project": p["b"],
                  "mac": "fa:16:3e:00:00:04", "fixed_ips": [{"subnet": "public-subnet", "ip": "172.24.4.254"}],
                  "device_owner": "network:router_gateway", "device_id": "theirs"})
    files["ports"].write_text(json.dumps(ports))
    fip = call(cloud, "POST", t["member-a"], "/floatingips", 201, json={"floatingip": {
        "floating_network_id": "public", "port_id": "port-a", "description": "{{ 7 * 7 }}"}})["floatingip"]
    assert (fip["router_id"], fip["port_id"], fip["status"], fip["description"], fip["floating_ip_address"]) == \
        (router_id, "port-a", "DOWN", "{{ 7 * 7 }}", "172.24.4.253")
    settle(app)
    create_vars = job_vars(app, "floating_ip")[0]
    assert (create_vars["floating_ip_router"], create_vars["floating_ip_port"], create_vars["floating_ip_port_network"],
            create_vars["floating_ip_address"]) == (router_id, "port-a", "net-a", "172.24.4.253")
    shown = call(cloud, "GET", t["member-a"], "/floatingips/" + fip["id"], 200)["floatingip"]
    assert (shown["floating_ip_address"], shown["port_id"], shown["fixed_ip_address"], shown["status"]) == \
        ("172.24.4.253", "port-a", "10.1.0.9", "ACTIVE")
    # A port on a network the router does not join, another project's port, a fixed IP not the port's: refused.
    call(cloud, "PUT", t["member-a"], "/floatingips/" + fip["id"], 404, json={"floatingip": {"port_id": "port-a2"}})
    call(cloud, "PUT", t["member-a"], "/floatingips/" + fip["id"], 404, json={"floatingip": {"port_id": "port-b"}})
    call(cloud, "PUT", t["member-a"], "/floatingips/" + fip["id"], 400,
         json={"floatingip": {"port_id": "port-a", "fixed_ip_address": "10.1.0.200"}})
    call(cloud, "PUT", t["member-a"], "/floatingips/" + fip["id"], 400,
         json={"floatingip": {"floating_ip_address": "172.24.4.50"}})
    call(cloud, "POST", t["member-a"], "/floatingips", 403, json={"floatingip": {
        "floating_network_id": "public", "floating_ip_address": "172.24.4.50"}})
    call(cloud, "POST", t["member-a"], "/floatingips", 400, json={"floatingip": {"floating_network_id": "net-a"}})
    assert len(jobs_of(app, "floating_ip")) == 1
    # The router's interface and gateway stay while the floating IP uses them.
    call(cloud, "PUT", t["member-a"], "/routers/%s/remove_router_interface" % router_id, 409,
         json={"subnet_id": "net-a-subnet"})
    call(cloud, "PUT", t["member-a"], "/routers/" + router_id, 409, json={"router": {"external_gateway_info": {}}})
    call(cloud, "DELETE", t["member-a"], "/routers/" + router_id, 409)
    # Disassociated, it leads nowhere; another project sees none of it.
    call(cloud, "PUT", t["member-a"], "/floatingips/" + fip["id"], 200, json={"floatingip": {"port_id": None}})
    settle(app)
    shown = call(cloud, "GET", t["member-a"], "/floatingips/" + fip["id"], 200)["floatingip"]
    assert (shown["port_id"], shown["status"]) == (None, "DOWN")
    assert job_vars(app, "floating_ip")[-1]["floating_ip_port"] == ""
    assert call(cloud, "GET", t["member-b"], "/floatingips", 200)["floatingips"] == []
    assert call(cloud, "GET", t["member-b"], "/routers", 200)["routers"] == []
    call(cloud, "DELETE", t["member-b"], "/floatingips/" + fip["id"], 404)
    call(cloud, "DELETE", t["member-a"], "/floatingips/" + fip["id"], 204)
    settle(app)
    assert on_hosts(files, "fips") == {}


def test_router_and_floating_ip_quotas(neutron):
    cloud, app, p, t, files = neutron
    from nimbus_api import quotas

    with app.state.sessions() as db:
        quotas.set_limits(db, p["a"], {"routers": 1, "floating_ips": 1})
        db.commit()
    router_id = make_router(cloud, t["member-a"], external_gateway_info={"network_id": "public"})["id"]
    call(cloud, "POST", t["member-a"], "/routers", 409, json={"router": {"name": "two"}})
    call(cloud, "POST", t["member-a"], "/floatingips", 201, json={"floatingip": {"floating_network_id": "public"}})
    call(cloud, "POST", t["member-a"], "/floatingips", 409, json={"floatingip": {"floating_network_id": "public"}})
    assert [v["floating_ip_router"] for v in job_vars(app, "floating_ip")] == [router_id]


def test_floating_ip_creates_of_two_projects_choose_their_addresses_one_after_the_other(neutron):
    """The address is chosen under a lock that every project's create of that pool takes (SQLite serialises
    every write anyway; MariaDB's row locks do not, so the statements are what is checked)."""
    cloud, app, p, t, files = neutron
    from sqlalchemy import event

    from nimbus_api import identity

    for token in (t["member-a"], t["member-b"]):
        make_router(cloud, token, external_gateway_info={"network_id": "public"})
    settle(app)
    engine = app.state.sessions.kw["bind"]
    recorded = []

    def record(conn, cursor, statement, parameters, context, executemany):
        recorded.append((threading.get_ident(), statement.split()[0].upper(), statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        fip = call(cloud, "POST", t["member-b"], "/floatingips", 201,
                   json={"floatingip": {"floating_network_id": "public"}})["floatingip"]
    finally:
        event.remove(engine, "before_cursor_execute", record)
    with app.state.sessions() as db:
        admin = identity.admin_project_id(db, app.state.settings)
    # The request's own statements: the thread that took the caller's lock (jobs and views run beside it).
    request = next(thread for thread, verb, text, params in recorded
                   if verb == "UPDATE" and "projects" in text and params[-1] == p["b"])
    statements = [(verb, text, params) for thread, verb, text, params in recorded if thread == request]
    locked = [params[-1] for verb, text, params in statements if verb == "UPDATE" and "projects" in text]
    first_insert = next(n for n, (verb, text, params) in enumerate(statements) if verb == "INSERT")
    # Both locks, in one order, before anything is written; public has no owner, so the admin project's.
    assert locked[:2] == sorted([p["b"], admin])
    assert all(n < first_insert for n, (verb, text, params) in enumerate(statements)
               if verb == "UPDATE" and "projects" in text)
    # The second project's create sees the first one's address as taken.
    other = call(cloud, "POST", t["member-a"], "/floatingips", 201,
                 json={"floatingip": {"floating_network_id": "public"}})["floatingip"]
    assert fip["floating_ip_address"] != other["floating_ip_address"]


def test_router_ports_show_as_neutron_shows_them(neutron):
    cloud, app, p, t, files = neutron
    router_id = make_router(cloud, t["member-a"])["id"]
    ports = json.loads(files["ports"].read_text())
    ports.append({"name": "router-" + router_id, "id": host_port_id("net-a", "router-" + router_id),
                  "network": "net-a", "project": p["a"], "mac": "fa:16:3e:00:00:09",
                  "fixed_ips": [{"subnet": "net-a-subnet", "ip": "10.1.0.1"}],
                  "device_owner": "network:router_interface", "device_id": router_id})
    files["ports"].write_text(json.dumps(ports))
    listed = call(cloud, "GET", t["member-a"], "/ports?device_owner=network:router_interface", 200)["ports"]
    assert [(q["id"], q["device_id"], q["status"]) for q in listed] == \
        [(host_port_id("net-a", "router-" + router_id), router_id, "ACTIVE")]
    assert not any(k.startswith("_") for k in listed[0])
    call(cloud, "DELETE", t["member-a"], "/ports/" + listed[0]["id"], 409)


def test_a_servers_floating_ip_shows_in_its_addresses():
    from nimbus_api.openstack.nova import _addresses

    item = {"nics": [{"mac": "fa:16:3e:00:00:01", "port": {"id": "host-id-a", "network": "net-a",
                                                           "fixed_ips": [{"subnet": "s", "ip": "10.1.0.9"}]}}]}
    shown = _addresses(item, {"net-a": "private"}, {("host-id-a", "10.1.0.9"): "172.24.4.20",
                                                    ("other", "10.1.0.9"): "172.24.4.21"})
    assert [(a["addr"], a["OS-EXT-IPS:type"]) for a in shown["private"]] == \
        [("10.1.0.9", "fixed"), ("172.24.4.20", "floating")]
