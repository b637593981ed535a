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
    made.close()


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


def test_the_demo_project_uploads_downloads_and_deletes_an_image(clients, tmp_path):
    """openstack image create --file through Glance to the real runbook and the image store on the host: the
    data is checked there (sha256, format), downloaded back byte for byte, hidden from another project,
    deactivated and reactivated, and deleted with nothing left in the store."""
    import hashlib

    data = tmp_path / "disk.qcow2"
    data.write_bytes((REPO / ".cache" / "guest" / "disk.qcow2").read_bytes())
    created = clients.shown("demo", "image", "create", "--file", str(data), "--disk-format", "qcow2",
                            "--container-format", "bare", "--property", "os_type=linux", "e2e-image")
    openstack_story.until("e2e-image to be active",
                          lambda: clients.shown("demo", "image", "show", "e2e-image")["status"] == "active")
    shown = clients.shown("demo", "image", "show", "e2e-image")
    assert (shown["id"], shown["size"], shown["checksum"]) == (
        created["id"], data.stat().st_size, hashlib.md5(data.read_bytes()).hexdigest())
    record = on_host("cat /var/lib/nimbus/image-store/%s.json" % created["id"]).stdout
    assert '"os_type": "linux"' in record and '"visibility": "shared"' in record
    # A file the data is not an image of is refused by the store, and the image is killed.
    bad = tmp_path / "notes.vdi"
    subprocess.run(["qemu-img", "create", "-q", "-f", "vdi", str(bad), "1M"], check=True)
    clients.run("demo", "image", "create", "--file", str(bad), "--disk-format", "raw", "e2e-bad")
    openstack_story.until("e2e-bad to be killed",
                          lambda: clients.shown("demo", "image", "show", "e2e-bad")["status"] == "killed")
    clients.run("demo", "image", "delete", "e2e-bad")
    # Another project sees none of it.
    assert clients.run(OTHER, "image", "show", "e2e-image", ok=False).returncode != 0
    saved = tmp_path / "saved"
    clients.run("demo", "image", "save", "--file", str(saved), "e2e-image")
    assert saved.read_bytes() == data.read_bytes()
    clients.run("demo", "image", "set", "--deactivate", "e2e-image")
    openstack_story.until("e2e-image to be deactivated",
                          lambda: clients.shown("demo", "image", "show", "e2e-image")["status"] == "deactivated")
    clients.run("demo", "image", "set", "--activate", "e2e-image")
    openstack_story.until("e2e-image to be active again",
                          lambda: clients.shown("demo", "image", "show", "e2e-image")["status"] == "active")
    clients.run("demo", "image", "delete", "e2e-image")
    clients.gone("demo", "image", "e2e-image")
    left = on_host("ls -A /var/lib/nimbus/image-store /var/lib/nimbus/image-store/.incoming").stdout
    assert created["id"] not in left
    assert on_host("ls -A /var/lib/nimbus-api/image-uploads/*/ 2>/dev/null").stdout.strip() == ""
