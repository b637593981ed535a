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


def test_the_demo_project_stores_and_reads_objects_in_swift_with_the_openstack_command(clients, tmp_path):
    """openstack container / object with the demo project's token: the catalog sends the client to the Swift
    proxy on the host, at the project's own account (AUTH_<project id>), which keystonemiddleware lets in after
    checking the token with the API service; another project's account does not hold the container."""
    import os

    [store] = [s for s in clients.listed("demo", "catalog", "list") if s["Type"] == "object-store"]
    assert ":8888/v1/AUTH_" in str(store["Endpoints"])
    data = tmp_path / "e2e-object.bin"
    data.write_bytes(os.urandom(300_000))
    clients.run("demo", "container", "create", "e2e-container")
    clients.run("demo", "object", "create", "--name", "e2e-object", "e2e-container", str(data))
    assert [o["Name"] for o in clients.listed("demo", "object", "list", "e2e-container")] == ["e2e-object"]
    saved = tmp_path / "saved"
    clients.run("demo", "object", "save", "--file", str(saved), "e2e-container", "e2e-object")
    assert saved.read_bytes() == data.read_bytes()
    assert clients.run(OTHER, "object", "list", "e2e-container", ok=False).returncode != 0
    clients.run("demo", "object", "delete", "e2e-container", "e2e-object")
    clients.run("demo", "container", "delete", "e2e-container")
    assert "e2e-container" not in {c["Name"] for c in clients.listed("demo", "container", "list")}


def volume_status(clients, user: str, name: str, wanted: str, kind: tuple = ("volume",)):
    def check():
        status = clients.shown(user, *kind, "show", name)["status"]
        assert status != "error", "%s %s went to error" % (" ".join(kind), name)
        return status == wanted
    openstack_story.until("%s %s to be %s" % (" ".join(kind), name, wanted), check)


def console(server_id: str) -> str:
    return on_host("cat /var/lib/nimbus/instances/%s/console.log" % server_id).stdout


# The guest's user-data: once the volume is attached live as vdc, the marker goes into its first sector and is
# read back (the test guest's busybox has dd).
WRITER = """#!/bin/sh
while [ ! -b /dev/vdc ]; do sleep 1; done
printf '%s\\n' MARKER | dd of=/dev/vdc bs=512 count=1 conv=sync 2>/dev/null
sync
echo "NIMBUS-VOLUME-WROTE $(dd if=/dev/vdc bs=512 count=1 2>/dev/null | head -n 1)"
"""


def test_the_demo_project_boots_from_a_volume_writes_to_another_attached_live_snapshots_and_backs_it_up(
        clients, tmp_path):
    """openstack volume create (--image too), snapshot, backup and extend through Cinder, and server create
    --volume, server add / remove volume through Nova, to the real runbooks, with one guest: it boots with a
    volume made of an image as its first disk (over iSCSI) and reads the image's marker from it, then writes a
    marker to a second volume attached live; a volume made from that one's snapshot holds the marker; the boot
    volume is neither detached nor deleted while the server lives; a server deleted with volumes attached leaves
    them available; and afterwards no file, tgt target or libvirt secret is left."""
    marker = "e2e-marker-" + secrets.token_hex(6)
    clients.run("demo", "volume", "create", "--size", "1", "--description", "{{ 7 * 7 }}", "e2e-vol")
    root = clients.shown("demo", "volume", "create", "--image", "nimbus-tiny", "--size", "1", "e2e-root")
    volume_status(clients, "demo", "e2e-vol", "available")
    vol = clients.shown("demo", "volume", "show", "e2e-vol")
    assert (vol["size"], vol["description"], vol["type"]) == (1, "{{ 7 * 7 }}", "standard")
    assert clients.run(OTHER, "volume", "show", "e2e-vol", ok=False).returncode != 0
    assert "standard" in [t["Name"] for t in clients.listed("demo", "volume", "type", "list")]
    volume_status(clients, "demo", "e2e-root", "available")
    assert str(clients.shown("demo", "volume", "show", "e2e-root")["bootable"]).lower() == "true"
    # Another project's volume is not booted from (the client cannot even find it).
    assert clients.run(OTHER, "server", "create", "--flavor", "m1.nano", "--volume", root["id"], "e2e-theirs",
                       ok=False).returncode != 0
    assert clients.listed(OTHER, "server", "list") == []

    user_data = tmp_path / "writer.sh"
    user_data.write_text(WRITER.replace("MARKER", marker))
    server = clients.shown("demo", "server", "create", "--flavor", "m1.nano", "--volume", "e2e-root",
                           "--network", "demo-net", "--user-data", str(user_data), "--wait", "e2e-volvm")
    assert server["status"] == "ACTIVE", server
    openstack_story.until("the guest to read the image from its boot volume",
                          lambda: "NIMBUS-DISK vda marker=NIMBUS-IMAGE-1" in console(server["id"]), timeout=300)
    domain = on_host("virsh -c qemu:///system dumpxml %s" % server["id"]).stdout
    assert "<serial>%s</serial>" % root["id"] in domain and "disk.qcow2" not in domain
    listed = clients.listed("demo", "server", "volume", "list", "e2e-volvm")
    assert [(v["Volume ID"], v["Device"]) for v in listed] == [(root["id"], "/dev/vda")]
    volume_status(clients, "demo", "e2e-root", "in-use")
    assert clients.run("demo", "server", "remove", "volume", "e2e-volvm", "e2e-root", ok=False).returncode != 0
    assert clients.run("demo", "volume", "delete", "e2e-root", ok=False).returncode != 0

    # A second volume attached live as vdc (vdb is the seed): the guest writes the marker to it.
    openstack_story.until("the guest's user-data to start", lambda: "NIMBUS-USER-DATA start" in console(server["id"]),
                          timeout=300)
    clients.run("demo", "server", "add", "volume", "e2e-volvm", "e2e-vol")
    volume_status(clients, "demo", "e2e-vol", "in-use")
    attached = clients.shown("demo", "volume", "show", "e2e-vol")["attachments"]
    assert [(a["server_id"], a["device"]) for a in attached] == [(server["id"], "/dev/vdc")]
    domain = on_host("virsh -c qemu:///system dumpxml %s" % server["id"]).stdout
    assert "<serial>%s</serial>" % vol["id"] in domain and "protocol='iscsi'" in domain
    assert vol["id"] in on_host("tgtadm --lld iscsi --mode target --op show").stdout
    openstack_story.until("the guest to write to the volume",
                          lambda: "NIMBUS-VOLUME-WROTE " + marker in console(server["id"]), timeout=300)
    # In use: not deleted.
    assert clients.run("demo", "volume", "delete", "e2e-vol", ok=False).returncode != 0
    clients.run("demo", "server", "remove", "volume", "e2e-volvm", "e2e-vol")
    volume_status(clients, "demo", "e2e-vol", "available")
    assert "<serial>%s</serial>" % vol["id"] not in on_host("virsh -c qemu:///system dumpxml %s" % server["id"]).stdout

    # A snapshot, and a volume made from it: the marker the guest wrote is there.
    clients.run("demo", "volume", "snapshot", "create", "--volume", "e2e-vol", "e2e-snap")
    volume_status(clients, "demo", "e2e-snap", "available", ("volume", "snapshot"))
    clone = clients.shown("demo", "volume", "create", "--snapshot", "e2e-snap", "e2e-clone")
    volume_status(clients, "demo", "e2e-clone", "available")
    assert marker in on_host("head -c 512 /var/lib/nimbus/volumes/%s" % clone["id"]).stdout
    clients.run("demo", "volume", "backup", "create", "--name", "e2e-backup", "e2e-vol")
    volume_status(clients, "demo", "e2e-backup", "available", ("volume", "backup"))
    clients.run("demo", "volume", "set", "--size", "2", "e2e-vol")
    openstack_story.until("e2e-vol to grow", lambda: clients.shown("demo", "volume", "show", "e2e-vol")["size"] == 2)
    quota = clients.python("demo", QUOTA_VIEW)
    # Volumes of 2, 1 and 1 GiB (the boot volume) and a snapshot of 1 GiB, against the default limits.
    assert (quota["used"]["volumes"], quota["used"]["gigabytes"], quota["volumes"]) == (3, 5, 10)

    # A server deleted with volumes attached: they are available again, their targets and secrets gone.
    clients.run("demo", "server", "add", "volume", "e2e-volvm", "e2e-clone")
    volume_status(clients, "demo", "e2e-clone", "in-use")
    clients.run("demo", "server", "delete", "--wait", "e2e-volvm")
    volume_status(clients, "demo", "e2e-clone", "available")
    volume_status(clients, "demo", "e2e-root", "available")
    assert on_host("tgtadm --lld iscsi --mode target --op show").stdout.strip() == ""
    assert "nimbus-volume" not in on_host("virsh -c qemu:///system secret-list").stdout

    clients.run("demo", "volume", "backup", "delete", "e2e-backup")
    clients.run("demo", "volume", "delete", "e2e-clone")
    clients.run("demo", "volume", "delete", "e2e-root")
    clients.run("demo", "volume", "snapshot", "delete", "e2e-snap")
    clients.gone("demo", "volume", "e2e-clone")
    clients.gone("demo", "volume", "e2e-root")
    openstack_story.until("e2e-snap to go", lambda: "e2e-snap" not in {
        s["Name"] for s in clients.listed("demo", "volume", "snapshot", "list")})
    clients.run("demo", "volume", "delete", "e2e-vol")
    clients.gone("demo", "volume", "e2e-vol")
    openstack_story.until("e2e-backup to go", lambda: clients.listed("demo", "volume", "backup", "list") == [])
    left = on_host("ls -A /var/lib/nimbus/volumes /var/lib/nimbus/volume-backups").stdout
    assert vol["id"] not in left and clone["id"] not in left and root["id"] not in left and ".json" not in left


# The project's Cinder quota set with its usage, through openstacksdk.
QUOTA_VIEW = """
import json, openstack
conn = openstack.connect()
project = conn.current_project_id
quota = conn.block_storage.get_quota_set(project, usage=True)
print(json.dumps({"used": quota.usage, "volumes": quota.volumes, "gigabytes": quota.gigabytes}))
"""


def module_on_host(module: str, args: str) -> dict:
    """One task of the collection's module on the all-in-one host, through Ansible as an operator runs it."""
    import json
    import os

    env = dict(os.environ, ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="json")
    run = subprocess.run(["ansible", "-i", str(REPO / "inventories" / "aio"), HOST, "-m", module, "-a", args],
                         capture_output=True, text=True, timeout=300, check=False, env=env, cwd=REPO)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    return json.loads(run.stdout)["plays"][0]["tasks"][0]["hosts"][HOST]


def test_the_enrolled_machine_answers_through_its_virtual_bmc():
    """The all-in-one's bare-metal machine, enrolled and manageable: dnsmasq knows its MAC, its BMC (IPMI 2.0,
    virtualbmc in front of the libvirt domain) answers the modules through the node's record, and the record and
    the BMC agree (off, no drift)."""
    node = module_on_host("nimbus.cloud.baremetal_node", "name=aio-machine-1 state=manageable")
    assert not node["changed"] and node["drift"] == [], node
    assert node["node"]["provision_state"] == "manageable" and node["node"]["power"] == "off"
    assert "password" not in node["node"]["bmc"]
    hosts = on_host("cat /var/lib/nimbus/pxe/dhcp-hosts").stdout
    assert "52:54:00:5e:00:01,%s,aio-machine-1" % node["node"]["address"] in hosts.splitlines()

    info = module_on_host("nimbus.cloud.baremetal_node_info", "node=aio-machine-1 sensors=false inventory=false")
    assert info["power"] == "off" and info["session"]["ipmi_version"] == "2.0"
    assert on_host("virsh -c qemu:///system domstate aio-machine-1").stdout.strip() == "shut off"
