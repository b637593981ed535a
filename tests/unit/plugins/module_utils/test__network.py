import pytest

from ansible_collections.nimbus.cloud.plugins.module_utils import _ipam as ipam_lib
from ansible_collections.nimbus.cloud.plugins.module_utils import _netdev as netdev
from ansible_collections.nimbus.cloud.plugins.module_utils import _network as nw
from ansible_collections.nimbus.cloud.plugins.module_utils._errors import ValidationError

SETTINGS = {
    "physical_networks": {"external": {"bridge": "br-ex", "interface": "uplink0", "mtu": 1500},
                          "physnet1": {"interface": "trunk0", "mtu": 9000}},
    "vxlan": {"local_ip": "10.89.0.2", "interface": "eth0", "port": 4789, "mtu": 1500},
}


def test_vxlan_network_defaults():
    net = nw.build_network("n1", SETTINGS, type="vxlan", segmentation_id=7, vxlan_peers=["10.89.0.3", "10.89.0.2"])
    assert net.mtu == 1450 and net.local_ip == "10.89.0.2" and net.peers == ["10.89.0.3"]
    assert net.bridge == "nb-" + net.id[:8] and net.member == "nvx-" + net.id[:8]
    assert net.id == nw.build_network("n1", SETTINGS, segmentation_id=9).id


def test_flat_network_uses_the_provider_bridge():
    net = nw.build_network("public", SETTINGS, type="flat", physical_network="external", external=True)
    assert net.bridge == "br-ex" and net.member is None and not net.owns_bridge and net.mtu == 1500


def test_vlan_network_mtu_comes_from_the_physical_network():
    assert nw.build_network("v", SETTINGS, type="vlan", physical_network="physnet1", segmentation_id=5).mtu == 9000


@pytest.mark.parametrize("kwargs, message", [
    (dict(type="vlan", physical_network="physnet1", segmentation_id=4095), r"out of range for vlan \(1-4094\)"),
    (dict(type="vlan", physical_network="physnet1", segmentation_id=0), "out of range"),
    (dict(type="vxlan", segmentation_id=16777216), r"out of range for vxlan \(1-16777215\)"),
    (dict(type="vxlan"), "needs segmentation_id"),
    (dict(type="flat", physical_network="external", segmentation_id=3), "flat networks have no segmentation_id"),
    (dict(type="flat"), "needs physical_network"),
    (dict(type="flat", physical_network="nope"), "physical network nope is not on this host"),
    (dict(type="flat", physical_network="physnet1"), "has no bridge for flat networks"),
    (dict(type="vlan", physical_network="external", segmentation_id=3), "no trunk interface"),
    (dict(type="vxlan", segmentation_id=3, physical_network="external"), "vxlan networks have no physical_network"),
    (dict(type="vxlan", segmentation_id=3, mtu=1500), "mtu 1500 must be between 576 and 1450"),
    (dict(type="flat", physical_network="external", vxlan_peers=["10.0.0.1"]), "only for vxlan"),
    (dict(type="ring"), "type must be one of"),
])
def test_bad_networks(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        nw.build_network("n1", SETTINGS, **kwargs)


def test_vxlan_needs_an_endpoint():
    with pytest.raises(ValidationError, match="no VXLAN endpoint"):
        nw.build_network("n1", {"physical_networks": {}}, segmentation_id=3)


def link(name, kind, mtu=1450, up=True, master=None, **info):
    return netdev.Link(name=name, kind=kind, mtu=mtu, up=up, master=master, info=info,
                       bridge_options=info if kind == "bridge" else {})


VX = netdev.LinkSpec(name="nvx-1", kind="vxlan", mtu=1450, master="nb-1", vxlan_id=7, local="10.0.0.1")


@pytest.mark.parametrize("actual, expected", [
    (None, [["ip", "link", "add", "nvx-1", "mtu", "1450", "type", "vxlan", "id", "7", "local", "10.0.0.1",
             "dstport", "4789"], ["ip", "link", "set", "nvx-1", "master", "nb-1"], ["ip", "link", "set", "nvx-1", "up"]]),
    (link("nvx-1", "vxlan", master="nb-1", id=7, local="10.0.0.1", port=4789), []),
    (link("nvx-1", "vxlan", mtu=1500, up=False, master="nb-1", id=7, local="10.0.0.1", port=4789),
     [["ip", "link", "set", "nvx-1", "mtu", "1450"], ["ip", "link", "set", "nvx-1", "up"]]),
    (link("nvx-1", "vxlan", master="nb-1", id=8, local="10.0.0.1", port=4789),
     [["ip", "link", "del", "nvx-1"], ["ip", "link", "add", "nvx-1", "mtu", "1450", "type", "vxlan", "id", "7",
                                       "local", "10.0.0.1", "dstport", "4789"],
      ["ip", "link", "set", "nvx-1", "master", "nb-1"], ["ip", "link", "set", "nvx-1", "up"]]),
])
def test_plan_vxlan_link(actual, expected):
    assert argvs(netdev.plan_link(VX, actual)) == expected


def argvs(steps):
    return [list(s.argv) for s in steps]


def test_plan_vlan_and_bridge_links():
    vlan = netdev.LinkSpec(name="nvl-1", kind="vlan", mtu=1500, master="nb-1", vlan_id=5, parent="trunk0")
    assert list(netdev.plan_link(vlan, None)[0].argv) == [
        "ip", "link", "add", "link", "trunk0", "name", "nvl-1", "type", "vlan", "id", "5"]
    assert netdev.plan_link(vlan, None)[0].link == "nvl-1"
    bridge = netdev.LinkSpec(name="nb-1", kind="bridge", mtu=1450, nf_call_iptables=True)
    assert argvs(netdev.plan_link(bridge, link("nb-1", "bridge", nf_call_iptables=0))) == [
        ["ip", "link", "set", "nb-1", "type", "bridge", "nf_call_iptables", "1"]]
    assert netdev.plan_link(bridge, link("nb-1", "bridge", nf_call_iptables=1)) == []


def test_plan_flood_list():
    assert argvs(netdev.plan_flood("nvx-1", {"10.0.0.2", "10.0.0.3"}, ["10.0.0.3", "10.0.0.4"])) == [
        ["bridge", "fdb", "append", "00:00:00:00:00:00", "dev", "nvx-1", "dst", "10.0.0.4"],
        ["bridge", "fdb", "del", "00:00:00:00:00:00", "dev", "nvx-1", "dst", "10.0.0.2"]]


def test_parse_links():
    text = ('[{"ifname":"nvx-1","mtu":1450,"flags":["BROADCAST","UP"],"master":"nb-1",'
            '"linkinfo":{"info_kind":"vxlan","info_data":{"id":7,"local":"10.0.0.1","port":4789}}},'
            '{"ifname":"eth0","mtu":1500,"flags":[]}]')
    links = netdev.parse_links(text)
    assert links["nvx-1"].kind == "vxlan" and links["nvx-1"].up and links["nvx-1"].info["id"] == 7
    assert links["eth0"].kind == "" and not links["eth0"].up


def test_dnsmasq_config_and_options():
    net = nw.build_network("n1", SETTINGS, segmentation_id=3)
    s1 = ipam_lib.build_subnet("s1", "n1", "10.0.0.0/24", dns_servers=["10.0.0.1"],
                               host_routes=[{"destination": "10.9.0.0/16", "nexthop": "10.0.0.254"}])
    s2 = ipam_lib.build_subnet("s2", "n1", "10.1.0.0/24", gateway=None, enable_dhcp=True)
    s3 = ipam_lib.build_subnet("s3", "n1", "10.2.0.0/24", enable_dhcp=False)
    conf = nw.render_dnsmasq_conf(net, [s1, s2, s3], nw.dhcp_paths("n1", "/x"))
    assert "dhcp-range=set:s-%s,10.0.0.0,static,255.255.255.0,86400s" % s1.id[:8] in conf
    assert "10.2.0.0" not in conf and "dhcp-hostsfile=/x/n1/hosts" in conf and "port=0" in conf
    opts = nw.render_dnsmasq_opts(net, [s1, s2, s3]).splitlines()
    t1, t2 = "tag:s-%s," % s1.id[:8], "tag:s-%s," % s2.id[:8]
    assert t1 + "option:router,10.0.0.1" in opts
    assert t1 + "option:dns-server,10.0.0.1" in opts
    assert t1 + "option:classless-static-route,10.9.0.0/16,10.0.0.254,0.0.0.0/0,10.0.0.1" in opts
    assert t1 + "option:mtu,1450" in opts
    assert t2 + "option:router" in opts
    assert not any("10.2.0" in o for o in opts)
