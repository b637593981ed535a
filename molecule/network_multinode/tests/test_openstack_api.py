"""The OpenStack clients against the API service embedded on the controller (SQLite, jobs run in the API's
process) with the runbooks acting on this scenario's hosts: the ``openstack`` command and openstacksdk
(pinned, in .cache/venv-openstack) make what a project uses, a real TCG guest boots and answers a ping
through its floating IP, another project sees none of it, and deleting it all leaves nothing on the hosts.

It runs after the multi-host story was torn down, on the three compute hosts (the third one added by the
compute_host_add runbook) and the network node. Passwords reach the clients through the environment.
"""

from __future__ import annotations

import json
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
VENV = Path(os.environ.get("NIMBUS_OPENSTACK_VENV") or REPO / ".cache" / "venv-openstack")
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
    if not (VENV / "bin" / "openstack").exists():
        pytest.fail("%s has no openstack command: tools/test installs requirements/openstack-clients.txt there" % VENV)
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


def client_env(cloud, user, project=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update(OS_AUTH_URL=cloud["auth_url"], OS_USERNAME=user, OS_PASSWORD=PASSWORDS[user],
               OS_PROJECT_NAME=project or user, OS_USER_DOMAIN_NAME="Default", OS_PROJECT_DOMAIN_NAME="Default",
               OS_IDENTITY_API_VERSION="3", OS_INTERFACE="public")
    return env


def openstack(cloud, user, *args, ok=True, token=None):
    env = client_env(cloud, user)
    if token:
        env = {k: v for k, v in env.items() if k not in ("OS_USERNAME", "OS_PASSWORD", "OS_USER_DOMAIN_NAME")}
        env.update(OS_AUTH_TYPE="token", OS_TOKEN=token)
    proc = subprocess.run([str(VENV / "bin" / "openstack"), *args], env=env, capture_output=True, text=True,
                          timeout=900, stdin=subprocess.DEVNULL, check=False)
    if ok:
        assert proc.returncode == 0, (args, proc.stdout[-2000:], proc.stderr[-2000:],
                                      cloud["log"].read_text()[-3000:])
    return proc


def listed(cloud, user, *args) -> list[dict]:
    return json.loads(openstack(cloud, user, *args, "-f", "json").stdout)


def shown(cloud, user, *args) -> dict:
    return json.loads(openstack(cloud, user, *args, "-f", "json").stdout)


def until(what, check, timeout=600, every=3):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(every)


def status_is(cloud, user, kind, name, wanted):
    def check():
        status = shown(cloud, user, kind, "show", name)["status"]
        assert status != "ERROR", "%s %s went to ERROR" % (kind, name)
        return status == wanted
    until("%s %s to be %s" % (kind, name, wanted), check)


def gone(cloud, user, kind, name):
    until("%s %s to go" % (kind, name), lambda: name not in {i["Name"] for i in listed(cloud, user, kind, "list")})


def host(name):
    return testinfra.get_host("podman://" + name)


def test_a_project_runs_a_server_behind_a_router_with_the_openstack_clients(cloud):
    # The cloud admin's external network, on the network node's provider bridge (198.51.100.1 is its side).
    openstack(cloud, "admin", "network", "create", "--external", "--provider-network-type", "flat",
              "--provider-physical-network", "external", "public")
    openstack(cloud, "admin", "subnet", "create", "--network", "public", "--subnet-range", "198.51.100.0/24",
              "--gateway", "198.51.100.1", "--allocation-pool", "start=198.51.100.100,end=198.51.100.150",
              "--no-dhcp", "public-subnet")
    status_is(cloud, "admin", "network", "public", "ACTIVE")

    # Tokens: issued, used, revoked, refused.
    token = shown(cloud, "demo", "token", "issue")["id"]
    openstack(cloud, "demo", "server", "list", token=token)
    openstack(cloud, "demo", "token", "revoke", token)
    refused = openstack(cloud, "demo", "server", "list", token=token, ok=False)
    assert refused.returncode != 0 and "401" in refused.stderr + refused.stdout

    # The project's network, router and security group.
    openstack(cloud, "demo", "network", "create", "demo-net")
    openstack(cloud, "demo", "subnet", "create", "--network", "demo-net", "--subnet-range", "10.60.0.0/24",
              "demo-subnet")
    web_id = shown(cloud, "demo", "security", "group", "create", "web")["id"]
    openstack(cloud, "demo", "security", "group", "rule", "create", "--ingress", "--protocol", "icmp", "web")
    openstack(cloud, "demo", "router", "create", "demo-router")
    openstack(cloud, "demo", "router", "set", "--external-gateway", "public", "demo-router")
    openstack(cloud, "demo", "router", "add", "subnet", "demo-router", "demo-subnet")
    status_is(cloud, "demo", "network", "demo-net", "ACTIVE")
    status_is(cloud, "demo", "router", "demo-router", "ACTIVE")

    # A real guest, on whichever compute host the scheduler picks.
    server = shown(cloud, "demo", "server", "create", "--flavor", "m1.nano", "--image", "nimbus-test.qcow2",
                   "--network", "demo-net", "--security-group", "web", "--wait", "vm1")
    assert server["status"] == "ACTIVE", server
    port = listed(cloud, "demo", "port", "list", "--server", server["id"])[0]
    fip = shown(cloud, "demo", "floating", "ip", "create", "--port", port["ID"], "public")
    address = fip["floating_ip_address"]
    assert address.startswith("198.51.100.")
    until("the floating IP to be active", lambda: shown(cloud, "demo", "floating", "ip", "show", fip["id"])["status"] == "ACTIVE")
    # From outside: the network node's side of the provider bridge, through the router's DNAT to the guest.
    until("the guest to answer at %s" % address,
          lambda: host(NETWORK_NODE).run("ping -c 1 -W 2 %s", address).rc == 0, timeout=300)

    # openstacksdk sees what the command made.
    sdk = subprocess.run([str(VENV / "bin" / "python"), "-c", (
        "import json, openstack\n"
        "conn = openstack.connect()\n"
        "print(json.dumps([{'name': s.name, 'status': s.status, 'addresses': s.addresses}"
        " for s in conn.compute.servers()] + [{'router': r.name, 'gateway': r.external_gateway_info}"
        " for r in conn.network.routers()]))\n")], env=client_env(cloud, "demo"), capture_output=True, text=True,
        timeout=120, check=False)
    assert sdk.returncode == 0, sdk.stderr[-2000:]
    seen = json.loads(sdk.stdout)
    vm = [s for s in seen if s.get("name") == "vm1"][0]
    assert vm["status"] == "ACTIVE"
    assert {a["addr"] for a in vm["addresses"]["demo-net"]} == {port["Fixed IP Addresses"][0]["ip_address"], address}
    assert [r["gateway"]["network_id"] for r in seen if r.get("router") == "demo-router"] == [
        shown(cloud, "demo", "network", "show", "public")["id"]]

    # Another project sees none of it, and cannot touch it.
    assert listed(cloud, "other", "server", "list") == []
    assert [n["Name"] for n in listed(cloud, "other", "network", "list")] == ["public"]
    assert listed(cloud, "other", "router", "list") == []
    assert listed(cloud, "other", "floating", "ip", "list") == []
    assert [g["Name"] for g in listed(cloud, "other", "security", "group", "list")] == ["default"]
    assert openstack(cloud, "other", "server", "delete", server["id"], ok=False).returncode != 0

    # Stop and start.
    openstack(cloud, "demo", "server", "stop", "vm1")
    status_is(cloud, "demo", "server", "vm1", "SHUTOFF")
    openstack(cloud, "demo", "server", "start", "vm1")
    status_is(cloud, "demo", "server", "vm1", "ACTIVE")

    # Everything deleted, the project's and the admin's.
    openstack(cloud, "demo", "floating", "ip", "delete", fip["id"])
    until("the floating IP to go", lambda: listed(cloud, "demo", "floating", "ip", "list") == [])
    openstack(cloud, "demo", "server", "delete", "--wait", "vm1")
    openstack(cloud, "demo", "router", "remove", "subnet", "demo-router", "demo-subnet")
    openstack(cloud, "demo", "router", "unset", "--external-gateway", "demo-router")
    until("the router to have no port", lambda: listed(cloud, "demo", "port", "list", "--router", "demo-router") == [])
    openstack(cloud, "demo", "router", "delete", "demo-router")
    gone(cloud, "demo", "router", "demo-router")
    openstack(cloud, "demo", "security", "group", "delete", "web")
    openstack(cloud, "demo", "subnet", "delete", "demo-subnet")
    gone(cloud, "demo", "subnet", "demo-subnet")
    openstack(cloud, "demo", "network", "delete", "demo-net")
    gone(cloud, "demo", "network", "demo-net")
    openstack(cloud, "admin", "subnet", "delete", "public-subnet")
    gone(cloud, "admin", "subnet", "public-subnet")
    openstack(cloud, "admin", "network", "delete", "public")
    gone(cloud, "admin", "network", "public")
    until("the security group to go", lambda: "web" not in {g["Name"] for g in listed(cloud, "demo", "security", "group", "list")})

    # The projects' default groups stay, as Neutron keeps them; nothing else does.
    for name in COMPUTE + [NETWORK_NODE]:
        left = host(name).run(
            "virsh -c qemu:///system list --all --name 2>/dev/null; ls /etc/nimbus/networks /etc/nimbus/routers "
            "/etc/nimbus/floating-ips 2>/dev/null | grep -v -e '^$' -e ':$'; ip netns list | grep nimbus-; "
            "ls /etc/nimbus/security-groups 2>/dev/null | grep %s; ip -o link show | grep -E ' (nb-|nvx-|tap)'; true",
            web_id)
        assert left.stdout.strip() == "", (name, left.stdout)
