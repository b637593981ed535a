"""What the bridges and kvm roles built on three hosts, after the multi-host story ran and was torn down."""

import json

import pytest
import testinfra

COMPUTE = ["nimbus-mn-compute-1", "nimbus-mn-compute-2"]
NETWORK = "nimbus-mn-net-1"
testinfra_hosts = ["podman://" + name for name in COMPUTE + [NETWORK]]


def settings(host):
    return json.loads(host.file("/etc/nimbus/bridges.json").content_string)


def name(host):
    return host.backend.get_hostname()


def test_vxlan_endpoint_is_the_hosts_own_address(host):
    vxlan = settings(host)["vxlan"]
    assert vxlan["local_ip"] in host.interface(vxlan["interface"]).addresses
    assert (vxlan["port"], vxlan["mtu"]) == (4789, 1500)


def test_endpoints_are_distinct_and_reach_each_other(host):
    others = [testinfra.get_host("podman://" + n) for n in COMPUTE + [NETWORK] if n != name(host)]
    mine = settings(host)["vxlan"]["local_ip"]
    theirs = [settings(other)["vxlan"]["local_ip"] for other in others]
    assert mine not in theirs and len(set(theirs)) == 2
    for address in theirs:
        # The underlay the tenant network's VXLAN rides on; no ping binary needed on the compute hosts.
        out = host.run("ip -j route get %s", address)
        assert out.rc == 0, out.stderr
        assert json.loads(out.stdout)[0]["prefsrc"] == mine


def test_forwarding_and_br_netfilter(host):
    assert host.sysctl("net.ipv4.ip_forward") == 1
    assert host.sysctl("net.bridge.bridge-nf-call-iptables") == 1


def test_networkd_runs(host):
    networkd = host.service("systemd-networkd")
    assert networkd.is_running and networkd.is_enabled


def test_network_node_provider_bridge(host):
    if name(host) != NETWORK:
        pytest.skip("the provider bridge is on the network node")
    bridge = json.loads(host.check_output("ip -j -d link show dev br-ex"))[0]
    assert bridge["linkinfo"]["info_kind"] == "bridge" and "UP" in bridge["flags"]
    assert json.loads(host.check_output("ip -j link show dev uplink0"))[0]["master"] == "br-ex"
    assert "198.51.100.1/24" in host.check_output("ip -4 -o addr show dev br-ex")
    external = settings(host)["physical_networks"]["external"]
    assert (external["bridge"], external["interface"]) == ("br-ex", "uplink0")


def test_compute_hosts_have_no_provider_bridge(host):
    if name(host) == NETWORK:
        pytest.skip("compute hosts only")
    assert settings(host)["physical_networks"] == {}
    assert not host.interface("br-ex").exists


def test_hypervisor_answers_with_its_pools(host):
    if name(host) == NETWORK:
        pytest.skip("the network node is no hypervisor")
    # A real round trip through libvirtd's socket (socket-activated), pools active and started at boot.
    assert host.check_output("virsh -c qemu:///system hostname").strip() == name(host)
    for pool in ("nimbus-instances", "nimbus-images"):
        assert pool in host.check_output("virsh -q pool-list --name").split()
        assert pool in host.check_output("virsh -q pool-list --name --autostart").split()
    hypervisor = json.loads(host.file("/etc/nimbus/hypervisor.json").content_string)
    assert hypervisor["virt_type"] == "qemu" and hypervisor["reserved"]["ram_mb"] == 256


def test_the_story_left_nothing_behind(host):
    links = [link["ifname"] for link in json.loads(host.check_output("ip -j link show"))]
    assert [n for n in links if n.startswith(("nb-", "nvx-", "nd-", "nr-", "ng-", "tap"))] == []
    assert "nimbus-" not in host.check_output("ip netns list")
    if name(host) != NETWORK:
        assert host.check_output("virsh -q list --all --name").strip() == ""
