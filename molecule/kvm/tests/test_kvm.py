"""The hypervisor the kvm role built: packages, daemons, pools, settings, KSM."""

import json

import pytest

HOST = "nimbus-kvm-1"
testinfra_hosts = ["podman://" + HOST]


@pytest.mark.parametrize("package", [
    "libvirt-daemon-system", "libvirt-daemon-driver-qemu", "qemu-system-x86", "qemu-utils", "qemu-block-extra", "ipxe-qemu",
    "python3-libvirt", "python3-lxml", "xorriso",
])
def test_packages(host, package):
    assert host.package(package).is_installed


def test_no_libvirt_nat_network(host):
    # No virbr0 and its dnsmasq next to the cloud's own networks; the names come from libvirt's filters,
    # whatever the locale.
    assert "default" not in host.check_output("virsh -q net-list --name").split()
    assert "default" not in host.check_output("virsh -q net-list --name --autostart").split()
    assert not host.interface("virbr0").exists


@pytest.mark.parametrize("socket,path", [
    ("libvirtd.socket", "/run/libvirt/libvirt-sock"),
    ("libvirtd-ro.socket", "/run/libvirt/libvirt-sock-ro"),
    ("virtlogd.socket", "/run/libvirt/virtlogd-sock"),
])
def test_sockets(host, socket, path):
    # libvirtd itself exits when idle (--timeout 120) and its sockets start it again: the sockets are
    # what must be up and enabled.
    unit = host.service(socket)
    assert unit.is_running and unit.is_enabled
    assert host.socket("unix://" + path).is_listening
    assert host.service("libvirtd").is_enabled


def test_socket_activation_round_trip(host):
    # Stop the daemon: the next client call must start it through the socket and get a real answer.
    stopped = host.run("systemctl stop libvirtd.service")
    assert stopped.rc == 0, stopped.stderr
    assert host.check_output("systemctl is-active libvirtd.service || true").strip() == "inactive"
    uri = host.check_output("virsh -c qemu:///system uri").strip()
    assert uri == "qemu:///system"
    assert host.service("libvirtd").is_running


READ_ONLY = "qemu:///system?socket=/var/run/libvirt/libvirt-sock-ro"


def test_no_tcp_listener(host):
    assert not host.socket("tcp://0.0.0.0:16509").is_listening
    assert not host.socket("tcp://:::16509").is_listening
    assert not host.service("libvirtd-tcp.socket").is_enabled
    assert 'auth_tcp = "sasl"' in host.file("/etc/libvirt/libvirtd.conf").content_string


def test_libvirt_refuses_tcp_from_the_host_itself(host):
    refused = host.run("virsh -c qemu+tcp://127.0.0.1/system hostname")
    assert refused.rc != 0 and HOST not in refused.stdout


def test_libvirt_answers_root_on_its_socket(host):
    assert host.check_output("virsh -c qemu:///system hostname").strip() == HOST


def test_an_unprivileged_user_only_reads(host):
    # What the API's resource views use: no group membership, no writes.
    assert host.check_output("runuser -u nobody -- virsh -c '%s' hostname" % READ_ONLY).strip() == HOST
    write = host.run("runuser -u nobody -- virsh -c '%s' pool-define-as probe dir --target /tmp" % READ_ONLY)
    assert write.rc != 0 and "read only access" in write.stderr
    assert host.run("runuser -u nobody -- virsh -c qemu:///system hostname").rc != 0


@pytest.mark.parametrize("pool,path,mode", [
    ("nimbus-instances", "/var/lib/nimbus/instances", 0o711), ("nimbus-images", "/var/lib/nimbus/images", 0o755),
])
def test_pools(host, pool, path, mode):
    assert pool in host.check_output("virsh -q pool-list --name --autostart").split()
    assert pool in host.check_output("virsh -q pool-list --name --persistent").split()
    assert pool in host.check_output("virsh -q pool-list --name").split()  # active ones only
    assert "<path>%s</path>" % path in host.check_output("virsh pool-dumpxml %s", pool)
    assert host.file(path).mode == mode


def test_settings(host):
    settings = json.loads(host.file("/etc/nimbus/hypervisor.json").content_string)
    assert settings["virt_type"] == "qemu"
    assert settings["allocation_ratios"] == {"vcpus": 4.0, "ram_mb": 1.0, "disk_gb": 1.0}
    assert settings["reserved"] == {"vcpus": 0, "ram_mb": 256, "disk_gb": 0}
    assert settings["aggregates"] == ["molecule", "tcg"]
    assert settings["pools"]["instances"]["path"] == "/var/lib/nimbus/instances"


def test_ksm(host):
    assert host.file("/sys/kernel/mm/ksm/run").content_string.strip() == "1"
    assert "w /sys/kernel/mm/ksm/run - - - - 1" in host.file("/etc/tmpfiles.d/nimbus-ksm.conf").content_string


def test_security_driver(host):
    assert 'security_driver = "none"' in host.file("/etc/libvirt/qemu.conf").content_string


def test_side_effect_left_nothing_behind(host):
    assert host.check_output("virsh -q list --all --name").strip() == ""
    assert host.check_output("ls -A /var/lib/nimbus/instances").strip() == ""
