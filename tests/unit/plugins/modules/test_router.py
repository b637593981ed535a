"""router: table-driven cases run against a simulated network node.

Each case builds its current state by running setup tasks for real (and
drift commands, as an operator would by hand), then runs its task in check
mode, for real, and again in both modes: check mode must change nothing (no
command, file, directory or lock) and report the steps the real run makes; the
repeat must change nothing.
"""

import copy
import ipaddress
import json
import os
import re

import pytest
from ansible.module_utils import basic

from ansible_collections.nimbus.cloud.plugins.module_utils import _ipam as ipam_lib
from ansible_collections.nimbus.cloud.plugins.module_utils import _network as nw
from ansible_collections.nimbus.cloud.plugins.module_utils import _router as rt
from ansible_collections.nimbus.cloud.plugins.module_utils._files import Records
from ansible_collections.nimbus.cloud.plugins.module_utils._runner import CommandRunner
from ansible_collections.nimbus.cloud.plugins.modules.floating_ip import FloatingIpModule
from ansible_collections.nimbus.cloud.plugins.modules.router import RouterModule
from ansible_collections.nimbus.cloud.tests.unit.plugins import cases

MODULES = {"router": RouterModule, "floating_ip": FloatingIpModule}
NETWORKS = {
    "demo-net": dict(type="vxlan", bridge="nb-demo", mtu=1450, external=False,
                     subnets=[dict(name="demo-subnet", cidr="10.20.0.0/24")]),
    "other-net": dict(type="vxlan", bridge="nb-other", mtu=1450, external=False,
                      subnets=[dict(name="other-subnet", cidr="10.30.0.0/24")]),
    "public": dict(type="flat", bridge="br-ex", mtu=1500, external=True,
                   subnets=[dict(name="public-subnet", cidr="198.51.100.0/24",
                                 pools=[{"start": "198.51.100.100", "end": "198.51.100.200"}])]),
    "public2": dict(type="flat", bridge="br-ex2", mtu=1500, external=True,
                    subnets=[dict(name="public2-subnet", cidr="203.0.113.0/24",
                                  pools=[{"start": "203.0.113.10", "end": "203.0.113.20"}])]),
}


class CommandFailed(Exception):
    """What the kernel refuses: the command fails with this message."""


NAT_RULE = re.compile(r'^add rule ip nimbus-nat (\S+) (.*) comment "(\w+)"$')


class Node:
    """A network node as iproute2 and nft show it, changed by the commands the modules run."""

    def __init__(self):
        self.namespaces = {}
        self.links = {}
        self.changes = []
        self.scripts = []

    def state(self):
        return copy.deepcopy((self.namespaces, self.links))

    # iproute2 JSON

    @staticmethod
    def _link_json(name, link):
        item = {"ifname": name, "mtu": link["mtu"], "flags": ["UP"] if link["up"] else [],
                "linkinfo": {"info_kind": link["kind"]} if link["kind"] else {}}
        if link.get("master"):
            item["master"] = link["master"]
        return item

    @staticmethod
    def is_read(argv):
        return "-j" in argv or argv[4:6] == ["sysctl", "-n"]

    def read(self, argv, data):
        """The output of a read, or None when it fails (a namespace or table that is not there)."""
        ns = argv[2] if argv[1] == "-n" else argv[3] if argv[1:3] == ["netns", "exec"] else None
        if ns is not None and ns not in self.namespaces:
            return None
        if argv == ["ip", "-j", "netns", "list"]:
            return json.dumps([{"name": n} for n in sorted(self.namespaces)])
        if argv == ["ip", "-j", "-d", "link", "show"]:
            return json.dumps([self._link_json(n, v) for n, v in sorted(self.links.items())])
        if ns and argv[3:] == ["-j", "-d", "link", "show"]:
            return json.dumps([self._link_json(n, v) for n, v in sorted(self.namespaces[ns]["links"].items())])
        if ns and argv[3:8] == ["-j", "-4", "addr", "show", "dev"]:
            addrs = self.namespaces[ns]["addrs"].get(argv[8], [])
            return json.dumps([{"addr_info": [{"family": "inet", "local": a.split("/")[0],
                                               "prefixlen": int(a.split("/")[1])} for a in addrs]}])
        if ns and argv[3:] == ["-j", "-4", "route", "show", "default"]:
            return json.dumps([{"dst": "default", "gateway": g} for g in self.namespaces[ns]["route"]])
        if argv[:3] == ["ip", "netns", "exec"]:
            space = self.namespaces[argv[3]]
            if argv[4:] == ["sysctl", "-n", "net.ipv4.ip_forward"]:
                return space["forwarding"] + "\n"
            if argv[4:] == ["nft", "-j", "list", "table", "ip", "nimbus-nat"]:
                if space["nat"] is None:
                    return None
                items = [{"metainfo": {"json_schema_version": 1}}, {"table": {"family": "ip", "name": "nimbus-nat"}}]
                for chain, rules in space["nat"].items():
                    items.append({"chain": {"family": "ip", "table": "nimbus-nat", "name": chain}})
                    items += [{"rule": dict({"chain": chain, "expr": [{"text": text}]},
                                            **({"comment": comment} if comment else {}))}
                              for text, comment in rules]
                return json.dumps({"nftables": items})
        raise AssertionError("unexpected read: %r" % argv)

    def change(self, argv, data):
        self.changes.append(" ".join(argv))
        if argv[:3] == ["ip", "netns", "add"]:
            self.namespaces[argv[3]] = {"forwarding": "0", "links": {"lo": {"kind": "", "mtu": 65536, "up": False}},
                                        "addrs": {}, "route": [], "nat": None}
        elif argv[:3] == ["ip", "netns", "del"]:
            del self.namespaces[argv[3]]
            self.links = {n: v for n, v in self.links.items() if v.get("peer", (None,))[0] != argv[3]}
        elif argv[:3] == ["ip", "netns", "exec"]:
            space = self.namespaces[argv[3]]
            if argv[4:] == ["sysctl", "-qw", "net.ipv4.ip_forward=1"]:
                space["forwarding"] = "1"
            elif argv[4:] == ["nft", "-f", "-"]:
                self.scripts.append(data)
                self._nft(space, data)
            elif argv[4] != "arping":
                raise KeyError(argv)
        elif argv[:3] == ["ip", "link", "add"]:
            name, mtu, peer, peer_ns = argv[3], int(argv[5]), argv[10], argv[12]
            assert argv[6:10] == ["type", "veth", "peer", "name"] and argv[11] == "netns", argv
            self.links[name] = {"kind": "veth", "mtu": mtu, "up": False, "peer": (peer_ns, peer)}
            self.namespaces[peer_ns]["links"][peer] = {"kind": "veth", "mtu": 1500, "up": False}
        elif argv[:3] == ["ip", "link", "set"]:
            self._set(self.links[argv[3]], argv[4:])
        elif argv[:3] == ["ip", "link", "del"]:
            peer_ns, peer = self.links.pop(argv[3])["peer"]
            if peer_ns in self.namespaces:
                self._drop_link(self.namespaces[peer_ns], peer)
        elif argv[1] == "-n":
            space, rest = self.namespaces[argv[2]], argv[3:]
            if rest[:2] == ["link", "set"]:
                self._set(space["links"][rest[2]], rest[3:])
            elif rest[:2] == ["link", "del"]:
                self._drop_link(space, rest[2])
                self.links = {n: v for n, v in self.links.items() if v.get("peer") != (argv[2], rest[2])}
            elif rest[:2] == ["addr", "add"]:
                space["addrs"].setdefault(rest[4], []).append(rest[2])
            elif rest[:2] == ["addr", "del"]:
                space["addrs"][rest[4]].remove(rest[2])
            elif rest[:3] == ["route", "replace", "default"]:
                space["route"] = [rest[4]]
            elif rest[:3] == ["route", "del", "default"]:
                if not space["route"]:
                    raise CommandFailed("RTNETLINK answers: No such process")
                space["route"] = []
            else:
                raise KeyError(argv)
        else:
            raise KeyError(argv)

    @staticmethod
    def _drop_link(space, name):
        """The kernel's way: a link's addresses, and the routes through them, go with it."""
        space["links"].pop(name, None)
        networks = [ipaddress.ip_interface(a).network for a in space["addrs"].pop(name, [])]
        space["route"] = [g for g in space["route"] if not any(ipaddress.ip_address(g) in n for n in networks)]

    @staticmethod
    def _set(link, args):
        args = list(args)
        while args:
            word = args.pop(0)
            if word == "up":
                link["up"] = True
            elif word == "mtu":
                link["mtu"] = int(args.pop(0))
            elif word == "master":
                link["master"] = args.pop(0)
            else:
                raise KeyError(word)

    @staticmethod
    def _nft(space, script):
        for line in script.splitlines():
            words = line.split()
            if line == "add table ip nimbus-nat":
                space["nat"] = space["nat"] or {}
            elif words[:4] == ["add", "chain", "ip", "nimbus-nat"]:
                space["nat"].setdefault(words[4], [])
            elif words[:4] == ["flush", "chain", "ip", "nimbus-nat"]:
                space["nat"][words[4]] = []
            elif NAT_RULE.match(line):
                chain, text, comment = NAT_RULE.match(line).groups()
                space["nat"][chain].append((text, comment))
            else:
                raise KeyError(line)


@pytest.fixture
def cloud(monkeypatch, tmp_path):
    """The simulated node, its record and IPAM directories in tmp_path, and a runner that logs what it changes."""
    node = Node()
    log = []
    record_dir, state_dir = str(tmp_path / "networks"), str(tmp_path / "state")
    monkeypatch.setattr(rt, "ROUTER_DIR", str(tmp_path / "routers"))
    monkeypatch.setattr(rt, "FIP_DIR", str(tmp_path / "floating-ips"))
    monkeypatch.setattr(rt, "network_host",
                        lambda runner: nw.NetworkHost(runner, record_dir=record_dir, state_dir=state_dir))
    for name, spec in NETWORKS.items():
        net_id = ipam_lib.derive_id("network", name)
        Records(record_dir).write(name, dict(name=name, id=net_id, type=spec["type"], bridge=spec["bridge"],
                                             mtu=spec["mtu"], external=spec["external"]))
        ipam = ipam_lib.Ipam(name)
        for subnet in spec["subnets"]:
            ipam.put_subnet(ipam_lib.build_subnet(network=name, **subnet))
        store = ipam_lib.NetworkStore(os.path.join(state_dir, name), name)
        with store.transaction():
            store.save(ipam)
        node.links[spec["bridge"]] = {"kind": "bridge", "mtu": spec["mtu"], "up": True}

    def run_command(self, args, data=None, **kwargs):
        argv = [os.path.basename(args[0])] + list(args[1:])
        if node.is_read(argv):
            out = node.read(argv, data)
            return (0, out, "") if out is not None else (1, "", "No such file or directory")
        try:
            node.change(argv, data)
        except CommandFailed as e:
            return 2, "", str(e)
        return 0, "", ""

    original_change, original_apply = CommandRunner.change, CommandRunner.apply

    def change(self, argv, *args, **kwargs):
        if not self.check_mode:
            log.append(" ".join(str(a) for a in argv))
        return original_change(self, argv, *args, **kwargs)

    def apply(self, description, *args, **kwargs):
        if not self.check_mode:
            log.append(description)
        return original_apply(self, description, *args, **kwargs)

    monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda self, name, **kw: "/usr/sbin/" + name)
    monkeypatch.setattr(CommandRunner, "change", change)
    monkeypatch.setattr(CommandRunner, "apply", apply)
    return node, log, tmp_path


def files(root):
    """Every path under ``root`` with its content: what check mode must leave as it is."""
    found = {}
    for directory, dirs, names in os.walk(root):
        found[directory] = None
        for name in names:
            with open(os.path.join(directory, name), "rb") as f:
                found[os.path.join(directory, name)] = f.read()
    return found


def expand(lines, tmp_path):
    return [line.format(routers=tmp_path / "routers", fips=tmp_path / "floating-ips") for line in lines]


def run_case(case, cloud, run_module, default_module):
    node, log, tmp_path = cloud
    for step in case.get("setup", []):
        result, failed = run_module(MODULES[step.get("module", default_module)], step["args"])
        assert not failed, result
    for drift in case.get("drift", []):
        if isinstance(drift, dict) and "nat" in drift:
            node.namespaces[drift["netns"]]["nat"] = {c: [tuple(r) for r in rules] for c, rules in drift["nat"].items()}
        elif isinstance(drift, dict) and "remove" in drift:
            os.unlink(drift["remove"].format(routers=tmp_path / "routers"))
        elif isinstance(drift, dict) and "write" in drift:
            with open(drift["write"].format(routers=tmp_path / "routers"), "w") as f:
                f.write("table ip nimbus-nat {}\n")
        else:
            node.change(drift.split(), None)
    module = MODULES[case.get("module", default_module)]
    task = case["task"]
    expected = expand(case.get("commands", []), tmp_path)
    state, before, changes = node.state(), files(tmp_path), len(node.changes)

    result, failed = run_module(module, task, check_mode=True, diff=True)
    assert node.state() == state and files(tmp_path) == before and len(node.changes) == changes
    if "failed" in case:
        assert failed and case["failed"] in result["msg"], result
        del log[:]
        result, failed = run_module(module, task)
        assert failed and case["failed"] in result["msg"] and log == [] and node.state() == state
        assert files(tmp_path) == before
        return
    assert not failed, result
    assert result["commands"] == expected
    assert result["changed"] is bool(expected)
    for key, value in (case.get("result") or {}).items():
        assert result[module.resource][key] == value, key

    del log[:]
    real, failed = run_module(module, task, diff=True)
    assert not failed, real
    assert log == expected and real["changed"] is bool(expected) and "commands" not in real
    assert real[module.resource] == result[module.resource]
    assert real["diff"] == result["diff"]
    if "nft" in case:
        assert node.scripts[-1].splitlines() == case["nft"]

    del log[:]
    again, failed = run_module(module, task, check_mode=True)
    assert not failed and not again["changed"] and again["commands"] == [], again
    again, failed = run_module(module, task)
    assert not failed and not again["changed"] and log == [], (again, log)
    return real


@pytest.mark.parametrize("case", cases.params(__file__, "router_cases.yaml"))
def test_router(case, cloud, run_module):
    run_case(case, cloud, run_module, "router")


def test_check_mode_creates_no_lock_and_no_record_directory(cloud, run_module):
    node, log, tmp_path = cloud
    for lock in (tmp_path / "state").glob("*/ipam.lock"):
        lock.unlink()
    task = {"name": "r1", "external_network": "public",
            "interfaces": [{"network": "demo-net", "subnet": "demo-subnet"}]}
    result, failed = run_module(RouterModule, task, check_mode=True)
    assert not failed and result["changed"] and result["commands"]
    assert not (tmp_path / "routers").exists() and list((tmp_path / "state").glob("*/ipam.lock")) == []
    assert node.namespaces == {}


def test_a_failed_check_leaves_the_records_alone(cloud, run_module):
    node, log, tmp_path = cloud
    run_module(RouterModule, {"name": "r1", "external_network": "public"})
    record = (tmp_path / "routers" / "r1.json").read_text()
    result, failed = run_module(RouterModule, {"name": "r1", "external_network": "demo-net"}, check_mode=True)
    assert failed and "network demo-net is not external" in result["msg"]
    assert (tmp_path / "routers" / "r1.json").read_text() == record


def test_router_info_lists_routers_and_their_floating_ips(cloud, run_module):
    from ansible_collections.nimbus.cloud.plugins.modules.router_info import RouterInfoModule

    for args in ({"name": "r1", "project": "demo", "interfaces": [{"network": "demo-net", "subnet": "demo-subnet"}],
                  "external_network": "public"},
                 {"name": "r2", "project": "ops", "interfaces": [{"network": "other-net", "subnet": "other-subnet"}],
                  "external_network": "public2"}):
        result, failed = run_module(RouterModule, args)
        assert not failed, result
    result, failed = run_module(FloatingIpModule, {"name": "f1", "router": "r1", "project": "demo"})
    assert not failed, result
    listed, failed = run_module(RouterInfoModule, {})
    assert not failed and not listed["changed"]
    assert [r["name"] for r in listed["routers"]] == ["r1", "r2"]
    r1 = listed["routers"][0]
    assert r1["external_gateway"]["network"] == "public" and r1["interfaces"][0]["ip"] == "10.20.0.1"
    assert [(f["name"], f["router"], f["network"]) for f in listed["floating_ips"]] == [("f1", "r1", "public")]
    mine, _failed = run_module(RouterInfoModule, {"project": "ops"})
    assert [r["name"] for r in mine["routers"]] == ["r2"] and mine["floating_ips"] == []
    named, _failed = run_module(RouterInfoModule, {"name": ["r1", "missing"]})
    assert [r["name"] for r in named["routers"]] == ["r1"] and len(named["floating_ips"]) == 1
