import pytest

from ansible_collections.nimbus.cloud.plugins.module_utils import _netdev as netdev
from ansible_collections.nimbus.cloud.plugins.module_utils import _nftables as nft
from ansible_collections.nimbus.cloud.plugins.module_utils import _router as rt
from ansible_collections.nimbus.cloud.plugins.module_utils._errors import ValidationError
from ansible_collections.nimbus.cloud.plugins.module_utils._network import Network
from ansible_collections.nimbus.cloud.plugins.module_utils._resource import describe

ROUTER = rt.Router(
    name="r1", id="x", enable_snat=True,
    gateway={"network": "public", "subnet": "pub", "ip": "198.51.100.100", "prefixlen": 24,
             "port_id": "aaaaaaaa-0000", "nexthop": "198.51.100.1"},
    interfaces=[{"network": "a", "subnet": "sa", "ip": "10.0.0.1", "prefixlen": 24, "port_id": "cccccccc",
                 "cidr": "10.0.0.0/24"},
                {"network": "b", "subnet": "sb", "ip": "10.1.0.1", "prefixlen": 24, "port_id": "bbbbbbbb",
                 "cidr": "10.1.0.0/24"}],
)
FIPS = [rt.FloatingIp(name="f2", router="r1", network="public", floating_ip="198.51.100.102", port_id="p2",
                      fixed_ip="10.0.0.7"),
        rt.FloatingIp(name="f1", router="r1", network="public", floating_ip="198.51.100.101", port_id="p1",
                      fixed_ip="10.1.0.5"),
        rt.FloatingIp(name="f3", router="r1", network="public", floating_ip="198.51.100.103")]
NETWORKS = {name: Network(name=name, type="flat", id=name, bridge="br-" + name, mtu=1500)
            for name in ("a", "b", "public")}


def converged(router, fips):
    """The snapshot of a namespace that holds exactly what the records say."""
    ns_links = {"lo": netdev.Link("lo", "", 65536, True)}
    host_links, addresses = {}, {}
    legs = [(leg, rt.qr(leg["port_id"]), rt.nr(leg["port_id"])) for leg in router.interfaces]
    legs.append((router.gateway, rt.qg(router.gateway["port_id"]), rt.ng(router.gateway["port_id"])))
    for leg, inside, outside in legs:
        ns_links[inside] = netdev.Link(inside, "veth", 1500, True)
        host_links[outside] = netdev.Link(outside, "veth", 1500, True, master="br-" + leg["network"])
        addresses[inside] = ["%s/%d" % (leg["ip"], leg["prefixlen"])]
    addresses[rt.qg(router.gateway["port_id"])] += ["%s/32" % f.floating_ip for f in fips]
    rules = rt.nat_rules(router, fips)
    doc = {"nftables": [{"rule": {"chain": chain, "comment": nft.digest(r)}} for chain in rules for r in rules[chain]]}
    return rt.Kernel(namespace=True, forwarding=True, links=ns_links, addresses=addresses,
                     default_route=[router.gateway["nexthop"]], host_links=host_links,
                     nat=nft.Table("ip", rt.NAT_TABLE, doc))


def test_nat_floating_ips_first_in_address_order_then_snat_of_the_subnets():
    rules = rt.nat_rules(ROUTER, FIPS)
    assert rules["prerouting"] == ["ip daddr 198.51.100.101 dnat to 10.1.0.5",
                                   "ip daddr 198.51.100.102 dnat to 10.0.0.7"]
    out = 'oifname "qg-aaaaaaaa" ip saddr '
    assert rules["postrouting"] == [out + "10.1.0.5 snat to 198.51.100.101", out + "10.0.0.7 snat to 198.51.100.102",
                                    out + "{ 10.0.0.0/24, 10.1.0.0/24 } snat to 198.51.100.100"]


def test_no_snat_without_gateway_or_when_disabled():
    quiet = rt.Router(**dict(vars(ROUTER), enable_snat=False))
    assert [r for r in rt.nat_rules(quiet, [])["postrouting"] if "snat" in r] == []
    inside = rt.Router(**dict(vars(ROUTER), gateway=None))
    assert rt.nat_rules(inside, FIPS)["postrouting"] == []


def test_a_converged_namespace_plans_nothing():
    assert rt.plan_kernel(ROUTER, FIPS, converged(ROUTER, FIPS), NETWORKS) == []


def test_a_rule_whose_digest_differs_rewrites_only_its_chain():
    kernel = converged(ROUTER, FIPS)
    kernel.nat.chains["prerouting"][0] = nft.digest("ip daddr 198.51.100.101 dnat to 10.9.9.9")
    steps = rt.plan_kernel(ROUTER, FIPS, kernel, NETWORKS)
    assert describe(steps) == ["ip netns exec nimbus-router-r1 nft -f -"]
    assert "prerouting" in steps[0].data and "postrouting" not in steps[0].data


def test_an_unbound_floating_ip_adds_only_its_address():
    kernel = converged(ROUTER, FIPS[:2])
    steps = describe(rt.plan_kernel(ROUTER, FIPS, kernel, NETWORKS))
    assert steps == ["ip -n nimbus-router-r1 addr add 198.51.100.103/32 dev qg-aaaaaaaa",
                     "ip netns exec nimbus-router-r1 arping -q -U -c 1 -w 1 -I qg-aaaaaaaa 198.51.100.103"]


def test_addresses_are_compared_as_addresses():
    kernel = converged(ROUTER, FIPS)
    kernel.addresses["qr-cccccccc"] = ["10.0.0.1/24", "10.0.0.99/24"]
    assert describe(rt.plan_kernel(ROUTER, FIPS, kernel, NETWORKS)) == [
        "ip -n nimbus-router-r1 addr del 10.0.0.99/24 dev qr-cccccccc"]


def test_a_wrong_mtu_and_a_foreign_link_are_repaired():
    kernel = converged(ROUTER, FIPS)
    kernel.host_links["nr-bbbbbbbb"].mtu = 1400
    kernel.links["qr-dddddddd"] = netdev.Link("qr-dddddddd", "veth", 1500, True)
    assert describe(rt.plan_kernel(ROUTER, FIPS, kernel, NETWORKS)) == [
        "ip link set nr-bbbbbbbb mtu 1500", "ip -n nimbus-router-r1 link del qr-dddddddd"]


def test_router_task_normalises_and_refuses():
    task = rt.router_task({"interfaces": [{"network": "b", "subnet": "sb"}, {"network": "a", "subnet": "sa"}],
                           "external_fixed_ip": " 198.51.100.7", "enable_snat": None})
    assert task == {"interfaces": [{"network": "a", "subnet": "sa"}, {"network": "b", "subnet": "sb"}],
                    "external_fixed_ip": "198.51.100.7"}
    with pytest.raises(ValidationError, match="IPv6"):
        rt.router_task({"external_fixed_ip": "2001:db8::1"})


@pytest.mark.parametrize("task, expected", [
    ({}, {"external_network": "public", "external_fixed_ip": "198.51.100.100", "enable_snat": True}),
    ({"enable_snat": False}, {"external_network": "public", "external_fixed_ip": "198.51.100.100",
                              "enable_snat": False}),
    ({"external_network": "public2"}, {"external_network": "public2", "external_fixed_ip": None, "enable_snat": True}),
    ({"external_network": ""}, {"external_network": "", "external_fixed_ip": None, "enable_snat": True}),
])
def test_desired_router_keeps_what_the_task_leaves_out(task, expected):
    attrs = rt.desired_router("r1", ROUTER, task)
    assert {k: attrs[k] for k in expected} == expected
    assert attrs["interfaces"] == [{"network": "a", "subnet": "sa"}, {"network": "b", "subnet": "sb"}]


def test_a_new_router_takes_the_defaults():
    assert rt.desired_router("r1", None, {}) == rt.ROUTER_DEFAULTS


def test_floating_ip_task():
    port = {"id": "p1", "network": "a", "fixed_ips": [{"ip": "10.0.0.7"}, {"ip": "10.0.0.8"}]}
    current = FIPS[0]
    assert rt.floating_ip_task({"port": port}, None, ROUTER) == {"port_id": "p1", "fixed_ip": "10.0.0.7"}
    kept = rt.FloatingIp(**dict(vars(current), port_id="p1", fixed_ip="10.0.0.8"))
    assert rt.floating_ip_task({"port": port}, kept, ROUTER)["fixed_ip"] == "10.0.0.8"
    assert rt.floating_ip_task({"port": {}}, current, ROUTER) == {"port_id": None, "fixed_ip": None}
    assert rt.floating_ip_task({"project": "p"}, current, ROUTER) == {"project": "p"}
    with pytest.raises(ValidationError, match="which router r1 does not join"):
        rt.floating_ip_task({"port": dict(port, network="z")}, None, ROUTER)


def test_names():
    assert (rt.qr("12345678-9"), rt.nr("12345678-9"), rt.qg("abcdefgh"), rt.ng("abcdefgh")) == (
        "qr-12345678", "nr-12345678", "qg-abcdefgh", "ng-abcdefgh")
    assert rt.router_port_name("r1") == "router-r1" and rt.router_port_name("r1", True) == "router-r1-gw"
    assert ROUTER.view()["external_gateway"] == {"network": "public", "subnet": "pub", "ip": "198.51.100.100"}
