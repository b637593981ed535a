"""The OpenStack clients against the API service embedded on the controller (SQLite, jobs run in the API's
process) with the runbooks acting on this scenario's hosts: tokens (keystonemiddleware's auth_token among
their users), and the story of tests/e2e/openstack_story.py with the ``openstack`` command and openstacksdk
(a real TCG guest answers a ping through its floating IP, another project sees none of it), after which
nothing is left on the hosts.

It runs after the multi-host story was torn down, on the three compute hosts (the third one added by the
compute_host_add runbook) and the network node. Passwords reach the clients through the environment.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import testinfra
import yaml

REPO = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY") or Path(__file__).resolve().parents[3])
sys.path[:0] = [str(REPO / "tests" / "e2e"), str(REPO / "tests" / "support")]
import openstack_story  # noqa: E402 (the story the all-in-one's test tells too)
from openstack_story import Clients  # noqa: E402

NETWORK_NODE = "nimbus-mn-net-1"
COMPUTE = ["nimbus-mn-compute-1", "nimbus-mn-compute-2", "nimbus-mn-compute-3"]
PASSWORDS = {"admin": "admin-e2e-pass-7Qw", "demo": "demo-e2e-pass-4Rt", "other": "other-e2e-pass-9Zx"}
# The runbooks' template variable: the test image boots its own kernel (tools/guest-image).
RUNBOOK_VARS = {"runbook_kernels": {"nimbus-test.qcow2": {
    "kernel": "/var/lib/nimbus/boot/vmlinuz", "initrd": "/var/lib/nimbus/boot/initrd.img",
    "kernel_args": "console=ttyS0 quiet"}}}


def runbooks_inventory() -> dict:
    """The scenario's hosts, reached as Molecule reaches them (SSH as root with the testbed's key)."""
    molecule = yaml.safe_load(Path(os.environ["MOLECULE_INVENTORY_FILE"]).read_text())
    keep = ("ansible_host", "ansible_port", "ansible_user", "ansible_private_key_file", "ansible_ssh_common_args")

    def hosts(names):
        return {n: dict({k: v for k, v in molecule["all"]["hosts"][n].items() if k in keep},
                        ansible_python_interpreter="/usr/bin/python3") for n in names}

    return {"compute": {"hosts": hosts(COMPUTE)}, "network": {"hosts": hosts([NETWORK_NODE])}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    state = tmp_path_factory.mktemp("api")
    (state / "hosts.yml").write_text(yaml.safe_dump(runbooks_inventory()))
    (state / "runbooks.yml").write_text(yaml.safe_dump(RUNBOOK_VARS))
    port = free_port()
    url = "http://127.0.0.1:%d" % port
    # Jobs take the service's environment: none of Molecule's Ansible settings, this checkout's collections.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "NIMBUS_API_", "OS_"))}
    env.update(PYTHONPATH=str(REPO / "api"), ANSIBLE_COLLECTIONS_PATH=str(REPO / ".cache" / "collections"),
               NIMBUS_API_DATABASE_URL="sqlite:///%s" % (state / "nimbus.db"), NIMBUS_API_STATE_DIR=str(state),
               NIMBUS_API_DATA_DIR=str(state / "jobs"), NIMBUS_API_PLAYBOOKS_DIR=str(REPO / "playbooks"),
               NIMBUS_API_RESOURCES_INVENTORY=str(state / "hosts.yml"), NIMBUS_API_RESOURCES_TTL="3",
               NIMBUS_API_QUEUE="inprocess", NIMBUS_API_WORKERS="2", NIMBUS_API_PORT=str(port))

    def manage(*args, stdin=""):
        proc = subprocess.run([sys.executable, "-m", "nimbus_api.cli", *args], env=env, cwd=state, input=stdin,
                              capture_output=True, text=True, timeout=300, check=False)
        assert proc.returncode == 0, (args, proc.stdout[-2000:], proc.stderr[-2000:])

    manage("migrate")
    manage("bootstrap", "--password-stdin", "--public-url", url, stdin=PASSWORDS["admin"] + "\n")
    for name in ("demo", "other"):
        manage("demo", "--project", name, "--user", name, stdin=PASSWORDS[name] + "\n")
    manage("runbooks", "--inventory", str(state / "hosts.yml"), "--vars", str(state / "runbooks.yml"))
    log = open(state / "api.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "nimbus_api.cli", "serve"], env=env, cwd=state,
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, (state / "api.log").read_text()[-3000:]
                time.sleep(0.5)
        yield {"auth_url": url + "/identity/v3", "log": state / "api.log"}
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


@pytest.fixture
def clients(cloud):
    made = Clients(cloud["auth_url"], PASSWORDS, log=cloud["log"])
    yield made
    made.close()


def test_a_project_runs_a_server_behind_a_router_with_the_openstack_clients(clients):
    # The cloud admin's external network, on the network node's provider bridge (198.51.100.1 is its side).
    clients.run("admin", "network", "create", "--external", "--provider-network-type", "flat",
                "--provider-physical-network", "external", "public")
    clients.run("admin", "subnet", "create", "--network", "public", "--subnet-range", "198.51.100.0/24",
                "--gateway", "198.51.100.1", "--allocation-pool", "start=198.51.100.100,end=198.51.100.150",
                "--no-dhcp", "public-subnet")
    clients.status_is("admin", "network", "public", "ACTIVE")

    openstack_story.tokens(clients, "demo", service_user="admin")
    network_node = testinfra.get_host("podman://" + NETWORK_NODE)
    made = openstack_story.project_cloud(
        clients, "demo", "other", external="public", cidr="10.60.0.0/24", image="nimbus-test.qcow2",
        ping=lambda address: network_node.run("ping -c 1 -W 2 %s", address).rc == 0)
    clients.run("admin", "subnet", "delete", "public-subnet")
    clients.gone("admin", "subnet", "public-subnet")
    clients.run("admin", "network", "delete", "public")
    clients.gone("admin", "network", "public")

    # The projects' default groups stay, as Neutron keeps them; nothing else does.
    for name in COMPUTE + [NETWORK_NODE]:
        left = testinfra.get_host("podman://" + name).run(
            "virsh -c qemu:///system list --all --name 2>/dev/null; ls /etc/nimbus/networks /etc/nimbus/routers "
            "/etc/nimbus/floating-ips 2>/dev/null | grep -v -e '^$' -e ':$'; ip netns list | grep nimbus-; "
            "ls /etc/nimbus/security-groups 2>/dev/null | grep %s; ip -o link show | grep -E ' (nb-|nvx-|tap)'; true",
            made["group"])
        assert left.stdout.strip() == "", (name, left.stdout)
