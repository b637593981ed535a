import json
import os

import pytest

from ansible_collections.nimbus.cloud.plugins.module_utils import _nftables as nft
from ansible_collections.nimbus.cloud.plugins.module_utils._errors import ValidationError

# What nft 1.0.6 lists after the base tables, group "web" (icmp from its own members, member 10.0.0.5) and
# the port abcdef01 bound on tap tapabcdef01234 were applied with this module's scripts.
with open(os.path.join(os.path.dirname(__file__), "data", "nft_bound.json")) as f:
    BOUND = json.load(f)
PF = nft.PortFilter(id="abcdef0123456789", bridge="nb-1", mac="fa:16:3e:00:00:01", tap="tapabcdef01234",
                    ips=["10.0.0.5"], security_groups=["web"])
WEB = nft.build_rules([{"protocol": "icmp", "remote_group": "web"}])


def bound():
    return nft.Ruleset(BOUND["inet"], BOUND["bridge"])


@pytest.mark.parametrize("raw, text", [
    ({"protocol": "tcp", "port_range_min": 80}, "ip protocol 6 tcp dport 80 accept"),
    ({"protocol": "udp", "port_range_min": 1000, "port_range_max": 2000, "remote_ip_prefix": "10.0.0.0/8"},
     "ip saddr 10.0.0.0/8 ip protocol 17 udp dport 1000-2000 accept"),
    ({"protocol": "icmp", "port_range_min": 8, "remote_group": "web"}, "ip saddr @sg-web-members ip protocol 1 icmp type 8 accept"),
    ({"direction": "egress", "protocol": "47", "remote_ip_prefix": "192.0.2.0/24"}, "ip daddr 192.0.2.0/24 ip protocol 47 accept"),
    ({"protocol": "any", "remote_ip_prefix": "0.0.0.0/0"}, "accept"),
])
def test_rules_render_to_nft(raw, text):
    rules = nft.build_rules([raw], allow_all_egress=False)
    assert [r.nft() for r in rules] == [text]


def test_rules_are_a_set_and_egress_is_open_by_default():
    a = nft.build_rules([{"protocol": "tcp", "port_range_min": 22}, {"protocol": "icmp"}, {"protocol": "icmp"}])
    b = nft.build_rules([{"protocol": "icmp"}, {"protocol": "tcp", "port_range_min": 22}])
    assert a == b and len(a) == 3 and nft.Rule(direction="egress") in a
    assert nft.Rule(direction="egress") not in nft.build_rules([], allow_all_egress=False)


@pytest.mark.parametrize("raw, message", [
    ({"direction": "sideways"}, "direction must be ingress or egress"),
    ({"protocol": "gre"}, "protocol must be any, icmp, tcp, udp or a number"),
    ({"protocol": "300"}, "protocol must be"),
    ({"protocol": "any", "port_range_min": 80}, "ports need protocol tcp, udp or icmp"),
    ({"protocol": "tcp", "port_range_min": 70000}, r"out of range \(0-65535\)"),
    ({"protocol": "tcp", "port_range_max": 80}, "port_range_max needs port_range_min"),
    ({"protocol": "tcp", "port_range_min": 90, "port_range_max": 80}, "below port_range_min"),
    ({"remote_ip_prefix": "10.0.0.0/8", "remote_group": "web"}, "not both"),
    ({"remote_ip_prefix": "10.0.0.1/8"}, "host bits set"),
    ({"remote_ip_prefix": "nope"}, "is not a CIDR"),
    ({"remote_group": "bad name"}, "invalid security group name"),
])
def test_bad_rules(raw, message):
    with pytest.raises(ValidationError, match=message):
        nft.build_rules([raw])


def test_members_are_the_filtered_ports_of_the_group():
    ports = [{"security_groups": ["web"], "fixed_ips": [{"ip": "10.0.0.6"}, {"ip": "10.1.0.6"}]},
             {"security_groups": ["web"], "port_security": False, "fixed_ips": [{"ip": "10.0.0.7"}]},
             {"security_groups": ["db"], "fixed_ips": [{"ip": "10.0.0.8"}]}]
    assert nft.group_members("web", ports) == ["10.0.0.6", "10.1.0.6"]


def test_port_filter_rules():
    assert PF.in_rules() == ["udp sport 67 udp dport 68 accept", "jump sg-web-in", "drop"]
    assert PF.out_rules() == ["ip saddr 0.0.0.0 udp sport 68 udp dport 67 accept", "jump sg-web-out", "drop"]
    assert PF.tap_rules()[0] == "ether saddr != fa:16:3e:00:00:01 drop"


def test_reading_the_tables_back_finds_nothing_to_do():
    rs = bound()
    assert nft.base_script(rs) == []
    assert nft.group_lines(rs, "web", WEB, ["10.0.0.5"]) == []
    assert nft.port_lines(rs, PF) == []
    assert rs.jumps_to("sg-web-in") == ["port-abcdef01-in"] and nft.bound_ports(rs) == ["abcdef01"]


def test_an_empty_host_gets_everything_in_order():
    rs = nft.Ruleset()
    base = nft.base_script(rs)
    assert base[0] == "add table inet nimbus" and any("hook forward priority -10" in line for line in base)
    lines = nft.group_lines(rs, "web", WEB, ["10.0.0.5"])
    assert lines[0] == "add set inet nimbus sg-web-members { type ipv4_addr; }"
    assert "add element inet nimbus sg-web-members { 10.0.0.5 }" in lines


def test_changes_touch_only_what_differs():
    rs = bound()
    lines = nft.group_lines(rs, "web", WEB, ["10.0.0.5", "10.0.0.9"])
    assert lines == ["flush set inet nimbus sg-web-members", "add element inet nimbus sg-web-members { 10.0.0.5, 10.0.0.9 }"]
    moved = nft.PortFilter(**dict(vars(PF), mac="fa:16:3e:00:00:02"))
    lines = nft.port_lines(rs, moved)
    assert 'delete element inet nimbus port_egress { "nb-1" . fa:16:3e:00:00:01 }' not in lines
    assert 'add element inet nimbus port_egress { "nb-1" . fa:16:3e:00:00:02 : jump port-abcdef01-out }' in lines
    assert any(line.startswith("flush chain bridge nimbus tap-abcdef01") for line in lines)


def test_unbind_and_delete():
    rs = bound()
    assert nft.unbind_lines(rs, PF.id) == [
        'delete element inet nimbus port_egress { "nb-1" . fa:16:3e:00:00:01 }',
        'delete element inet nimbus port_ingress { "nb-1" . fa:16:3e:00:00:01 }',
        'delete element bridge nimbus taps { "tapabcdef01234" }',
        "delete chain inet nimbus port-abcdef01-in",
        "delete chain inet nimbus port-abcdef01-out",
        "delete chain bridge nimbus tap-abcdef01",
    ]
    assert nft.delete_group_lines(rs, "web") == [
        "delete chain inet nimbus sg-web-in", "delete chain inet nimbus sg-web-out",
        "delete set inet nimbus sg-web-members"]
