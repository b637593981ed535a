"""One project's cloud made, used and unmade with the real OpenStack clients, against a running nimbus.cloud
API: what `molecule/network_multinode` (the API embedded on the controller, SQLite, jobs in its process) and
`tests/e2e/test_aio.py` (the all-in-one, Celery workers on MariaDB and RabbitMQ) both prove.

The clients are the pinned ones of requirements/openstack-clients.txt in .cache/venv-openstack. Passwords reach
them through the environment or standard input, never their argv.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from openstack_shell import Shell

REPO = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("NIMBUS_OPENSTACK_VENV") or REPO / ".cache" / "venv-openstack")


def until(what, check, timeout=600, every=3):
    """check()'s first truthy value, asked every few seconds; fails the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(every)


class Clients:
    """The `openstack` command and Python in the clients' virtualenv, as the users of one cloud; run by one
    long-lived Python of that virtualenv (tests/support/openstack_shell.py), closed with ``close()``."""

    def __init__(self, auth_url: str, passwords: dict[str, str], log: Path | None = None):
        self.shell = Shell(VENV)
        self.auth_url, self.passwords, self.log = auth_url, passwords, log

    def close(self):
        self.shell.close()

    def env(self, user: str, project: str | None = None) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env.update(OS_AUTH_URL=self.auth_url, OS_USERNAME=user, OS_PASSWORD=self.passwords[user],
                   OS_PROJECT_NAME=project or user, OS_USER_DOMAIN_NAME="Default", OS_PROJECT_DOMAIN_NAME="Default",
                   OS_IDENTITY_API_VERSION="3", OS_INTERFACE="public")
        return env

    def _failure(self, what, proc) -> str:
        tail = self.log.read_text()[-3000:] if self.log and self.log.exists() else ""
        return "%s: rc %s\n%s\n%s\n%s" % (what, proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:], tail)

    def run(self, user: str, *args, ok=True, token: str | None = None) -> subprocess.CompletedProcess:
        env = self.env(user)
        if token:
            env = {k: v for k, v in env.items() if k not in ("OS_USERNAME", "OS_PASSWORD", "OS_USER_DOMAIN_NAME")}
            env.update(OS_AUTH_TYPE="token", OS_TOKEN=token)
        proc = self.shell.openstack(*args, env=env, timeout=900)
        if ok:
            assert proc.returncode == 0, self._failure(" ".join(args), proc)
        return proc

    def listed(self, user: str, *args) -> list[dict]:
        return json.loads(self.run(user, *args, "-f", "json").stdout)

    def shown(self, user: str, *args) -> dict:
        return json.loads(self.run(user, *args, "-f", "json").stdout)

    def python(self, user: str, code: str, stdin: str = "", **extra_env):
        """A script run by the clients' Python as ``user`` (OS_* set); its standard output read as JSON."""
        proc = self.shell.python(code, env=dict(self.env(user), **extra_env), stdin=stdin, timeout=300)
        assert proc.returncode == 0, self._failure("python as " + user, proc)
        return json.loads(proc.stdout)

    def status_is(self, user: str, kind: str, name: str, wanted: str):
        def check():
            status = self.shown(user, kind, "show", name)["status"]
            assert status != "ERROR", "%s %s went to ERROR" % (kind, name)
            return status == wanted
        until("%s %s to be %s" % (kind, name, wanted), check)

    def gone(self, user: str, kind: str, name: str):
        until("%s %s to go" % (kind, name), lambda: name not in {i["Name"] for i in self.listed(user, kind, "list")})


# What openstacksdk sees of the project: its servers with their addresses, its routers with their gateways.
SDK_VIEW = """
import json, openstack
conn = openstack.connect()
print(json.dumps({"servers": [{"name": s.name, "status": s.status, "addresses": s.addresses}
                              for s in conn.compute.servers()],
                  "routers": [{"name": r.name, "gateway": r.external_gateway_info} for r in conn.network.routers()]}))
"""

# keystonemiddleware's auth_token in front of a WSGI app, as a service runs it: the service user (the caller of
# the script, its password on stdin) validates each token against /identity/v3/auth/tokens.
MIDDLEWARE = """
import json, os, sys
from keystonemiddleware import auth_token

seen = {}

def app(environ, start_response):
    seen.update({k: environ.get(k) for k in ("HTTP_X_IDENTITY_STATUS", "HTTP_X_PROJECT_ID", "HTTP_X_USER_NAME")})
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]

conf = {"auth_type": "password", "auth_url": os.environ["OS_AUTH_URL"], "username": os.environ["OS_USERNAME"],
        "password": sys.stdin.readline().strip(), "project_name": os.environ["OS_PROJECT_NAME"],
        "user_domain_name": "Default", "project_domain_name": "Default",
        "www_authenticate_uri": os.environ["OS_AUTH_URL"], "delay_auth_decision": "false", "interface": "public"}
os.environ.pop("OS_PASSWORD")
wrapped = auth_token.AuthProtocol(app, conf)
results = {}
for label in ("GOOD_TOKEN", "REVOKED_TOKEN"):
    seen.clear()
    status = []
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "SERVER_NAME": "localhost", "SERVER_PORT": "80",
               "wsgi.url_scheme": "http", "wsgi.input": None, "HTTP_X_AUTH_TOKEN": os.environ[label]}
    wrapped(environ, lambda s, h, exc_info=None: status.append(s))
    results[label] = {"status": status[0], "seen": dict(seen)}
print(json.dumps(results))
"""


def tokens(clients: Clients, user: str, service_user: str):
    """A token issued and used; another one revoked and refused; keystonemiddleware (as ``service_user``)
    accepting the first and refusing the second."""
    good = clients.shown(user, "token", "issue")["id"]
    revoked = clients.shown(user, "token", "issue")["id"]
    clients.run(user, "server", "list", token=good)
    clients.run(user, "token", "revoke", revoked)
    refused = clients.run(user, "server", "list", token=revoked, ok=False)
    assert refused.returncode != 0 and "401" in refused.stderr + refused.stdout
    got = clients.python(service_user, MIDDLEWARE, stdin=clients.passwords[service_user] + "\n",
                         GOOD_TOKEN=good, REVOKED_TOKEN=revoked)
    assert got["GOOD_TOKEN"]["status"].startswith("200")
    assert got["GOOD_TOKEN"]["seen"]["HTTP_X_IDENTITY_STATUS"] == "Confirmed"
    assert got["GOOD_TOKEN"]["seen"]["HTTP_X_USER_NAME"] == user
    assert got["REVOKED_TOKEN"]["status"].startswith("401")


def project_cloud(clients: Clients, user: str, other: str, external: str, cidr: str, image: str, ping,
                  prefix: str = "e2e") -> dict:
    """``user``'s project makes a network behind a router on ``external``, a security group that lets ping in, a
    server of ``image`` in it and a floating IP that ``ping(address)`` reaches; ``other``'s project sees none of
    it; stop and start; then everything is deleted. Returns the ids of what was made."""
    net, subnet, router, group, server_name = ("%s-%s" % (prefix, n) for n in ("net", "subnet", "router", "web", "vm"))
    made = {}
    clients.run(user, "network", "create", net)
    clients.run(user, "subnet", "create", "--network", net, "--subnet-range", cidr, subnet)
    made["group"] = clients.shown(user, "security", "group", "create", group)["id"]
    clients.run(user, "security", "group", "rule", "create", "--ingress", "--protocol", "icmp", group)
    clients.run(user, "router", "create", router)
    clients.run(user, "router", "set", "--external-gateway", external, router)
    clients.run(user, "router", "add", "subnet", router, subnet)
    clients.status_is(user, "network", net, "ACTIVE")
    clients.status_is(user, "router", router, "ACTIVE")

    # A real guest, on whichever compute host the scheduler picks.
    server = clients.shown(user, "server", "create", "--flavor", "m1.nano", "--image", image, "--network", net,
                           "--security-group", group, "--wait", server_name)
    assert server["status"] == "ACTIVE", server
    made["server"] = server["id"]
    port = clients.listed(user, "port", "list", "--server", server["id"])[0]
    fip = clients.shown(user, "floating", "ip", "create", "--port", port["ID"], external)
    address = fip["floating_ip_address"]
    until("the floating IP to be active",
          lambda: clients.shown(user, "floating", "ip", "show", fip["id"])["status"] == "ACTIVE")
    # From outside, through the router's NAT and the group's rule.
    until("the guest to answer at %s" % address, lambda: ping(address), timeout=300)

    seen = clients.python(user, SDK_VIEW)
    vm = [s for s in seen["servers"] if s["name"] == server_name][0]
    assert vm["status"] == "ACTIVE"
    assert {a["addr"] for a in vm["addresses"][net]} == {port["Fixed IP Addresses"][0]["ip_address"], address}
    assert [r["gateway"]["network_id"] for r in seen["routers"] if r["name"] == router] == [
        clients.shown(user, "network", "show", external)["id"]]

    # Another project sees none of it, and cannot touch it.
    assert server_name not in {s["Name"] for s in clients.listed(other, "server", "list")}
    assert net not in {n["Name"] for n in clients.listed(other, "network", "list")}
    assert router not in {r["Name"] for r in clients.listed(other, "router", "list")}
    assert address not in {f["Floating IP Address"] for f in clients.listed(other, "floating", "ip", "list")}
    assert group not in {g["Name"] for g in clients.listed(other, "security", "group", "list")}
    assert clients.run(other, "server", "delete", server["id"], ok=False).returncode != 0
    assert clients.run(other, "router", "delete", router, ok=False).returncode != 0

    clients.run(user, "server", "stop", server_name)
    clients.status_is(user, "server", server_name, "SHUTOFF")
    clients.run(user, "server", "start", server_name)
    clients.status_is(user, "server", server_name, "ACTIVE")

    # Everything deleted, in the order a user would.
    clients.run(user, "floating", "ip", "delete", fip["id"])
    until("the floating IP to go", lambda: fip["id"] not in {f["ID"] for f in clients.listed(user, "floating", "ip", "list")})
    clients.run(user, "server", "delete", "--wait", server_name)
    clients.run(user, "router", "remove", "subnet", router, subnet)
    clients.run(user, "router", "unset", "--external-gateway", router)
    until("the router to have no port", lambda: clients.listed(user, "port", "list", "--router", router) == [])
    clients.run(user, "router", "delete", router)
    clients.gone(user, "router", router)
    clients.run(user, "security", "group", "delete", group)
    clients.run(user, "subnet", "delete", subnet)
    clients.gone(user, "subnet", subnet)
    clients.run(user, "network", "delete", net)
    clients.gone(user, "network", net)
    until("the security group to go", lambda: group not in {g["Name"] for g in clients.listed(user, "security", "group", "list")})
    return made
