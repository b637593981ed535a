from ansible_collections.nimbus.cloud.plugins.module_utils import _router as rt

ROUTER = rt.Router(
    name="r1", id="x", enable_snat=True,
    gateway={"network": "public", "subnet": "pub", "ip": "198.51.100.100", "prefixlen": 24,
             "port_id": "aaaaaaaa-0000", "nexthop": "198.51.100.1"},
    interfaces=[{"network": "b", "subnet": "sb", "ip": "10.1.0.1", "prefixlen": 24, "port_id": "bbbbbbbb", "cidr": "10.1.0.0/24"},
                {"network": "a", "subnet": "sa", "ip": "10.0.0.1", "prefixlen": 24, "port_id": "cccccccc", "cidr": "10.0.0.0/24"}],
)
FIPS = [rt.FloatingIp(name="f2", router="r1", network="public", floating_ip="198.51.100.102", port_id="p2",
                      fixed_ip="10.0.0.7"),
        rt.FloatingIp(name="f1", router="r1", network="public", floating_ip="198.51.100.101", port_id="p1",
                      fixed_ip="10.1.0.5"),
        rt.FloatingIp(name="f3", router="r1", network="public", floating_ip="198.51.100.103")]


def test_nat_replaces_the_table_with_floating_ips_before_snat():
    lines = rt.render_nat(ROUTER, FIPS).splitlines()
    assert lines[:3] == ["table ip nimbus-nat", "delete table ip nimbus-nat", "table ip nimbus-nat {"]
    body = [line.strip() for line in lines]
    assert body.index("ip daddr 198.51.100.101 dnat to 10.1.0.5") < body.index("ip daddr 198.51.100.102 dnat to 10.0.0.7")
    snat = [line for line in body if "snat to" in line]
    assert snat == ['oifname "qg-aaaaaaaa" ip saddr 10.1.0.5 snat to 198.51.100.101',
                    'oifname "qg-aaaaaaaa" ip saddr 10.0.0.7 snat to 198.51.100.102',
                    'oifname "qg-aaaaaaaa" ip saddr { 10.0.0.0/24, 10.1.0.0/24 } snat to 198.51.100.100']
    assert not any("198.51.100.103" in line for line in body)


def test_no_snat_without_gateway_or_when_disabled():
    quiet = rt.Router(**dict(vars(ROUTER), enable_snat=False))
    assert [line for line in rt.render_nat(quiet, []).splitlines() if "snat" in line] == []
    inside = rt.Router(**dict(vars(ROUTER), gateway=None))
    assert "snat" not in rt.render_nat(inside, FIPS) and "dnat" in rt.render_nat(inside, FIPS)


def test_names():
    assert (rt.qr("12345678-9"), rt.nr("12345678-9"), rt.qg("abcdefgh"), rt.ng("abcdefgh")) == (
        "qr-12345678", "nr-12345678", "qg-abcdefgh", "ng-abcdefgh")
    assert rt.router_port_name("r1") == "router-r1" and rt.router_port_name("r1", True) == "router-r1-gw"
    assert ROUTER.view()["external_gateway"] == {"network": "public", "subnet": "pub", "ip": "198.51.100.100"}
