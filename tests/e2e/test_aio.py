"""The all-in-one with the real OpenStack clients, after `make aio` (`tools/test aio` runs both): tokens, with
keystonemiddleware's auth_token among their users, and the story of openstack_story.py as the demo project,
with a project made by the cloud admin (through openstacksdk) as the one that must see none of it. Afterwards
nothing of the story is left on the host.
"""

from __future__ import annotations

import secrets
import subprocess

import openstack_story
import pytest
import yaml
from openstack_story import REPO, Clients

HOST = "nimbus-aio-1"
OTHER = "e2e-other"

# The other project and its member; the password arrives on stdin. Made again if a run before left it.
MAKE_OTHER = """
import json, sys, openstack
conn = openstack.connect()
project = conn.identity.find_project("e2e-other") or conn.identity.create_project(name="e2e-other", domain_id="default")
user = conn.identity.find_user("e2e-other")
password = sys.stdin.readline().strip()
if user is None:
    user = conn.identity.create_user(name="e2e-other", password=password, domain_id="default")
else:
    conn.identity.update_user(user, password=password)
conn.identity.assign_project_role_to_user(project, user, conn.identity.find_role("member"))
print(json.dumps({"project": project.id, "user": user.id}))
"""

DELETE_OTHER = """
import json, openstack
conn = openstack.connect()
for found, delete in ((conn.identity.find_user("e2e-other"), conn.identity.delete_user),
                      (conn.identity.find_project("e2e-other"), conn.identity.delete_project)):
    if found is not None:
        delete(found)
print(json.dumps({"deleted": True}))
"""


def on_host(command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", "exec", HOST, "sh", "-c", command], capture_output=True, text=True,
                          timeout=120, check=False)


def host_state() -> str:
    """The host's guests, networks, routers and floating IPs, as their records and libvirt name them."""
    return on_host("virsh -c qemu:///system list --all --name; ls /etc/nimbus/networks /etc/nimbus/routers "
                   "/etc/nimbus/floating-ips 2>/dev/null").stdout


@pytest.fixture(scope="module")
def clients():
    clouds = yaml.safe_load((REPO / ".cache" / "aio" / "clouds.yaml").read_text())["clouds"]
    admin, demo = clouds["nimbus-admin"]["auth"], clouds["nimbus-demo"]["auth"]
    made = Clients(admin["auth_url"], {"admin": admin["password"], "demo": demo["password"],
                                       OTHER: secrets.token_urlsafe(18)})
    made.python("admin", MAKE_OTHER, stdin=made.passwords[OTHER] + "\n")
    yield made
    made.python("admin", DELETE_OTHER)


def test_tokens_are_issued_validated_and_revoked(clients):
    openstack_story.tokens(clients, "demo", service_user="admin")


def reaches(address: str) -> bool:
    """An ICMP echo answered, from the host through br-ex (the host image has no ping: the smoke test's probe)."""
    probe = (REPO / "playbooks" / "files" / "icmp_probe.py").read_text()
    return subprocess.run(["podman", "exec", "-i", HOST, "python3", "-", address, "1"], input=probe, text=True,
                          capture_output=True, timeout=60, check=False).returncode == 0


def test_the_demo_project_runs_a_server_behind_a_router_with_the_openstack_clients(clients):
    before = host_state()
    made = openstack_story.project_cloud(clients, "demo", OTHER, external="public", cidr="10.70.0.0/24",
                                         image="nimbus-tiny.qcow2", ping=reaches)
    assert host_state() == before
    assert made["group"] not in on_host("ls /etc/nimbus/security-groups").stdout
