"""The real OpenStack clients against the service on a loopback socket: the ``openstack`` command,
openstacksdk and keystonemiddleware's ``auth_token``, pinned in requirements/openstack-clients.txt and
installed by ``tools/test api`` into .cache/venv-openstack (their dependencies stay out of the service's).

Passwords reach the clients through the environment or standard input, never their argv.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import ADMIN_PASSWORD, settle
from openstack_shell import Shell

REPO = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("NIMBUS_OPENSTACK_VENV", REPO / ".cache" / "venv-openstack"))


@pytest.fixture
def app(views_settings):
    """The service reading servers from conftest's test-driver hypervisor (empty until a test writes it)."""
    from conftest import bootstrapped_app

    return bootstrapped_app(views_settings)


@pytest.fixture(scope="module")
def venv():
    """The clients, run by one long-lived Python of their virtualenv (tests/support/openstack_shell.py)."""
    try:
        shell = Shell(VENV)
    except AssertionError as e:
        pytest.fail("%s: run tools/test api" % e)
    yield shell
    shell.close()


@pytest.fixture
def keystone(live_server, cloud):
    """The live service with its identity endpoint in the catalog, as the api role registers it."""
    made = cloud.call("POST", "/v1/services", cloud.admin, json={"name": "keystone", "type": "identity"})
    assert made.status_code == 201, made.text
    r = cloud.call("PUT", "/v1/services/%s/endpoints" % made.json()["id"], cloud.admin,
                   json={"interface": "public", "url": live_server + "/identity/v3"})
    assert r.status_code == 200, r.text
    return live_server + "/identity/v3"


def os_env(auth_url, user, password, project="admin"):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update(OS_AUTH_URL=auth_url, OS_USERNAME=user, OS_PASSWORD=password, OS_PROJECT_NAME=project,
               OS_USER_DOMAIN_NAME="Default", OS_PROJECT_DOMAIN_NAME="Default", OS_IDENTITY_API_VERSION="3",
               OS_INTERFACE="public")
    return env


def openstack(venv, env, *args, ok=True):
    proc = venv.openstack(*args, env=env)
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def python(venv, script, env, stdin=""):
    proc = venv.python(script, env=env, stdin=stdin)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_openstack_command_issues_lists_and_revokes(venv, keystone, cloud):
    env = os_env(keystone, "admin", ADMIN_PASSWORD)
    # The openstack script itself, once; the other commands go through the same entry point in one process.
    issued = subprocess.run([str(VENV / "bin" / "openstack"), "token", "issue", "-f", "json"], env=env,
                            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, check=False)
    assert issued.returncode == 0, issued.stderr
    token = json.loads(issued.stdout)
    assert token["project_id"] and token["user_id"] and token["id"]
    projects = json.loads(openstack(venv, env, "project", "list", "-f", "json").stdout)
    assert "admin" in [p["Name"] for p in projects]
    made = json.loads(openstack(venv, env, "project", "create", "-f", "json", "demo").stdout)
    assert made["name"] == "demo"
    roles = [r["Name"] for r in json.loads(openstack(venv, env, "role", "list", "-f", "json").stdout)]
    assert sorted(roles) == ["admin", "member", "reader"]
    catalog = json.loads(openstack(venv, env, "catalog", "list", "-f", "json").stdout)
    assert [c["Type"] for c in catalog] == ["identity"]

    # A member of demo, made with the SDK (the password on standard input), works in demo only.
    python(venv, CREATE_USER, env, stdin="member-password-1\n")
    member = os_env(keystone, "dana", "member-password-1", "demo")
    assert json.loads(openstack(venv, member, "token", "issue", "-f", "json").stdout)["project_id"] == made["id"]
    assert openstack(venv, member, "user", "list", ok=False).returncode != 0
    refused = openstack(venv, os_env(keystone, "dana", "member-password-1", "admin"), "token", "issue", ok=False)
    assert refused.returncode != 0

    # Revoked through the command, the token is refused by the service.
    openstack(venv, env, "token", "revoke", token["id"])
    gone = cloud.client.get("/identity/v3/auth/tokens",
                            headers={"X-Auth-Token": cloud.admin, "X-Subject-Token": token["id"]})
    assert gone.status_code == 404


CREATE_USER = """
import json, sys, openstack
conn = openstack.connect()
project = conn.identity.find_project("demo")
user = conn.identity.create_user(name="dana", password=sys.stdin.readline().strip(), domain_id=project.domain_id)
member = conn.identity.find_role("member")
conn.identity.assign_project_role_to_user(project, user, member)
print(json.dumps({"user": user.id}))
"""


# The object store as the swift role registers it: each token's catalog names the token's own account.
SWIFT_URL = "http://203.0.113.7:8080/v1/AUTH_$(project_id)s"

SDK = """
import json, openstack
conn = openstack.connect()
print(json.dumps({
    "token": bool(conn.auth_token),
    "project": conn.current_project_id,
    "projects": sorted(p.name for p in conn.identity.projects()),
    "roles": sorted(r.name for r in conn.identity.roles()),
    "assignments": len(list(conn.identity.role_assignments(user_id=conn.current_user_id))),
    "object_store": conn.endpoint_for("object-store"),
}))
"""


def test_openstacksdk_reads_identity(venv, keystone, app):
    from nimbus_api import identity

    with app.state.sessions() as db:
        identity.register_service(db, "swift", "object-store", "", {"public": SWIFT_URL})
        db.commit()
    got = python(venv, SDK, os_env(keystone, "admin", ADMIN_PASSWORD))
    assert got["token"] and got["project"]
    assert "admin" in got["projects"] and got["roles"] == ["admin", "member", "reader"]
    assert got["assignments"] >= 1
    # The account URL swiftclient and `openstack object` use: the token's own project's.
    assert got["object_store"] == SWIFT_URL.replace("$(project_id)s", got["project"])


# keystonemiddleware's auth_token in front of a WSGI app, as a service (nova, an operator's own) runs it: its
# service user validates the caller's token against /identity/v3/auth/tokens and passes the identity on.
MIDDLEWARE = """
import json, os, sys
from keystonemiddleware import auth_token

seen = {}

def app(environ, start_response):
    seen.update({k: environ.get(k) for k in ("HTTP_X_IDENTITY_STATUS", "HTTP_X_PROJECT_ID", "HTTP_X_USER_NAME",
                                             "HTTP_X_ROLES", "HTTP_X_SERVICE_CATALOG")})
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]

conf = {"auth_type": "password", "auth_url": os.environ["OS_AUTH_URL"], "username": "svc",
        "password": sys.stdin.readline().strip(), "project_name": "admin", "user_domain_name": "Default",
        "project_domain_name": "Default", "www_authenticate_uri": os.environ["OS_AUTH_URL"],
        "delay_auth_decision": "false", "include_service_catalog": "true", "interface": "public"}
wrapped = auth_token.AuthProtocol(app, conf)
results = {}
for label, token in (("good", os.environ["GOOD_TOKEN"]), ("revoked", os.environ["REVOKED_TOKEN"]),
                     ("garbage", "not-a-token")):
    seen.clear()
    status = []
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "SERVER_NAME": "localhost", "SERVER_PORT": "80",
               "wsgi.url_scheme": "http", "wsgi.input": None, "HTTP_X_AUTH_TOKEN": token}
    wrapped(environ, lambda s, h, exc_info=None: status.append(s))
    results[label] = {"status": status[0], "seen": dict(seen)}
print(json.dumps(results))
"""


def test_keystonemiddleware_accepts_our_tokens(venv, keystone, cloud, app):
    """As in front of a Swift proxy: its service user is what ``nimbus-api service --user`` makes, and what the
    middleware passes on is what Swift's keystoneauth reads (the project, the roles, the account URL)."""
    from nimbus_api import identity

    with app.state.sessions() as db:
        identity.service_user(db, app.state.settings, "svc", "service-password-1")
        identity.register_service(db, "swift", "object-store", "", {"public": SWIFT_URL})
        db.commit()
    project = cloud.project("shop")
    cloud.user("erik", roles=[(project, "member")])
    good = cloud.token("erik", "password-123", project)
    revoked = cloud.token("erik", "password-123", project)
    assert cloud.call("DELETE", "/v1/auth/tokens", revoked).status_code == 204
    env = os_env(keystone, "svc", "unused")
    env.pop("OS_PASSWORD")
    env.update(GOOD_TOKEN=good, REVOKED_TOKEN=revoked)
    got = python(venv, MIDDLEWARE, env, stdin="service-password-1\n")
    assert got["good"]["status"].startswith("200")
    assert got["good"]["seen"]["HTTP_X_IDENTITY_STATUS"] == "Confirmed"
    assert got["good"]["seen"]["HTTP_X_PROJECT_ID"] == project
    assert got["good"]["seen"]["HTTP_X_USER_NAME"] == "erik"
    assert set(got["good"]["seen"]["HTTP_X_ROLES"].split(",")) == {"member", "reader"}
    catalog = json.loads(got["good"]["seen"]["HTTP_X_SERVICE_CATALOG"])
    store = next(s for s in catalog if s["type"] == "object-store")
    assert [e["publicURL"] for e in store["endpoints"]] == [SWIFT_URL.replace("$(project_id)s", project)]
    assert got["revoked"]["status"].startswith("401")
    assert got["garbage"]["status"].startswith("401")


@pytest.fixture
def compute(keystone, live_server, cloud):
    made = cloud.call("POST", "/v1/services", cloud.admin, json={"name": "nova", "type": "compute"})
    assert made.status_code == 201, made.text
    r = cloud.call("PUT", "/v1/services/%s/endpoints" % made.json()["id"], cloud.admin,
                   json={"interface": "public", "url": live_server + "/compute/v2.1"})
    assert r.status_code == 200, r.text
    return keystone


def test_openstack_command_flavors_keypairs_and_limits(venv, compute, cloud, tmp_path):
    env = os_env(compute, "admin", ADMIN_PASSWORD)
    made = json.loads(openstack(venv, env, "flavor", "create", "-f", "json", "--vcpus", "1", "--ram", "128",
                                "--disk", "1", "--id", "1", "m1.tiny").stdout)
    assert (made["name"], made["vcpus"], made["ram"], made["disk"]) == ("m1.tiny", 1, 128, 1)
    listed = json.loads(openstack(venv, env, "flavor", "list", "-f", "json").stdout)
    assert [(f["Name"], f["VCPUs"], f["RAM"]) for f in listed] == [("m1.tiny", 1, 128)]
    # A key pair made by the command (it writes the private key to a file) and one given as a public key.
    private = tmp_path / "id_made"
    openstack(venv, env, "keypair", "create", "--private-key", str(private), "made")
    assert private.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    private.chmod(0o600)  # the command leaves it readable by all; ssh-keygen refuses such a key
    public = tmp_path / "id.pub"
    public.write_text(subprocess.run(["ssh-keygen", "-y", "-f", str(private)], capture_output=True, text=True,
                                     check=True).stdout)
    openstack(venv, env, "keypair", "create", "--public-key", str(public), "given")
    keypairs = json.loads(openstack(venv, env, "keypair", "list", "-f", "json").stdout)
    assert sorted(k["Name"] for k in keypairs) == ["given", "made"]
    shown = json.loads(openstack(venv, env, "keypair", "show", "-f", "json", "given").stdout)
    assert shown["fingerprint"] == next(k["Fingerprint"] for k in keypairs if k["Name"] == "made")
    openstack(venv, env, "quota", "set", "--instances", "3", "--cores", "6", "admin")
    limits = {row["Name"]: row["Value"] for row in json.loads(
        openstack(venv, env, "limits", "show", "--absolute", "-f", "json").stdout)}
    # openstacksdk names them its own way (instances for maxTotalInstances, ...).
    assert (limits["instances"], limits["total_cores"], limits["instances_used"]) == (3, 6, 0), sorted(limits.items())
    openstack(venv, env, "keypair", "delete", "made", "given")
    openstack(venv, env, "flavor", "delete", "m1.tiny")
    assert json.loads(openstack(venv, env, "flavor", "list", "-f", "json").stdout) == []


def test_openstack_command_lists_and_shows_servers(venv, compute, cloud, hypervisor):
    project = cloud.project("web")
    cloud.user("wanda", password="member-password-1", roles=[(project, "member")])
    other = cloud.project("other")
    hypervisor([("app-1", project), ("app-2", project), ("theirs", other)])
    env = os_env(compute, "wanda", "member-password-1", "web")
    listed = json.loads(openstack(venv, env, "server", "list", "-f", "json").stdout)
    assert sorted((s["Name"], s["Status"]) for s in listed) == [("app-1", "ACTIVE"), ("app-2", "ACTIVE")]
    shown = json.loads(openstack(venv, env, "server", "show", "-f", "json", "app-1").stdout)
    assert shown["name"] == "app-1" and shown["status"] == "ACTIVE" and shown["project_id"] == project
    assert openstack(venv, env, "server", "show", "theirs", ok=False).returncode != 0


IMAGE = {"id": "5d2f9e67-0c1a-5b8e-9a77-2f1c3e4d5a6b", "name": "nimbus-tiny.qcow2", "file": "nimbus-tiny.qcow2",
         "disk_format": "qcow2", "size": 1245184, "virtual_size": 16777216, "updated_at": "2026-11-30T12:00:00Z"}


def test_openstack_command_server_lifecycle(venv, compute, cloud, app, hypervisor, live_server, tmp_path):
    """server create --wait, list, stop and delete --wait with the real command: Glance resolves the image, the
    create is a job of the server runbook (the stand-ins of test_nova_server_changes, which edit the test
    driver's file the instances view reads), BUILD then ACTIVE."""
    from conftest import register_runbooks, with_images
    from test_nova_server_changes import STANDINS

    settings = app.state.settings
    for name, text in STANDINS.items():
        (settings.playbooks_dir / name).write_text(text)
    xml = hypervisor([])
    (tmp_path / "go").write_text("")
    register_runbooks(app, standin_xml=str(xml), standin_gate=str(tmp_path / "go"))
    with_images(app, [IMAGE])
    made = cloud.call("POST", "/v1/services", cloud.admin, json={"name": "glance", "type": "image"})
    cloud.call("PUT", "/v1/services/%s/endpoints" % made.json()["id"], cloud.admin,
               json={"interface": "public", "url": live_server + "/image"})
    admin = os_env(compute, "admin", ADMIN_PASSWORD)
    openstack(venv, admin, "flavor", "create", "--vcpus", "1", "--ram", "256", "--disk", "1", "--id", "1", "m1.nano")
    project = cloud.project("self")
    cloud.user("sam", password="member-password-2", roles=[(project, "member")])
    env = os_env(compute, "sam", "member-password-2", "self")
    assert [i["Name"] for i in json.loads(openstack(venv, env, "image", "list", "-f", "json").stdout)] == \
        ["nimbus-tiny.qcow2"]
    run = openstack(venv, env, "server", "create", "-f", "json", "--flavor", "m1.nano", "--image",
                    "nimbus-tiny.qcow2", "--wait", "vm1", ok=False)
    assert run.returncode == 0, openstack(venv, env, "server", "show", "-f", "json", "vm1", ok=False).stdout
    created = json.loads(run.stdout)
    assert (created["name"], created["status"], created["project_id"]) == ("vm1", "ACTIVE", project)
    listed = json.loads(openstack(venv, env, "server", "list", "-f", "json").stdout)
    assert [(s["Name"], s["Status"], s["Image"], s["Flavor"]) for s in listed] == [
        ("vm1", "ACTIVE", "nimbus-tiny.qcow2", "m1.nano")]
    openstack(venv, env, "server", "stop", "vm1")
    settle(app)
    assert (tmp_path / "actions").read_text().split() == [created["id"], "stop", "soft"]
    openstack(venv, env, "server", "delete", "--wait", "vm1")
    assert json.loads(openstack(venv, env, "server", "list", "-f", "json").stdout) == []


def test_openstack_command_networks_subnets_and_a_server_on_them(venv, compute, cloud, app, hypervisor, live_server,
                                                                 tmp_path):
    """network create/list/show/set/delete, subnet create/list/delete and server create --network with the real
    command; the runbooks are the stand-ins of test_neutron and test_nova_server_changes."""
    from conftest import register_runbooks, with_views
    from test_neutron import STANDINS as NETWORK_STANDINS
    from test_nova_server_changes import STANDINS as SERVER_STANDINS

    settings = app.state.settings
    for name, text in dict(NETWORK_STANDINS, **SERVER_STANDINS).items():
        (settings.playbooks_dir / name).write_text(text)
    xml = hypervisor([])
    hosts = tmp_path / "networks.json"
    hosts.write_text("[]")
    (tmp_path / "go").write_text("")
    register_runbooks(app, standin_xml=str(xml), standin_gate=str(tmp_path / "go"), standin_networks=str(hosts))
    with_views(app, images=lambda: [IMAGE], networks=lambda: json.loads(hosts.read_text()))
    for name, kind, path in (("glance", "image", "/image"), ("neutron", "network", "/networking")):
        made = cloud.call("POST", "/v1/services", cloud.admin, json={"name": name, "type": kind})
        cloud.call("PUT", "/v1/services/%s/endpoints" % made.json()["id"], cloud.admin,
                   json={"interface": "public", "url": live_server + path})
    admin = os_env(compute, "admin", ADMIN_PASSWORD)
    openstack(venv, admin, "flavor", "create", "--vcpus", "1", "--ram", "256", "--disk", "1", "--id", "1", "m1.nano")
    project = cloud.project("netted")
    cloud.user("nina", password="member-password-3", roles=[(project, "member")])
    env = os_env(compute, "nina", "member-password-3", "netted")
    made = json.loads(openstack(venv, env, "network", "create", "-f", "json", "private").stdout)
    assert (made["name"], made["status"], made["project_id"]) == ("private", "BUILD", project)
    settle(app)
    listed = json.loads(openstack(venv, env, "network", "list", "-f", "json").stdout)
    assert [(n["Name"], n["ID"]) for n in listed] == [("private", made["id"])]
    subnet = json.loads(openstack(venv, env, "subnet", "create", "-f", "json", "--network", "private",
                                  "--subnet-range", "10.50.0.0/24", "private-subnet").stdout)
    assert (subnet["cidr"], subnet["gateway_ip"], subnet["network_id"]) == ("10.50.0.0/24", "10.50.0.1", made["id"])
    settle(app)
    shown = json.loads(openstack(venv, env, "network", "show", "-f", "json", "private").stdout)
    assert shown["status"] == "ACTIVE" and shown["subnets"] == [subnet["id"]]
    openstack(venv, env, "network", "set", "--name", "renamed", "private")
    server = json.loads(openstack(venv, env, "server", "create", "-f", "json", "--flavor", "m1.nano", "--image",
                                  "nimbus-tiny.qcow2", "--network", "renamed", "--wait", "on-net").stdout)
    assert server["status"] == "ACTIVE"
    arrived = json.loads((xml.parent / ("arrived-%s.json" % server["id"])).read_text())
    assert arrived["networks"] == [made["id"]]
    # Another project sees none of it.
    elsewhere = cloud.project("elsewhere")
    cloud.user("otto", password="member-password-4", roles=[(elsewhere, "member")])
    other = os_env(compute, "otto", "member-password-4", "elsewhere")
    assert json.loads(openstack(venv, other, "network", "list", "-f", "json").stdout) == []
    assert json.loads(openstack(venv, other, "server", "list", "-f", "json").stdout) == []
    assert openstack(venv, other, "network", "show", made["id"], ok=False).returncode != 0
    assert openstack(venv, other, "network", "delete", made["id"], ok=False).returncode != 0
    openstack(venv, env, "server", "delete", "--wait", "on-net")
    openstack(venv, env, "subnet", "delete", "private-subnet")
    settle(app)
    openstack(venv, env, "network", "delete", "renamed")
    settle(app)
    assert json.loads(openstack(venv, env, "network", "list", "-f", "json").stdout) == []


def test_openstack_command_security_groups_ports_routers_and_floating_ips(venv, compute, cloud, app, live_server,
                                                                          tmp_path):
    """security group and rule create/list/delete, port create with a fixed IP and a group, router create, gateway
    and interface, floating ip create on the port, and their deletions, with the real command; the runbooks are
    the stand-ins of test_neutron_ports_security and test_neutron_routers."""
    from conftest import register_runbooks, with_views
    from test_neutron_ports_security import STANDINS as PORT_STANDINS
    from test_neutron_routers import STANDINS as ROUTER_STANDINS
    from test_neutron_routers import network

    settings = app.state.settings
    for name, text in dict(PORT_STANDINS, **ROUTER_STANDINS).items():
        (settings.playbooks_dir / name).write_text(text)
    files = {kind: tmp_path / (kind + ".json") for kind in ("ports", "groups", "routers", "fips")}
    for path in files.values():
        path.write_text("[]")
    project = cloud.project("routed")
    cloud.user("rita", password="member-password-5", roles=[(project, "member")])
    networks = [network("public", "", "172.24.4.0/24", external=True), network("private", project, "10.60.0.0/24")]
    register_runbooks(app, **{"standin_" + k: str(v) for k, v in files.items()})
    with_views(app, networks=lambda: networks, **{view: (lambda path=files[kind]: json.loads(path.read_text()))
                                                  for view, kind in (("ports", "ports"), ("security_groups", "groups"),
                                                                     ("routers", "routers"), ("floating_ips", "fips"))})
    made = cloud.call("POST", "/v1/services", cloud.admin, json={"name": "neutron", "type": "network"})
    cloud.call("PUT", "/v1/services/%s/endpoints" % made.json()["id"], cloud.admin,
               json={"interface": "public", "url": live_server + "/networking"})
    env = os_env(compute, "rita", "member-password-5", "routed")

    def run(*args):
        return json.loads(openstack(venv, env, *args, "-f", "json").stdout)

    assert [g["Name"] for g in run("security", "group", "list")] == ["default"]
    web = run("security", "group", "create", "--description", "web servers", "web")
    rule = run("security", "group", "rule", "create", "--protocol", "tcp", "--dst-port", "22", "--remote-ip",
               "192.0.2.0/24", "web")
    assert (rule["port_range_min"], rule["port_range_max"], rule["remote_ip_prefix"]) == (22, 22, "192.0.2.0/24")
    settle(app)
    assert rule["id"] in {r["ID"] for r in run("security", "group", "rule", "list", "web")}
    port = run("port", "create", "--network", "private", "--fixed-ip", "subnet=private-subnet,ip-address=10.60.0.50",
               "--security-group", "web", "p1")
    settle(app)
    shown = run("port", "show", "p1")
    assert (shown["id"], shown["security_group_ids"], shown["status"]) == (port["id"], [web["id"]], "DOWN")
    assert json.loads(files["ports"].read_text())[0]["fixed_ips"] == [{"subnet": "private-subnet",
                                                                       "ip": "10.60.0.50"}]
    router = run("router", "create", "r1")
    openstack(venv, env, "router", "set", "--external-gateway", "public", "r1")
    openstack(venv, env, "router", "add", "subnet", "r1", "private-subnet")
    settle(app)
    shown = run("router", "show", "r1")
    assert (shown["id"], shown["status"], shown["external_gateway_info"]["network_id"]) == \
        (router["id"], "ACTIVE", "public")
    fip = run("floating", "ip", "create", "--port", "p1", "public")
    assert fip["floating_ip_address"] == "172.24.4.254"  # at once, as Neutron answers
    settle(app)
    listed = run("floating", "ip", "list")
    assert [(f["ID"], f["Floating IP Address"], f["Port"]) for f in listed] == [(fip["id"], "172.24.4.254", port["id"])]
    openstack(venv, env, "floating", "ip", "delete", fip["id"])
    openstack(venv, env, "router", "remove", "subnet", "r1", "private-subnet")
    openstack(venv, env, "router", "unset", "--external-gateway", "r1")
    settle(app)
    openstack(venv, env, "router", "delete", "r1")
    openstack(venv, env, "port", "delete", "p1")
    openstack(venv, env, "security", "group", "rule", "delete", rule["id"])
    settle(app)
    openstack(venv, env, "security", "group", "delete", "web")
    settle(app)
    assert run("router", "list") == [] and run("port", "list") == [] and run("floating", "ip", "list") == []
    assert [g["Name"] for g in run("security", "group", "list")] == ["default"]


def test_openstack_command_images_upload_download_deactivate_delete(
        venv, keystone, cloud, app, live_server, tmp_path):
    """image create --file, show, save, set --deactivate / --activate and delete with the real command and
    openstacksdk: Glance's create, upload (a job of the image runbook's stand-in, test_glance.py), download
    streamed from the store's web server, and the other project that sees none of it."""
    import hashlib

    from conftest import register_runbooks
    from test_glance import StoreServer

    served = StoreServer(app, tmp_path)
    register_runbooks(app, **served.template_vars())
    made = cloud.call("POST", "/v1/services", cloud.admin, json={"name": "glance", "type": "image"})
    cloud.call("PUT", "/v1/services/%s/endpoints" % made.json()["id"], cloud.admin,
               json={"interface": "public", "url": live_server + "/image"})
    for name, password in (("ann", "member-password-3"), ("bob", "member-password-4")):
        project = cloud.project(name + "-project")
        cloud.user(name, password=password, roles=[(project, "member")])
    ann = os_env(keystone, "ann", "member-password-3", "ann-project")
    bob = os_env(keystone, "bob", "member-password-4", "bob-project")
    data = tmp_path / "disk.qcow2"
    data.write_bytes(b"QFI\xfb" + os.urandom(300 * 1024))
    try:
        created = json.loads(openstack(venv, ann, "image", "create", "-f", "json", "--file", str(data),
                                       "--disk-format", "qcow2", "--container-format", "bare",
                                       "--property", "os_type=linux", "e2e-image").stdout)
        settle(app)
        shown = json.loads(openstack(venv, ann, "image", "show", "-f", "json", "e2e-image").stdout)
        assert (shown["status"], shown["size"], shown["disk_format"], shown["id"]) == (
            "active", data.stat().st_size, "qcow2", created["id"])
        assert shown["properties"]["os_type"] == "linux"
        # Another project sees none of it.
        assert openstack(venv, bob, "image", "show", "e2e-image", ok=False).returncode != 0
        assert "e2e-image" not in openstack(venv, bob, "image", "list", "-f", "value", "-c", "Name").stdout
        # Download, byte for byte.
        saved = tmp_path / "saved"
        openstack(venv, ann, "image", "save", "--file", str(saved), "e2e-image")
        assert hashlib.sha256(saved.read_bytes()).digest() == hashlib.sha256(data.read_bytes()).digest()
        # Deactivated, then active again.
        openstack(venv, ann, "image", "set", "--deactivate", "e2e-image")
        settle(app)
        assert json.loads(openstack(venv, ann, "image", "show", "-f", "json", "e2e-image").stdout)["status"] == \
            "deactivated"
        openstack(venv, ann, "image", "set", "--activate", "e2e-image")
        settle(app)
        sdk = python(venv, "import json, openstack\nconn = openstack.connect()\n"
                           "print(json.dumps([(i.name, i.status) for i in conn.image.images()]))", ann)
        assert ["e2e-image", "active"] in sdk
        openstack(venv, ann, "image", "delete", "e2e-image")
        settle(app)
        assert "e2e-image" not in openstack(venv, ann, "image", "list", "-f", "value", "-c", "Name").stdout
    finally:
        served.close()


def test_openstack_command_volumes_snapshots_backups_and_attachments(venv, compute, cloud, app, live_server,
                                                                     tmp_path):
    """volume create / list / show / set --size / snapshot / backup / delete and server add / remove volume with
    the real command, and the quota set through openstacksdk: Cinder and Nova's os-volume_attachments to the
    volume runbooks' stand-ins (test_cinder.py)."""
    from conftest import register_runbooks, with_views
    from test_cinder import SERVER, STANDINS, TYPES, _instances, _read

    records = tmp_path / "records"
    for kind in ("volumes", "snapshots", "backups"):
        (records / kind).mkdir(parents=True)
    for name, text in STANDINS.items():
        (app.state.settings.playbooks_dir / name).write_text(text)
    register_runbooks(app, standin_dir=str(records))
    made = cloud.call("POST", "/v1/services", cloud.admin, json={"name": "cinder", "type": "block-storage"})
    cloud.call("PUT", "/v1/services/%s/endpoints" % made.json()["id"], cloud.admin,
               json={"interface": "public", "url": live_server + "/volume/v3"})
    project = cloud.project("vol-project")
    cloud.user("vic", password="member-password-5", roles=[(project, "member")])
    with_views(app, volumes=lambda: _read(records / "volumes"), volume_snapshots=lambda: _read(records / "snapshots"),
               volume_backups=lambda: _read(records / "backups"), volume_types=lambda: list(TYPES),
               instances=lambda: _instances(records, project), images=lambda: [], cached_images=lambda: [])
    vic = os_env(compute, "vic", "member-password-5", "vol-project")

    def shown(*args):
        return json.loads(openstack(venv, vic, *args, "-f", "json").stdout)

    created = shown("volume", "create", "--size", "1", "--type", "raw", "--property", "tier=gold", "data")
    assert created["status"] == "creating"
    settle(app)
    volume = shown("volume", "show", "data")
    assert (volume["status"], volume["size"], volume["type"], volume["properties"]) == (
        "available", 1, "raw", {"tier": "gold"})
    assert [t["Name"] for t in shown("volume", "type", "list")] == ["raw", "standard"]
    openstack(venv, vic, "volume", "set", "--size", "2", "data")
    settle(app)
    assert shown("volume", "show", "data")["size"] == 2
    openstack(venv, vic, "volume", "snapshot", "create", "--volume", "data", "snap")
    openstack(venv, vic, "volume", "backup", "create", "--name", "nightly", "data")
    settle(app)
    assert shown("volume", "snapshot", "show", "snap")["status"] == "available"
    assert shown("volume", "backup", "show", "nightly")["status"] == "available"
    openstack(venv, vic, "volume", "create", "--snapshot", "snap", "clone")
    settle(app)
    assert {v["Name"]: v["Status"] for v in shown("volume", "list")} == {"data": "available", "clone": "available"}

    openstack(venv, vic, "server", "add", "volume", SERVER, "data")
    settle(app)
    attached = shown("volume", "show", "data")
    assert attached["status"] == "in-use"
    assert [(a["server_id"], a["device"]) for a in attached["attachments"]] == [(SERVER, "/dev/vdc")]
    assert [a["Volume ID"] for a in shown("server", "volume", "list", SERVER)] == [attached["id"]]
    assert openstack(venv, vic, "volume", "delete", "data", ok=False).returncode != 0
    openstack(venv, vic, "server", "remove", "volume", SERVER, "data")
    settle(app)
    assert shown("volume", "show", "data")["status"] == "available"

    quota = python(venv, "import json, openstack\nconn = openstack.connect()\n"
                         "q = conn.block_storage.get_quota_set(conn.current_project_id, usage=True)\n"
                         "print(json.dumps({'limit': q.volumes, 'used': q.usage}))", vic)
    assert (quota["limit"], quota["used"]["volumes"], quota["used"]["gigabytes"]) == (10, 2, 6)

    openstack(venv, vic, "volume", "backup", "delete", "nightly")
    openstack(venv, vic, "volume", "delete", "clone")
    openstack(venv, vic, "volume", "snapshot", "delete", "snap")
    settle(app)
    openstack(venv, vic, "volume", "delete", "data")
    settle(app)
    assert shown("volume", "list") == [] and shown("volume", "backup", "list") == []
