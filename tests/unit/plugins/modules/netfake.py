"""A network node in memory for the network, subnet and port module tests.

:class:`FakeKernel` answers the iproute2, bridge and systemctl commands the
modules run, and applies the changing ones to its links, namespaces, flood
lists, addresses and units, so a second run sees what the first one made.
Records and DHCP files go to a temporary directory (the module constants are
pointed there), so check mode can be shown to create nothing.
"""

import json
import os

import pytest
from ansible.module_utils import basic

from ansible_collections.nimbus.cloud.plugins.module_utils import _ipam as ipam_lib
from ansible_collections.nimbus.cloud.plugins.module_utils import _network as nw

FLOOD = "00:00:00:00:00:00"
SETTINGS = {
    "physical_networks": {"external": {"bridge": "br-ex", "interface": "uplink0", "mtu": 1500},
                          "physnet1": {"interface": "trunk0", "mtu": 1500}},
    "vxlan": {"local_ip": "10.89.0.2", "interface": "eth0", "port": 4789, "mtu": 1500},
}


def net8(name):
    return ipam_lib.derive_id("network", name)[:8]


class FakeKernel:
    def __init__(self):
        self.links = {None: {"eth0": self.link("eth0", "", 1500, up=True),
                             "br-ex": self.link("br-ex", "bridge", 1500, up=True)}}
        self.fdb = {}
        self.addrs = {}
        self.active = set()
        self.ran = []  # changing commands, as "argv joined"
        self.missing_kinds = set()  # link types this kernel cannot make

    @staticmethod
    def link(name, kind, mtu=1500, up=False, **info):
        return {"ifname": name, "kind": kind, "mtu": mtu, "up": up, "master": None, "info": info, "peer": None}

    # reads

    def answer(self, argv):
        netns = None
        if argv[:2] == ["ip", "-n"]:
            netns, argv = argv[2], ["ip"] + argv[3:]
        if argv == ["ip", "-j", "-d", "link", "show"]:
            return self.json([self.show(link) for link in self.links.get(netns, {}).values()])
        if argv == ["ip", "-j", "netns", "list"]:
            return self.json([{"name": ns} for ns in sorted(n for n in self.links if n)])
        if argv[:5] == ["ip", "-j", "-4", "addr", "show"]:
            dev = argv[6]
            if dev not in self.links.get(netns, {}):
                return 1, "", "Device does not exist"
            info = [{"family": "inet", "local": a.split("/")[0], "prefixlen": int(a.split("/")[1])}
                    for a in sorted(self.addrs.get((netns, dev), ()))]
            return self.json([{"ifname": dev, "addr_info": info}])
        if argv[:4] == ["bridge", "-j", "fdb", "show"]:
            return self.json([{"mac": FLOOD, "dst": d} for d in sorted(self.fdb.get(argv[5], ()))])
        if argv[:3] == ["systemctl", "is-active", "--quiet"]:
            return (0 if argv[3] in self.active else 3), "", ""
        return None

    @staticmethod
    def json(data):
        return 0, json.dumps(data), ""

    @staticmethod
    def show(link):
        item = {"ifname": link["ifname"], "mtu": link["mtu"], "flags": ["BROADCAST"] + (["UP"] if link["up"] else [])}
        if link["master"]:
            item["master"] = link["master"]
        if link["kind"]:
            item["linkinfo"] = {"info_kind": link["kind"], "info_data": dict(link["info"])}
        return item

    # changes

    def change(self, argv):
        self.ran.append(" ".join(argv))
        netns = None
        if argv[:2] == ["ip", "-n"]:
            netns, argv = argv[2], ["ip"] + argv[3:]
        links = self.links.setdefault(netns, {})
        if argv[:3] == ["ip", "netns", "add"]:
            self.links[argv[3]] = {"lo": self.link("lo", "", 65536)}
        elif argv[:3] == ["ip", "netns", "del"]:
            for link in self.links.pop(argv[3]).values():
                self.unlink_peer(link)
        elif argv[:3] == ["ip", "link", "add"]:
            return self.add(argv[3:])
        elif argv[:3] == ["ip", "link", "del"]:
            self.unlink_peer(links.pop(argv[3]))
            self.fdb.pop(argv[3], None)
            for link in links.values():  # a deleted bridge lets its ports go
                if link["master"] == argv[3]:
                    link["master"] = None
        elif argv[:3] == ["ip", "link", "set"]:
            link, rest = links[argv[3]], argv[4:]
            while rest:
                if rest[0] == "up":
                    link["up"], rest = True, rest[1:]
                elif rest[0] == "mtu":
                    link["mtu"], rest = int(rest[1]), rest[2:]
                elif rest[0] == "master":
                    link["master"], rest = rest[1], rest[2:]
                elif rest[:2] == ["type", "bridge"]:
                    link["info"][rest[2]], rest = int(rest[3]), rest[4:]
                else:
                    raise AssertionError("unknown ip link set: %r" % argv)
        elif argv[:3] in (["ip", "addr", "add"], ["ip", "addr", "del"]):
            held = self.addrs.setdefault((netns, argv[5]), set())
            (held.add if argv[2] == "add" else held.discard)(argv[3])
        elif argv[:3] in (["bridge", "fdb", "append"], ["bridge", "fdb", "del"]):
            held = self.fdb.setdefault(argv[5], set())
            (held.add if argv[2] == "append" else held.discard)(argv[7])
        elif argv[0] == "systemctl":
            (self.active.discard if argv[1] == "stop" else self.active.add)(argv[2])
        elif argv[:3] == ["ip", "netns", "exec"] and argv[4] == "dhcp_release":
            pass  # dnsmasq forgets the lease; the fake keeps none
        else:
            raise AssertionError("unexpected change: %r" % argv)
        return 0, "", ""

    def add(self, args):
        if args[0] == "link":  # ip link add link PARENT name NAME type vlan id N
            parent, name, kind = args[1], args[3], "vlan"
            info, mtu = {"id": int(args[7])}, 1500
        else:
            name, rest = args[0], args[1:]
            mtu = 1500
            if rest[0] == "mtu":
                mtu, rest = int(rest[1]), rest[2:]
            kind, rest = rest[1], rest[2:]
            parent, info = None, {}
            opts = dict(zip(rest[::2], rest[1::2]))
            if kind == "vxlan":
                info = {"id": int(opts["id"]), "local": opts["local"], "port": int(opts["dstport"])}
            elif kind == "bridge":
                info = {"nf_call_iptables": int(opts.get("nf_call_iptables", 0))}
        if kind in self.missing_kinds:
            return 2, "", "Error: Unknown device type."
        link = self.link(name, kind, mtu, **info)
        link["parent"] = parent
        self.links[None][name] = link
        if kind == "veth":
            after = args[args.index("peer") + 1:]
            opts = dict(zip(after[::2], after[1::2]))
            peer = self.link(opts["name"], "veth", mtu)
            link["peer"], peer["peer"] = (opts.get("netns"), opts["name"]), (None, name)
            self.links[opts.get("netns")][opts["name"]] = peer
        return 0, "", ""

    def unlink_peer(self, link):
        if link and link.get("peer"):
            ns, name = link["peer"]
            self.links.get(ns, {}).pop(name, None)


READS_ONLY = ("show", "list", "is-active")


@pytest.fixture
def kernel(monkeypatch, tmp_path):
    """The fake kernel, with records, state and settings in ``tmp_path``."""
    fake = FakeKernel()

    def run_command(self, args, **kwargs):
        argv = [os.path.basename(args[0])] + list(args[1:])
        answer = fake.answer(argv)
        if answer is not None:
            return answer
        if self.check_mode:
            raise AssertionError("check mode ran a change: %r" % argv)
        return fake.change(argv)

    def get_bin_path(self, name, required=False, opt_dirs=None):
        return "/usr/bin/" + name

    monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", get_bin_path)
    settings = tmp_path / "etc" / "bridges.json"
    settings.parent.mkdir()
    settings.write_text(json.dumps(SETTINGS))
    monkeypatch.setattr(nw, "SETTINGS_FILE", str(settings))
    monkeypatch.setattr(nw, "RECORD_DIR", str(tmp_path / "etc" / "networks"))
    monkeypatch.setattr(nw, "STATE_DIR", str(tmp_path / "state"))
    fake.tmp = tmp_path
    return fake


def tree(path):
    """Every file and directory under ``path`` with its content: what a check-mode run must leave alone."""
    found = {}
    for root, dirs, files in os.walk(str(path)):
        for d in dirs:
            found[os.path.relpath(os.path.join(root, d), str(path))] = None
        for f in files:
            with open(os.path.join(root, f)) as handle:
                found[os.path.relpath(os.path.join(root, f), str(path))] = handle.read()
    return found


def fill(value, names):
    """Placeholders in a table's strings: {tmp} and {<network>} (its id's first 8 hex digits)."""
    if isinstance(value, str):
        return value.format(**names)
    if isinstance(value, list):
        return [fill(v, names) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, names) for k, v in value.items()}
    return value


def placeholders(tmp):
    names = {"tmp": str(tmp)}
    for name in ("demo-net", "public", "vlan-net", "other-net"):
        names[name.replace("-", "_")] = net8(name)
    return names


def run_case(case, kernel, run_module, modules):
    """Run a table case: its ``setup`` tasks, then each of its ``runs`` with what it expects.

    A run gives ``module`` (default: the table's), ``args``, ``check_mode``, and expects ``changed``,
    ``commands`` (check mode: what is returned), ``ran`` (for real: the commands run), ``result``
    (a subset of the resource's view), ``diff`` (before/after subsets) or ``failed`` (a message part).
    """
    names = placeholders(kernel.tmp)
    for setup in case.get("setup", ()):
        if "shell" in setup:
            kernel.change(fill(setup["shell"], names).split())
            continue
        result, failed = run_module(modules[setup["module"]], fill(setup["args"], names))
        assert not failed, result
    for index, run in enumerate(case["runs"]):
        where = "run %d" % index
        run = fill(run, names)
        if "shell" in run:
            kernel.change(run["shell"].split())
            continue
        kind = run.get("module", case["module"])
        module = modules[kind]
        kernel.missing_kinds = set(run.get("missing_kinds", ()))
        before_files, ran_before = tree(kernel.tmp), len(kernel.ran)
        result, failed = run_module(module, run["args"], check_mode=run.get("check_mode", False), diff=True)
        ran = kernel.ran[ran_before:]
        if "failed" in run:
            assert failed and run["failed"] in result["msg"], (where, result)
            assert ran == run.get("ran", []), (where, ran)
            if not run.get("ran"):
                assert tree(kernel.tmp) == before_files, where
            continue
        assert not failed, (where, result)
        assert result["changed"] is run["changed"], (where, result)
        if run.get("check_mode"):
            assert ran == [] and tree(kernel.tmp) == before_files, where
            assert result["commands"] == run.get("commands", []), (where, result["commands"])
        elif "ran" in run:
            assert ran == run["ran"], (where, ran)
        if not run["changed"]:
            assert ran == [] and tree(kernel.tmp) == before_files, where
        view = result[kind]
        for key, value in (run.get("result") or {}).items():
            assert view.get(key) == value, (where, key, view)
        for side in ("before", "after"):
            for key, value in ((run.get("diff") or {}).get(side) or {}).items():
                assert result["diff"][side].get(key) == value, (where, side, key, result["diff"][side])
        if run.get("result") == {}:
            assert view == {}, where
