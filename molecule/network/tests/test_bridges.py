"""The host the bridges role built: tools, forwarding, provider bridge, networkd persistence."""

import json

import pytest

HOST = "nimbus-net-1"
testinfra_hosts = ["podman://" + HOST]


@pytest.mark.parametrize("package", ["iproute2", "nftables", "dnsmasq-base", "python3-netaddr", "udev"])
def test_packages(host, package):
    assert host.package(package).is_installed


@pytest.mark.parametrize("key", ["net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables"])
def test_forwarding_and_br_netfilter(host, key):
    assert host.sysctl(key) == 1
    assert host.file("/etc/sysctl.d/60-nimbus-bridges.conf").contains("^%s *= *1$" % key.replace(".", r"\."))


def link(host, name):
    out = host.run("ip -j -d link show dev %s" % name)
    assert out.rc == 0, out.stderr
    return json.loads(out.stdout)[0]


def test_provider_bridge_with_uplink_and_address(host):
    bridge = link(host, "br-ex")
    assert bridge["linkinfo"]["info_kind"] == "bridge" and "UP" in bridge["flags"] and bridge["mtu"] == 1500
    assert link(host, "uplink0")["master"] == "br-ex"
    assert "198.51.100.1/24" in host.run("ip -4 -o addr show dev br-ex").stdout


def test_trunk_is_up(host):
    assert "UP" in link(host, "trunk0")["flags"]


def test_settings_record(host):
    settings = json.loads(host.file("/etc/nimbus/bridges.json").content_string)
    assert settings["physical_networks"]["external"] == {"bridge": "br-ex", "interface": "uplink0", "mtu": 1500}
    assert settings["physical_networks"]["physnet1"] == {"interface": "trunk0", "mtu": 1500}
    eth0 = host.interface("eth0").addresses
    assert settings["vxlan"]["local_ip"] in eth0 and settings["vxlan"]["interface"] == "eth0"
    assert settings["vxlan"]["port"] == 4789 and settings["vxlan"]["mtu"] == 1500


def test_dhcp_unit_template(host):
    unit = host.file("/etc/systemd/system/nimbus-dhcp@.service")
    assert unit.contains("ip netns exec nimbus-dhcp-%i /usr/sbin/dnsmasq")


def test_networkd_runs_and_leaves_foreign_routes(host):
    assert host.service("systemd-networkd").is_running and host.service("systemd-networkd").is_enabled
    assert host.file("/etc/systemd/networkd.conf.d/60-nimbus.conf").contains("^ManageForeignRoutes=no$")
    # The container's own default route, which networkd did not make, is still there.
    assert host.run("ip -4 route show default").stdout.strip()


def test_network_online_waits_for_any_link_not_every_one(host):
    """The container's eth0, which udev never initialized, and any bridge without carrier would hold
    network-online.target for systemd-networkd-wait-online's two-minute timeout: with the role's drop-in it is
    reached once one link is up."""
    shown = host.run("systemctl show -p ExecStart systemd-networkd-wait-online.service").stdout
    assert "--any" in shown, shown
    waited = host.run("timeout 60 systemctl restart systemd-networkd-wait-online.service")
    assert waited.rc == 0, waited.stderr


def test_a_bridge_without_an_uplink_is_online_once_configured(host):
    """br-prov has no port and so no carrier: configured is online for it, or it alone would hold
    network-online.target for the two-minute timeout wherever it is the only link networkd manages (the
    all-in-one's bridges). br-ex, with an uplink, still needs carrier."""
    assert link(host, "br-prov")["operstate"] in ("DOWN", "UNKNOWN")
    assert "10.0.60.1/24" in host.run("ip -4 -o addr show dev br-prov").stdout
    assert host.file("/etc/systemd/network/40-nimbus-br-prov.network").contains("^RequiredForOnline=no-carrier$")
    assert not host.file("/etc/systemd/network/40-nimbus-br-ex.network").contains("^RequiredForOnline=")
    waited = host.run("/lib/systemd/systemd-networkd-wait-online --interface=br-prov --timeout=20")
    assert waited.rc == 0, waited.stderr


def test_networkd_brings_the_bridge_back(host):
    """What a reboot would do: the bridge is gone and networkd rebuilds it from its files."""
    host.run_expect([0], "ip link del br-ex")
    host.run_expect([0], "systemctl restart systemd-networkd")
    for attempt in range(50):
        out = host.run("ip -j link show dev br-ex")
        if out.rc == 0 and host.run("ip -j link show dev uplink0").stdout.count('"master":"br-ex"'):
            break
        host.run("sleep 0.2")
    assert link(host, "br-ex")["mtu"] == 1500
    assert link(host, "uplink0")["master"] == "br-ex"
    for attempt in range(25):
        if "198.51.100.1/24" in host.run("ip -4 -o addr show dev br-ex").stdout:
            break
        host.run("sleep 0.2")
    assert "198.51.100.1/24" in host.run("ip -4 -o addr show dev br-ex").stdout


def test_filters_are_restored_at_boot(host):
    unit = host.service("nimbus-nftables")
    assert unit.is_enabled
    assert host.file("/etc/systemd/system/nimbus-nftables.service").contains("ExecStart=/usr/sbin/nft -f /etc/nimbus/nftables.nft")
