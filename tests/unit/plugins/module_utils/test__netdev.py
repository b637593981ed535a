import json

import pytest

from ansible_collections.nimbus.cloud.plugins.module_utils import _netdev as netdev
from ansible_collections.nimbus.cloud.plugins.module_utils._errors import CommandError
from ansible_collections.nimbus.cloud.plugins.module_utils._runner import CommandRunner


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


def test_veth_argv_puts_the_peer_in_its_namespace():
    spec = netdev.LinkSpec(name="nd-1", kind="veth", mtu=1450, master="nb-1", peer="dhcp0", peer_netns="ns1")
    assert argvs(netdev.plan_link(spec, None)) == [
        ["ip", "link", "add", "nd-1", "mtu", "1450", "type", "veth", "peer", "name", "dhcp0", "netns", "ns1"],
        ["ip", "link", "set", "nd-1", "master", "nb-1"], ["ip", "link", "set", "nd-1", "up"]]
    assert netdev.plan_link(spec, None)[0].link == "nd-1"
    assert argvs(netdev.plan_link(spec, link("nd-1", "veth", master="nb-1"))) == []
    assert argvs(netdev.plan_link(spec, link("nd-1", "veth", up=False))) == [
        ["ip", "link", "set", "nd-1", "master", "nb-1"], ["ip", "link", "set", "nd-1", "up"]]


class Module:
    """Just enough of an AnsibleModule for a CommandRunner: answers from a table, records what ran."""

    def __init__(self, table, check_mode=False):
        self.table = table
        self.check_mode = check_mode
        self.ran = []

    def get_bin_path(self, name, required=False, opt_dirs=None):
        return name

    def run_command(self, argv, **kwargs):
        self.ran.append(" ".join(argv))
        return self.table.get(" ".join(argv), (0, "", ""))


def test_read_namespaces_and_addresses():
    module = Module({
        "ip -j netns list": (0, '[{"name": "nimbus-dhcp-n1", "id": 0}, {"name": "other"}]', ""),
        "ip -n ns1 -j -4 addr show dev dhcp0": (0, json.dumps([{"addr_info": [
            {"family": "inet", "local": "10.0.0.2", "prefixlen": 24},
            {"family": "inet6", "local": "fe80::1", "prefixlen": 64}]}]), ""),
        "ip -n ns1 -j -4 addr show dev gone": (1, "", "Device does not exist"),
    })
    runner = CommandRunner(module)
    assert netdev.read_namespaces(runner) == {"nimbus-dhcp-n1", "other"}
    assert netdev.read_addresses(runner, "dhcp0", netns="ns1") == ["10.0.0.2/24"]
    assert netdev.read_addresses(runner, "gone", netns="ns1") == []
    assert netdev.read_namespaces(CommandRunner(Module({"ip -j netns list": (0, "", "")}))) == set()


def test_a_missing_link_type_is_named_and_the_added_links_go_again():
    spec = netdev.LinkSpec(name="nvl-1", kind="vlan", mtu=1500, master="nb-1", vlan_id=5, parent="trunk0")
    steps = netdev.plan_link(netdev.LinkSpec(name="nb-1", kind="bridge", mtu=1500), None) + netdev.plan_link(spec, None)
    module = Module({
        "ip link add link trunk0 name nvl-1 type vlan id 5": (2, "", "Error: Unknown device type."),
        "ip -j -d link show": (0, '[{"ifname": "nb-1", "mtu": 1500, "flags": []}]', ""),
    })
    with pytest.raises(netdev.KernelFeatureError, match="CONFIG_VLAN_8021Q"):
        netdev.run_steps(CommandRunner(module), steps)
    assert module.ran == ["ip link add nb-1 mtu 1500 type bridge", "ip link set nb-1 up",
                          "ip link add link trunk0 name nvl-1 type vlan id 5", "ip -j -d link show", "ip link del nb-1"]


def test_other_failures_are_raised_as_they_are_after_the_same_undo():
    steps = netdev.plan_link(netdev.LinkSpec(name="nb-1", kind="bridge", mtu=1500), None)
    module = Module({"ip link set nb-1 up": (2, "", "RTNETLINK answers: Operation not permitted"),
                     "ip -j -d link show": (0, '[{"ifname": "nb-1", "mtu": 1500, "flags": []}]', "")})
    with pytest.raises(CommandError, match="Operation not permitted"):
        netdev.run_steps(CommandRunner(module), steps)
    assert module.ran[-1] == "ip link del nb-1"


def test_in_check_mode_run_steps_runs_nothing_and_reports_each_step():
    module = Module({}, check_mode=True)
    runner = CommandRunner(module)
    netdev.run_steps(runner, netdev.plan_link(netdev.LinkSpec(name="nb-1", kind="bridge", mtu=1500), None))
    assert module.ran == [] and runner.planned == ["ip link add nb-1 mtu 1500 type bridge", "ip link set nb-1 up"]


@pytest.mark.parametrize("name", ["", "x" * 16, "a/b", "a b"])
def test_bad_interface_names(name):
    with pytest.raises(Exception, match="not a usable interface name"):
        netdev.check_ifname(name, "bridge")
