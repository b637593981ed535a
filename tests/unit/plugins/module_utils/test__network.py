import pytest

from ansible_collections.nimbus.cloud.plugins.module_utils import _ipam as ipam_lib
from ansible_collections.nimbus.cloud.plugins.module_utils import _netdev as netdev
from ansible_collections.nimbus.cloud.plugins.module_utils import _network as nw
from ansible_collections.nimbus.cloud.plugins.module_utils._errors import ValidationError
from ansible_collections.nimbus.cloud.plugins.module_utils._files import Records
from ansible_collections.nimbus.cloud.plugins.module_utils._resource import describe

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


def dhcp_setup():
    net = nw.build_network("n1", SETTINGS, segmentation_id=3)
    ipam = ipam_lib.Ipam("n1", [ipam_lib.build_subnet("s1", "n1", "10.0.0.0/24")])
    ipam_lib.keep_dhcp_port(ipam)
    return net, ipam, nw.dhcp_paths("n1", "/x")


def served_state(net, ipam, paths, **changes):
    """The DHCP state a host has once ``plan_dhcp`` ran for ``ipam``, with ``changes`` over it."""
    ns_links = {"lo": netdev.Link("lo", "", 65536, True), "dhcp0": netdev.Link("dhcp0", "veth", net.mtu, True)}
    state = nw.DhcpState(namespace=True, ns_links=ns_links, addresses=["10.0.0.2/24"],
                         veth=netdev.Link(nw.dhcp_veth(net), "veth", net.mtu, True, master=net.bridge), active=True,
                         files={"conf": nw.render_dnsmasq_conf(net, ipam.subnets, paths),
                                "opts": nw.render_dnsmasq_opts(net, ipam.subnets), "leases": ""})
    for key, value in changes.items():
        setattr(state, key, value)
    return state


@pytest.mark.parametrize("changes, hosts_changed, expected", [
    ({}, False, []),
    ({}, True, ["systemctl reload nimbus-dhcp@n1.service"]),
    ({"active": False}, False, ["systemctl restart nimbus-dhcp@n1.service"]),
    ({"addresses": ["10.0.0.9/24"]}, False, ["ip -n nimbus-dhcp-n1 addr add 10.0.0.2/24 dev dhcp0",
                                             "ip -n nimbus-dhcp-n1 addr del 10.0.0.9/24 dev dhcp0"]),
    ({"files": {"conf": "old"}}, False, ["write /x/n1/dnsmasq.conf", "write /x/n1/opts",
                                         "systemctl restart nimbus-dhcp@n1.service"]),
    ({"ns_links": {"lo": netdev.Link("lo", "", 65536, False)}}, False,
     ["ip -n nimbus-dhcp-n1 link set lo up", "ip -n nimbus-dhcp-n1 link set dhcp0 mtu 1450 up"]),
    # The namespace went and took the veth's peer: ours is stale and goes too, then all is made anew.
    ({"namespace": False, "ns_links": {}, "addresses": []}, False, [
        "ip netns add nimbus-dhcp-n1", "ip link del nd-{id8}",
        "ip link add nd-{id8} mtu 1450 type veth peer name dhcp0 netns nimbus-dhcp-n1",
        "ip link set nd-{id8} master nb-{id8}", "ip link set nd-{id8} up", "ip -n nimbus-dhcp-n1 link set lo up",
        "ip -n nimbus-dhcp-n1 link set dhcp0 mtu 1450 up", "ip -n nimbus-dhcp-n1 addr add 10.0.0.2/24 dev dhcp0",
        "systemctl restart nimbus-dhcp@n1.service"]),
])
def test_plan_dhcp_repairs_only_what_drifted(changes, hosts_changed, expected):
    net, ipam, paths = dhcp_setup()
    state = served_state(net, ipam, paths, **changes)
    steps = nw.plan_dhcp(net, ipam, state, paths, hosts_changed=hosts_changed)
    assert describe(steps) == [e.format(id8=net.id[:8]) for e in expected]


def test_plan_dhcp_stops_when_no_subnet_serves_dhcp():
    net, ipam, paths = dhcp_setup()
    state = served_state(net, ipam, paths)
    ipam.put_subnet(ipam_lib.build_subnet("s1", "n1", "10.0.0.0/24", enable_dhcp=False))
    ipam_lib.keep_dhcp_port(ipam)
    assert describe(nw.plan_dhcp(net, ipam, state, paths)) == [
        "systemctl stop nimbus-dhcp@n1.service", "ip link del nd-%s" % net.id[:8], "ip netns del nimbus-dhcp-n1",
        "remove /x/n1/dnsmasq.conf", "remove /x/n1/opts", "remove /x/n1/leases"]
    assert nw.plan_dhcp(net, ipam, nw.DhcpState(), paths) == []


def test_plan_network_keeps_the_snapshot_and_sees_a_remade_vxlan_link():
    old = nw.build_network("n1", SETTINGS, segmentation_id=3, vxlan_peers=["10.89.0.3"])
    new = nw.build_network("n1", SETTINGS, segmentation_id=3, vxlan_peers=["10.89.0.3"], local_ip="10.89.0.9")
    links = {old.bridge: netdev.Link(old.bridge, "bridge", 1450, True, bridge_options={"nf_call_iptables": 1}),
             old.member: netdev.Link(old.member, "vxlan", 1450, True, master=old.bridge,
                                     info={"id": 3, "local": "10.89.0.2", "port": 4789})}
    snap = nw.NetworkSnapshot(record=old, links=links, flood={"10.89.0.3"})
    records = Records("/r", kind=nw.Network)
    plan = nw.plan_network(new, snap, SETTINGS, records)
    # The new VXLAN link starts with an empty flood list: the peer is added again.
    assert describe(plan.steps)[-2:] == ["bridge fdb append 00:00:00:00:00:00 dev %s dst 10.89.0.3" % old.member,
                                         "write /r/n1.json"]
    assert describe(plan.steps)[0] == "ip link del %s" % old.member
    assert plan.before["local_ip"] == "10.89.0.2" and plan.after["local_ip"] == "10.89.0.9"
    assert snap.flood == {"10.89.0.3"} and snap.record.local_ip == "10.89.0.2"
    assert nw.plan_network(old, snap, SETTINGS, records).steps == []


def test_attributes_round_trip_through_build_network():
    net = nw.build_network("n1", SETTINGS, segmentation_id=3, vxlan_peers=["10.89.0.3"], project="p", shared=True)
    assert nw.build_network("n1", SETTINGS, **net.attributes()) == net
