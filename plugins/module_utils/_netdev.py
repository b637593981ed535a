# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kernel network links through iproute2: read as JSON, planned as typed specs, changed as typed steps.

Everything that touches links goes through a :class:`CommandRunner`, so check
mode and secrets are handled in that one place. The planners are pure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from ansible_collections.nimbus.cloud.plugins.module_utils._errors import CommandError, NimbusError
from ansible_collections.nimbus.cloud.plugins.module_utils._resource import Command

FLOOD_MAC = "00:00:00:00:00:00"
VXLAN_PORT = 4789
# Linux limits interface names to IFNAMSIZ - 1 characters.
IFNAME_MAX = 15


class KernelFeatureError(NimbusError):
    """The running kernel lacks a link type (for example 802.1Q without CONFIG_VLAN_8021Q)."""


@dataclass
class Link:
    """A link as the kernel reports it."""

    name: str
    kind: str  # bridge, vxlan, vlan, veth, or "" for a plain device
    mtu: int
    up: bool
    master: str | None = None
    parent: str | None = None  # vlan: the trunk; veth: the peer
    address: str | None = None
    info: dict = field(default_factory=dict)
    bridge_options: dict = field(default_factory=dict)


@dataclass
class LinkSpec:
    """A link as it should be; None means "leave as it is"."""

    name: str
    kind: str
    mtu: int | None = None
    master: str | None = None
    up: bool = True
    vxlan_id: int | None = None
    local: str | None = None
    dstport: int = VXLAN_PORT
    underlay: str | None = None
    vlan_id: int | None = None
    parent: str | None = None
    peer: str | None = None
    peer_netns: str | None = None
    nf_call_iptables: bool | None = None

    def create_argv(self):
        argv = ["ip", "link", "add"]
        if self.kind == "vlan":
            return argv + ["link", self.parent, "name", self.name, "type", "vlan", "id", str(self.vlan_id)]
        argv += [self.name]
        if self.mtu:
            argv += ["mtu", str(self.mtu)]
        argv += ["type", self.kind]
        if self.kind == "vxlan":
            argv += ["id", str(self.vxlan_id), "local", self.local, "dstport", str(self.dstport)]
            if self.underlay:
                argv += ["dev", self.underlay]
        elif self.kind == "veth":
            argv += ["peer", "name", self.peer]
            if self.peer_netns:
                argv += ["netns", self.peer_netns]
        elif self.kind == "bridge" and self.nf_call_iptables is not None:
            argv += ["nf_call_iptables", "1" if self.nf_call_iptables else "0"]
        return argv


def check_ifname(name, what):
    if not name or len(name) > IFNAME_MAX or "/" in name or " " in name:
        raise NimbusError("%s: %r is not a usable interface name (1 to %d characters)" % (what, name, IFNAME_MAX))
    return name


def _ip(netns, *args):
    return ["ip"] + (["-n", netns] if netns else []) + list(args)


def parse_links(text):
    links = {}
    for item in json.loads(text or "[]"):
        info = item.get("linkinfo") or {}
        kind = info.get("info_kind") or ""
        links[item["ifname"]] = Link(
            name=item["ifname"],
            kind=kind,
            mtu=int(item.get("mtu", 0)),
            up="UP" in (item.get("flags") or []),
            master=item.get("master"),
            parent=item.get("link"),
            address=item.get("address"),
            info=info.get("info_data") or {},
            bridge_options=(info.get("info_data") or {}) if kind == "bridge" else {},
        )
    return links


def read_links(runner, netns=None):
    result = runner.read(_ip(netns, "-j", "-d", "link", "show"))
    return parse_links(result.stdout)


def read_namespaces(runner):
    """Names of the host's network namespaces."""
    result = runner.read(["ip", "-j", "netns", "list"])
    return {n["name"] for n in json.loads(result.stdout or "[]") if n.get("name")}


def read_flood(runner, name):
    """The VXLAN head-end replication list: peers that get every broadcast."""
    result = runner.read(["bridge", "-j", "fdb", "show", "dev", name], check_rc=False)
    if not result.ok:
        return set()
    return {e["dst"] for e in json.loads(result.stdout or "[]") if e.get("mac") == FLOOD_MAC and e.get("dst")}


def read_addresses(runner, name, netns=None):
    """IPv4 addresses of a link as CIDR strings (10.0.0.2/24)."""
    result = runner.read(_ip(netns, "-j", "-4", "addr", "show", "dev", name), check_rc=False)
    if not result.ok:
        return []
    out = []
    for item in json.loads(result.stdout or "[]"):
        for a in item.get("addr_info") or []:
            if a.get("family") == "inet":
                out.append("%s/%s" % (a["local"], a["prefixlen"]))
    return sorted(out)


def fixed_attributes(spec, link):
    """What differs and can only change by recreating the link."""
    wrong = []
    if link.kind != spec.kind:
        wrong.append("type %s, not %s" % (link.kind or "device", spec.kind))
    elif spec.kind == "vxlan":
        if int(link.info.get("id", -1)) != spec.vxlan_id:
            wrong.append("VNI %s, not %s" % (link.info.get("id"), spec.vxlan_id))
        if link.info.get("local") != spec.local:
            wrong.append("local %s, not %s" % (link.info.get("local"), spec.local))
        if int(link.info.get("port", VXLAN_PORT)) != spec.dstport:
            wrong.append("port %s, not %s" % (link.info.get("port"), spec.dstport))
    elif spec.kind == "vlan":
        if int(link.info.get("id", -1)) != spec.vlan_id or link.parent != spec.parent:
            wrong.append("VLAN %s on %s, not %s on %s" % (link.info.get("id"), link.parent, spec.vlan_id, spec.parent))
    return wrong


class AddLink(Command):
    """``ip link add``: knows the link it makes, so a failed plan can take it away again."""

    def __init__(self, spec):
        super().__init__(spec.create_argv())
        object.__setattr__(self, "link", spec.name)
        object.__setattr__(self, "kind", spec.kind)


def _set(name, *args):
    return Command(["ip", "link", "set", name] + [str(a) for a in args])


def plan_link(spec, link):
    """Steps that make ``link`` (None when absent) match ``spec``, in order."""
    steps = []
    if link is not None and fixed_attributes(spec, link):
        steps.append(Command(["ip", "link", "del", spec.name]))
        link = None
    if link is None:
        steps.append(AddLink(spec))
        if spec.kind == "vlan" and spec.mtu:
            steps.append(_set(spec.name, "mtu", spec.mtu))
        if spec.master:
            steps.append(_set(spec.name, "master", spec.master))
        if spec.up:
            steps.append(_set(spec.name, "up"))
        return steps
    if spec.mtu and link.mtu != spec.mtu:
        steps.append(_set(spec.name, "mtu", spec.mtu))
    if spec.kind == "bridge" and spec.nf_call_iptables is not None:
        if bool(link.bridge_options.get("nf_call_iptables")) != spec.nf_call_iptables:
            steps.append(_set(spec.name, "type", "bridge", "nf_call_iptables", "1" if spec.nf_call_iptables else "0"))
    if spec.master and link.master != spec.master:
        steps.append(_set(spec.name, "master", spec.master))
    if spec.up and not link.up:
        steps.append(_set(spec.name, "up"))
    return steps


def plan_flood(name, have, want):
    steps = [Command(["bridge", "fdb", "append", FLOOD_MAC, "dev", name, "dst", peer])
             for peer in sorted(set(want) - have)]
    steps += [Command(["bridge", "fdb", "del", FLOOD_MAC, "dev", name, "dst", peer])
              for peer in sorted(have - set(want))]
    return steps


def run_steps(runner, steps):
    """Apply planned steps; a kernel without a link type gets a clear error, and the links this call added
    are taken away again (the host is left as it was found, not half-built)."""
    added = []
    try:
        for step in steps:
            try:
                step.apply(runner)
            except CommandError as e:
                if isinstance(step, AddLink) and "Unknown device type" in (e.stderr or ""):
                    raise KernelFeatureError(
                        "the running kernel cannot create %s links (%s): for VLAN networks it needs 802.1Q "
                        "support (CONFIG_VLAN_8021Q, module 8021q)" % (step.kind, step.describe())
                        if step.kind == "vlan" else
                        "the running kernel cannot create %s links: %s" % (step.kind, step.describe()))
                raise
            if isinstance(step, AddLink):
                added.append(step.link)
    except NimbusError:
        present = read_links(runner) if added else {}
        for name in reversed(added):
            if name in present:
                runner.change(["ip", "link", "del", name], check_rc=False)
        raise
