import json

import pytest

from ansible_collections.nimbus.cloud.plugins.module_utils import _nftables as nft
from ansible_collections.nimbus.cloud.plugins.module_utils._errors import ValidationError
from ansible_collections.nimbus.cloud.plugins.module_utils._runner import CommandResult
from ansible_collections.nimbus.cloud.tests.unit.plugins.module_utils import nft_doc

# nft_bound.json is what nft 1.0.6 lists after the base tables, group "web" (icmp from its own members, member
# 10.0.0.5) and the port abcdef01 bound on tap tapabcdef01234 were applied; nft_hand_edited.json is the same after
# `nft replace rule inet nimbus sg-web-in handle 13 tcp dport 22 accept`.
PF = nft.PortFilter(id="abcdef0123456789", bridge="nb-1", mac="fa:16:3e:00:00:01", tap="tapabcdef01234",
                    ips=["10.0.0.5"], security_groups=["web"])
WEB = nft.build_rules([{"protocol": "icmp", "remote_group": "web"}])


@pytest.mark.parametrize("raw, text", [
    ({"protocol": "tcp", "port_range_min": 80}, "ip protocol 6 tcp dport 80 accept"),
    ({"protocol": "udp", "port_range_min": 1000, "port_range_max": 2000, "remote_ip_prefix": "10.0.0.0/8"},
     "ip saddr 10.0.0.0/8 ip protocol 17 udp dport 1000-2000 accept"),
    ({"protocol": "icmp", "port_range_min": 8, "remote_group": "web"},
     "ip saddr @sg-web-members ip protocol 1 icmp type 8 accept"),
    ({"protocol": "icmp", "port_range_min": 3, "port_range_max": 4}, "ip protocol 1 icmp type 3 icmp code 4 accept"),
    ({"direction": "egress", "protocol": "47", "remote_ip_prefix": "192.0.2.0/24"},
     "ip daddr 192.0.2.0/24 ip protocol 47 accept"),
    ({"protocol": "any", "remote_ip_prefix": "0.0.0.0/0"}, "accept"),
])
def test_rules_render_to_nft(raw, text):
    rules = nft.build_rules([raw], allow_all_egress=False)
    assert [r.nft() for r in rules] == [text]


def test_rules_are_a_set_and_egress_is_open_by_default():
    a = nft.build_rules([{"protocol": "tcp", "port_range_min": 22}, {"protocol": "icmp"}, {"protocol": "icmp"}])
    b = nft.build_rules([{"protocol": "icmp"}, {"protocol": "tcp", "port_range_min": 22}])
    assert a == b and len(a) == 3 and nft.IMPLIED_EGRESS in a
    assert nft.IMPLIED_EGRESS not in nft.build_rules([], allow_all_egress=False)


@pytest.mark.parametrize("raw, message", [
    ({"direction": "sideways"}, "direction must be ingress or egress"),
    ({"protocol": "gre"}, "protocol must be any, icmp, tcp, udp or a number"),
    ({"protocol": "300"}, "protocol must be"),
    ({"protocol": "any", "port_range_min": 80}, "ports need protocol tcp, udp or icmp"),
    ({"protocol": "tcp", "port_range_min": 70000}, r"out of range \(0-65535\)"),
    ({"protocol": "icmp", "port_range_min": 256}, r"out of range \(0-255\)"),
    ({"protocol": "tcp", "port_range_max": 80}, "port_range_max needs port_range_min"),
    ({"protocol": "tcp", "port_range_min": 90, "port_range_max": 80}, "below port_range_min"),
    ({"remote_ip_prefix": "10.0.0.0/8", "remote_group": "web"}, "not both"),
    ({"remote_ip_prefix": "10.0.0.1/8"}, "host bits set; did you mean 10.0.0.0/8"),
    ({"remote_ip_prefix": "2001:db8::/32"}, "only IPv4 prefixes"),
    ({"remote_ip_prefix": "nope"}, "is not a CIDR"),
    ({"remote_group": "bad name"}, "invalid security group name"),
])
def test_bad_rules(raw, message):
    with pytest.raises(ValidationError, match=message):
        nft.build_rules([raw])


def test_members_are_the_ipv4_addresses_of_the_filtered_ports_of_the_group():
    ports = [{"security_groups": ["web"], "fixed_ips": [{"ip": "10.0.0.6"}, {"ip": "10.1.0.6"}, {"ip": "fd00::6"}]},
             {"security_groups": ["web"], "port_security": False, "fixed_ips": [{"ip": "10.0.0.7"}]},
             {"security_groups": ["db"], "fixed_ips": [{"ip": "10.0.0.8"}]},
             {"security_groups": ["web"], "fixed_ips": [{"subnet": "pending"}]}]
    assert nft.group_members("web", ports) == ["10.0.0.6", "10.1.0.6"]


def test_port_filter_rules():
    assert PF.in_rules() == ["udp sport 67 udp dport 68 accept", "jump sg-web-in", "drop"]
    assert PF.out_rules() == ["ip saddr 0.0.0.0 udp sport 68 udp dport 67 accept", "jump sg-web-out", "drop"]
    assert PF.tap_rules() == ["ether saddr != fa:16:3e:00:00:01 drop",
                              "arp saddr ip != { 10.0.0.5 } arp saddr ip != 0.0.0.0 drop",
                              "ip saddr != { 10.0.0.5 } ip saddr != 0.0.0.0 drop"]
    bare = nft.PortFilter(**dict(vars(PF), ips=[]))
    assert bare.tap_rules()[1:] == ["ether type ip drop"]


def test_what_nft_lists_back_needs_nothing():
    tables = nft_doc.tables("bound")
    assert nft.base_lines(tables) == []
    assert nft.group_lines(tables, "web", WEB, ["10.0.0.5"]) == []
    assert nft.port_lines(tables, PF) == []
    assert nft.group_users(tables, "web") == ["abcdef01"] and nft.bound_ports(tables) == ["abcdef01"]
    assert nft.group_users(tables, "db") == [] and nft.group_defined(tables, "web")


def test_a_rule_replaced_by_hand_makes_only_its_chain_differ():
    tables = nft_doc.tables("hand_edited")
    assert tables.inet.chains["sg-web-in"] == [None]
    assert nft.base_lines(tables) == [] and nft.port_lines(tables, PF) == []
    assert nft.group_lines(tables, "web", WEB, ["10.0.0.5"]) == [
        "add table inet nimbus", "add chain inet nimbus sg-web-in", "flush chain inet nimbus sg-web-in",
        'add rule inet nimbus sg-web-in ip saddr @sg-web-members ip protocol 1 accept comment "0a138f0d58573409"']


def test_steps_are_one_transaction_then_the_save(monkeypatch):
    monkeypatch.setattr(nft, "SAVE_FILE", "/boot/file.nft")
    assert nft.steps([]) == []
    steps = nft.steps(["add table inet nimbus", "add chain inet nimbus a", "add table inet nimbus",
                       "add chain inet nimbus b"])
    assert [s.describe() for s in steps] == ["nft -f -", "save the nimbus nftables to /boot/file.nft"]
    assert steps[0].data == "add table inet nimbus\nadd chain inet nimbus a\nadd chain inet nimbus b\n"


class Runner:
    """Reads answered from a table; apply() runs the change (as the runner does outside check mode)."""

    def __init__(self, answers):
        self.answers = answers
        self.reads = []

    def read(self, argv, check_rc=True):
        self.reads.append(argv)
        rc, out = self.answers.get(tuple(argv), (1, ""))
        return CommandResult(argv, rc, out, "")

    def apply(self, description, func, *args):
        return func(*args)


def test_save_writes_both_tables_owner_only_and_removes_the_file_when_none_is_left(tmp_path):
    path = tmp_path / "nftables.nft"
    runner = Runner({("nft", "list", "table", "inet", "nimbus"): (0, "table inet nimbus {\n}\n"),
                     ("nft", "list", "table", "bridge", "nimbus"): (0, "table bridge nimbus {\n}\n")})
    nft.SaveTables(str(path)).apply(runner)
    assert path.read_text() == ("table inet nimbus\ndelete table inet nimbus\ntable inet nimbus {\n}\n"
                                "table bridge nimbus\ndelete table bridge nimbus\ntable bridge nimbus {\n}\n")
    assert path.stat().st_mode & 0o777 == 0o600
    nft.SaveTables(str(path)).apply(Runner({}))
    assert not path.exists()


def test_read_table_in_a_namespace_and_an_absent_table():
    doc = nft_doc.listing("ip", nft_doc.state("ip", {"chains": {"postrouting": ["masquerade"]}}))
    runner = Runner({("ip", "netns", "exec", "qr-1", "nft", "-j", "list", "table", "ip", "nat"): (0, json.dumps(doc))})
    table = nft.read_table(runner, "ip", "nat", netns="qr-1")
    assert table.present and table.chain_is("postrouting", ["masquerade"])
    assert not nft.read_table(runner, "ip", "nat").present
    assert nft.transaction([], netns="qr-1") == []
    assert nft.transaction(["flush ruleset"], netns="qr-1")[0].describe() == "ip netns exec qr-1 nft -f -"


def test_map_elements_and_sets_are_compared_as_data():
    table = nft_doc.tables("bound").inet
    pair = ("nb-1", "fa:16:3e:00:00:01")
    assert table.element_lines("port_egress", pair, "jump port-abcdef01-out") == []
    assert table.element_lines("port_egress", pair, "jump port-00000000-out") == [
        'delete element inet nimbus port_egress { "nb-1" . fa:16:3e:00:00:01 }',
        'add element inet nimbus port_egress { "nb-1" . fa:16:3e:00:00:01 : jump port-00000000-out }']
    assert table.elements_to({"jump port-abcdef01-in"}) == [
        'delete element inet nimbus port_ingress { "nb-1" . fa:16:3e:00:00:01 }']
    assert table.elements_to({"jump port-abcdef01-in"}, keep=[("port_ingress", pair)]) == []
    assert table.set_lines("sg-web-members", "type ipv4_addr;", ["10.0.0.5"]) == []
    assert table.set_lines("sg-web-members", "type ipv4_addr;", []) == ["flush set inet nimbus sg-web-members"]
    assert table.map_lines("port_egress", "type ifname . ether_addr : verdict;") == []


def test_an_interface_name_with_a_dot_keeps_its_key():
    table = nft_doc.tables({"inet": {"base": True, "chains": {"port-abcdef01-out": []},
                                     "maps": {"port_egress": {"br0.100 . fa:16:3e:00:00:01": "jump port-abcdef01-out"}}}})
    assert table.inet.maps["port_egress"] == {"br0.100.fa:16:3e:00:00:01": "jump port-abcdef01-out"}
    assert nft.unbind_lines(table, PF.id) == [
        'delete element inet nimbus port_egress { "br0.100" . fa:16:3e:00:00:01 }',
        "delete chain inet nimbus port-abcdef01-out"]
