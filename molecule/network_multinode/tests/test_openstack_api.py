"""The OpenStack clients against the API service embedded on the controller (SQLite, jobs run in the API's
process) with the runbooks acting on this scenario's hosts: tokens (keystonemiddleware's auth_token among
their users), and a network and a server made with the ``openstack`` command and read with openstacksdk across
the hosts, after which nothing is left on them.

It runs after the multi-host story was torn down, on the three compute hosts (the third one added by the
compute_host_add runbook) and the network node. Passwords reach the clients through the environment.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import testinfra
import yaml

REPO = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY") or Path(__file__).resolve().parents[3])
sys.path[:0] = [str(REPO / "tests" / "e2e"), str(REPO / "tests" / "support")]
import openstack_story  # noqa: E402 (the story the all-in-one's test tells too)
from embedded_api import EmbeddedAPI  # noqa: E402
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


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    state = tmp_path_factory.mktemp("api")
    (state / "hosts.yml").write_text(yaml.safe_dump(runbooks_inventory()))
    (state / "runbooks.yml").write_text(yaml.safe_dump(RUNBOOK_VARS))
    # Views are read again after every job that changes their kind whatever their age; the TTL only spaces the
    # reads (an ansible-runner run across the four hosts each) that the clients' polling would otherwise start.
    with EmbeddedAPI(state, settings={"resources_inventory": state / "hosts.yml", "resources_ttl": 30}) as api:
        api.manage("migrate")
        api.manage("bootstrap", "--password-stdin", "--public-url", api.url, stdin=PASSWORDS["admin"] + "\n")
        for name in ("demo", "other"):
            api.manage("demo", "--project", name, "--user", name, stdin=PASSWORDS[name] + "\n")
        api.manage("runbooks", "--inventory", str(state / "hosts.yml"), "--vars", str(state / "runbooks.yml"))
        api.serve()
        yield {"auth_url": api.url + "/identity/v3", "log": api.log}


@pytest.fixture
def clients(cloud):
    made = Clients(cloud["auth_url"], PASSWORDS, log=cloud["log"])
    yield made
    made.close()


def test_tokens_are_issued_validated_and_revoked(clients):
    openstack_story.tokens(clients, "demo", service_user="admin")


def test_a_project_makes_a_network_and_a_server_across_the_hosts_with_the_openstack_clients(clients):
    """The API's jobs act on several hosts at once: the network is made on the network node and every compute
    host, the scheduler picks one of three hypervisors, and the views read all of them. (The whole story, with
    a router, a floating IP and a ping, runs against the all-in-one in tests/e2e and on these hosts through
    the runbooks in runbooks.yml.)"""
    clients.run("demo", "network", "create", "mn-api-net")
    clients.run("demo", "subnet", "create", "--network", "mn-api-net", "--subnet-range", "10.61.0.0/24",
                "mn-api-subnet")
    clients.status_is("demo", "network", "mn-api-net", "ACTIVE")
    server = clients.shown("demo", "server", "create", "--flavor", "m1.nano", "--image", "nimbus-test.qcow2",
                           "--network", "mn-api-net", "--wait", "mn-api-vm")
    assert server["status"] == "ACTIVE", server
    seen = clients.python("demo", openstack_story.SDK_VIEW)
    vm = [s for s in seen["servers"] if s["name"] == "mn-api-vm"][0]
    port = clients.listed("demo", "port", "list", "--server", server["id"])[0]
    assert {a["addr"] for a in vm["addresses"]["mn-api-net"]} == {port["Fixed IP Addresses"][0]["ip_address"]}
    hosts = [name for name in COMPUTE
             if server["id"] in testinfra.get_host("podman://" + name).run(
                 "virsh -c qemu:///system list --all --name").stdout]
    assert len(hosts) == 1, hosts
    assert "mn-api-vm" not in {s["Name"] for s in clients.listed("other", "server", "list")}
    clients.run("demo", "server", "delete", "--wait", "mn-api-vm")
    clients.run("demo", "subnet", "delete", "mn-api-subnet")
    clients.gone("demo", "subnet", "mn-api-subnet")
    clients.run("demo", "network", "delete", "mn-api-net")
    clients.gone("demo", "network", "mn-api-net")

    # The projects' default groups stay, as Neutron keeps them; nothing else does.
    for name in COMPUTE + [NETWORK_NODE]:
        left = testinfra.get_host("podman://" + name).run(
            "virsh -c qemu:///system list --all --name 2>/dev/null; ls /etc/nimbus/networks 2>/dev/null "
            "| grep -v -e '^$' -e ':$'; ip netns list | grep nimbus-; ip -o link show | grep -E ' (nb-|nvx-|tap)'; "
            "true")
        assert left.stdout.strip() == "", (name, left.stdout)
