# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tenant networks on a host: a Linux bridge, its VLAN or VXLAN member, and DHCP in a namespace.

Every host a network spans (compute hosts, the network node) holds:

- the network's record in ``/etc/nimbus/networks/<name>.json`` (what the
  kernel cannot say: project, shared, external, the segment);
- the bridge and its member link, built with iproute2 from the record.

The network node also holds the network's IPAM (``_ipam``) and its DHCP:
namespace ``nimbus-dhcp-<name>``, a veth into the bridge, and dnsmasq run by
the ``nimbus-dhcp@<name>`` unit that the bridges role installs.

:class:`NetworkHost` reads what a host holds (a snapshot); the ``plan_*``
functions are pure: snapshot and desired attributes in, a
:class:`~._resource.Plan` of typed steps out. Only the module applies them,
through the runner.

Host-wide settings (physical networks, the VXLAN endpoint) come from
``/etc/nimbus/bridges.json``, written by the bridges role.
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import asdict, dataclass, field

from ansible_collections.nimbus.cloud.plugins.module_utils import _ipam as ipam_lib
from ansible_collections.nimbus.cloud.plugins.module_utils import _netdev as netdev
from ansible_collections.nimbus.cloud.plugins.module_utils._errors import NimbusError, ValidationError
from ansible_collections.nimbus.cloud.plugins.module_utils._files import Records, read_text
from ansible_collections.nimbus.cloud.plugins.module_utils._names import validate_name
from ansible_collections.nimbus.cloud.plugins.module_utils._resource import (
    Command, Plan, RemoveFile, RemoveRecord, RemoveTree, WriteFile, WriteRecord)

SETTINGS_FILE = "/etc/nimbus/bridges.json"
RECORD_DIR = "/etc/nimbus/networks"
STATE_DIR = "/var/lib/nimbus/networks"
TYPES = ("flat", "vlan", "vxlan")
VXLAN_OVERHEAD = 50
SEGMENT_RANGES = {"vlan": (1, 4094), "vxlan": (1, 16777215)}
DHCP_IFNAME = "dhcp0"
DHCP_UNIT = "nimbus-dhcp@%s.service"
LEASE_TIME = "86400s"
DHCP_FILES = ("conf", "opts", "leases", "pid")


def load_settings(path=SETTINGS_FILE):
    text = read_text(path)
    if text is None:
        raise NimbusError("%s is missing: apply the nimbus.cloud.bridges role to this host first" % path)
    return json.loads(text)


@dataclass
class Network:
    name: str
    type: str
    id: str
    bridge: str
    mtu: int
    segmentation_id: int | None = None
    physical_network: str | None = None
    project: str | None = None
    shared: bool = False
    external: bool = False
    peers: list = field(default_factory=list)
    local_ip: str | None = None

    @property
    def member(self):
        """Name of the VLAN or VXLAN link in the bridge (None for flat)."""
        return None if self.type == "flat" else ("nvl-" if self.type == "vlan" else "nvx-") + self.id[:8]

    @property
    def owns_bridge(self):
        """Flat networks ride the bridges role's provider bridge; the others own theirs."""
        return self.type != "flat"

    def view(self):
        return {"id": self.id, "name": self.name, "type": self.type, "segmentation_id": self.segmentation_id,
                "physical_network": self.physical_network, "mtu": self.mtu, "project": self.project,
                "shared": self.shared, "external": self.external, "bridge": self.bridge,
                "vxlan_peers": sorted(self.peers) if self.type == "vxlan" else [],
                "local_ip": self.local_ip if self.type == "vxlan" else None}

    def record(self):
        return asdict(self)

    def attributes(self):
        """The module's options as this network has them: what a task is compared against."""
        return {"type": self.type, "segmentation_id": self.segmentation_id,
                "physical_network": self.physical_network, "mtu": self.mtu, "project": self.project,
                "shared": self.shared, "external": self.external, "vxlan_peers": sorted(self.peers),
                "local_ip": self.local_ip}


def _address(value, where):
    try:
        return ipaddress.ip_address(str(value).strip())
    except ValueError:
        raise ValidationError("%s: %r is not an IP address" % (where, value))


def build_network(name, settings, type="vxlan", segmentation_id=None, physical_network=None, mtu=None,
                  project=None, shared=False, external=False, vxlan_peers=(), local_ip=None):
    """A validated :class:`Network` for this host, from the module's options and the host's settings."""
    validate_name(name, "network")
    if type not in TYPES:
        raise ValidationError("type must be one of %s, got %r" % (", ".join(TYPES), type))
    physnets = settings.get("physical_networks") or {}
    net_id = ipam_lib.derive_id("network", name)
    if type in SEGMENT_RANGES:
        low, high = SEGMENT_RANGES[type]
        if segmentation_id is None:
            raise ValidationError("a %s network needs segmentation_id (%d-%d)" % (type, low, high))
        if not low <= int(segmentation_id) <= high:
            raise ValidationError("segmentation_id %s is out of range for %s (%d-%d)"
                                  % (segmentation_id, type, low, high))
        segmentation_id = int(segmentation_id)
    elif segmentation_id is not None:
        raise ValidationError("flat networks have no segmentation_id")
    bridge = "nb-" + net_id[:8]
    peers = []
    if type == "vxlan":
        if physical_network:
            raise ValidationError("vxlan networks have no physical_network")
        vx = settings.get("vxlan") or {}
        local_ip = local_ip or vx.get("local_ip")
        if not local_ip:
            raise ValidationError("this host has no VXLAN endpoint: set bridges_vxlan_local_ip in the bridges role "
                                  "or local_ip here")
        local = _address(local_ip, "local_ip")
        local_ip = str(local)
        addresses = set()
        for index, peer in enumerate(vxlan_peers or ()):
            address = _address(peer, "vxlan_peers[%d]" % index)
            if address.version != local.version:
                # One VXLAN device encapsulates in one address family: its local one.
                raise ValidationError("vxlan_peers[%d]: %s is IPv%d but this host's endpoint %s is IPv%d"
                                      % (index, address, address.version, local, local.version))
            addresses.add(str(address))
        peers = sorted(addresses - {local_ip})
        ceiling = int(vx.get("mtu") or 1500) - VXLAN_OVERHEAD
    else:
        local_ip = None
        if not physical_network:
            raise ValidationError("a %s network needs physical_network (this host has: %s)"
                                  % (type, ", ".join(sorted(physnets)) or "none"))
        if physical_network not in physnets:
            raise ValidationError("physical network %s is not on this host (it has: %s)"
                                  % (physical_network, ", ".join(sorted(physnets)) or "none"))
        physnet = physnets[physical_network]
        ceiling = int(physnet.get("mtu") or 1500)
        if type == "flat":
            if not physnet.get("bridge"):
                raise ValidationError("physical network %s has no bridge for flat networks" % physical_network)
            bridge = physnet["bridge"]
        elif not physnet.get("interface") or physnet.get("bridge"):
            # A port enslaved to a bridge hands every frame to the bridge: a VLAN link on it would see nothing.
            raise ValidationError("physical network %s has no trunk interface for VLAN networks (a physical network "
                                  "with a provider bridge is for flat networks)" % physical_network)
        if vxlan_peers:
            raise ValidationError("vxlan_peers is only for vxlan networks")
    if mtu is None:
        mtu = ceiling
    elif not 576 <= int(mtu) <= ceiling:
        raise ValidationError("mtu %s must be between 576 and %d on this host" % (mtu, ceiling))
    return Network(name=name, type=type, id=net_id, bridge=bridge, mtu=int(mtu), segmentation_id=segmentation_id,
                   physical_network=physical_network, project=project, shared=bool(shared),
                   external=bool(external), peers=peers, local_ip=local_ip)


def port_view(port, net):
    """A port as the port modules return it: its record plus where an instance plugs it in."""
    if port is None:
        return {}
    view = port.record()
    view.update(network_id=net.id, bridge=net.bridge, mtu=net.mtu)
    return view


# --- DHCP ---------------------------------------------------------------------

def dhcp_paths(network, state_dir=STATE_DIR):
    base = os.path.join(state_dir, network)
    return {"dir": base, "conf": os.path.join(base, "dnsmasq.conf"), "opts": os.path.join(base, "opts"),
            "hosts": os.path.join(base, "hosts"), "leases": os.path.join(base, "leases"),
            "pid": os.path.join(base, "dnsmasq.pid")}


def _tag(subnet):
    return "s-" + subnet.id[:8]


def render_dnsmasq_conf(network, subnets, paths):
    lines = [
        "# Managed by nimbus.cloud: DHCP of network %s (static reservations only)." % network.name,
        "interface=%s" % DHCP_IFNAME,
        "bind-interfaces",
        "except-interface=lo",
        "port=0",
        "no-resolv",
        "no-hosts",
        "dhcp-authoritative",
        "dhcp-no-override",
        "dhcp-leasefile=%s" % paths["leases"],
        "dhcp-hostsfile=%s" % paths["hosts"],
        "dhcp-optsfile=%s" % paths["opts"],
        "pid-file=%s" % paths["pid"],
    ]
    for s in subnets:
        if s.enable_dhcp:
            net = s.net
            lines.append("dhcp-range=set:%s,%s,static,%s,%s" % (_tag(s), net.network, net.netmask, LEASE_TIME))
    return "\n".join(lines) + "\n"


def render_dnsmasq_opts(network, subnets):
    lines = []
    for s in subnets:
        if not s.enable_dhcp:
            continue
        tag = "tag:%s," % _tag(s)
        # An empty router option stops dnsmasq offering itself as the gateway.
        lines.append(tag + "option:router" + ("," + s.gateway if s.gateway else ""))
        if s.dns_servers:
            lines.append(tag + "option:dns-server," + ",".join(s.dns_servers))
        if s.host_routes:
            # Clients that understand option 121 ignore option 3: repeat the default route there.
            routes = [part for d, n in s.host_routes for part in (d, n)]
            if s.gateway:
                routes += ["0.0.0.0/0", s.gateway]
            lines.append(tag + "option:classless-static-route," + ",".join(routes))
        lines.append(tag + "option:mtu,%d" % network.mtu)
    return "\n".join(lines) + ("\n" if lines else "")


def dhcp_namespace(network):
    return "nimbus-dhcp-" + network


def dhcp_veth(network_obj):
    return "nd-" + network_obj.id[:8]


def link_specs(net, settings):
    """The links that carry ``net`` on a host with these bridges-role ``settings``."""
    specs = []
    if net.owns_bridge:
        specs.append(netdev.LinkSpec(name=net.bridge, kind="bridge", mtu=net.mtu, nf_call_iptables=True))
    vx = settings.get("vxlan") or {}
    if net.type == "vxlan":
        specs.append(netdev.LinkSpec(name=net.member, kind="vxlan", mtu=net.mtu, master=net.bridge,
                                     vxlan_id=net.segmentation_id, local=net.local_ip,
                                     dstport=int(vx.get("port") or netdev.VXLAN_PORT), underlay=vx.get("interface")))
    elif net.type == "vlan":
        trunk = settings["physical_networks"][net.physical_network]["interface"]
        specs.append(netdev.LinkSpec(name=net.member, kind="vlan", mtu=net.mtu, master=net.bridge,
                                     vlan_id=net.segmentation_id, parent=trunk))
    return specs


def kernel_view(net, links, flood=()):
    """What the kernel holds of the network, for the diff."""
    bridge = links.get(net.bridge)
    member = links.get(net.member) if net.member else None
    view = {"bridge": net.bridge if bridge else None, "mtu": bridge.mtu if bridge else None}
    if net.type == "vxlan" and member is not None:
        view["vxlan_peers"] = sorted(flood)
    return view


def ports_in_use(net, links):
    """Devices plugged into the network's own bridge besides its member, DHCP and router links."""
    if not net.owns_bridge:
        return []  # a provider bridge is shared; its uplink and other flat users are not ours to judge
    own = {net.member, dhcp_veth(net)}
    # Router legs (nr-) hold IPAM ports: the network node refuses those by name first.
    return sorted(n for n, link in links.items()
                  if link.master == net.bridge and n not in own and not n.startswith("nr-"))


@dataclass
class DhcpState:
    """A network's DHCP server as the network node has it."""

    namespace: bool = False
    ns_links: dict = field(default_factory=dict)  # links inside the namespace
    addresses: list = field(default_factory=list)  # of DHCP_IFNAME, as CIDRs
    veth: object = None  # the host end (a netdev.Link), or None
    active: bool = False
    files: dict = field(default_factory=dict)  # "conf", "opts", "leases", "pid" -> text, for those that exist


@dataclass
class NetworkSnapshot:
    """What a host holds of one network, read before anything is planned."""

    record: Network | None = None
    links: dict = field(default_factory=dict)
    flood: set = field(default_factory=set)  # the VXLAN member's replication list
    others: list = field(default_factory=list)  # the host's other networks
    ports: list = field(default_factory=list)  # IPAM ports other than DHCP's (network node)
    state_dir: bool = False  # the network's IPAM and DHCP directory exists (network node)
    dhcp: DhcpState = field(default_factory=DhcpState)


# --- network plans -------------------------------------------------------------

def check_segment_free(net, others):
    if net.type == "flat":
        return
    for other in others:
        if other.name != net.name and other.type == net.type and other.segmentation_id == net.segmentation_id \
                and other.physical_network == net.physical_network:
            raise ValidationError("network %s: %s segment %s is already used by network %s"
                                  % (net.name, net.type, net.segmentation_id, other.name))


def plan_network(net, snapshot, settings, records):
    """Links, flood list and record that make ``snapshot`` hold ``net`` (a validated :class:`Network`)."""
    check_segment_free(net, snapshot.others)
    steps = []
    for spec in link_specs(net, settings):
        steps += netdev.plan_link(spec, snapshot.links.get(spec.name))
    if net.type == "vxlan":
        remade = any(isinstance(s, netdev.AddLink) and s.link == net.member for s in steps)
        have = set() if remade or net.member not in snapshot.links else set(snapshot.flood)
        steps += netdev.plan_flood(net.member, have, net.peers)
    old = snapshot.record
    if old is None or old.record() != net.record():
        steps.append(WriteRecord(records, net.name, net.record()))
    before = dict(old.view(), **kernel_view(old, snapshot.links, snapshot.flood)) if old else {}
    return Plan(steps, before, net.view())


def plan_network_absent(snapshot, records, state_dir):
    """Take a network off the host: DHCP, IPAM records, links, record; refused while something uses it."""
    old = snapshot.record
    if snapshot.ports:
        raise ValidationError("network %s still has ports: %s; delete them (and router interfaces) first"
                              % (old.name, ", ".join(sorted(snapshot.ports))))
    in_use = ports_in_use(old, snapshot.links)
    if in_use:
        raise ValidationError("network %s is in use on this host: %s are plugged into bridge %s"
                              % (old.name, ", ".join(in_use), old.bridge))
    paths = dhcp_paths(old.name, state_dir)
    steps = plan_dhcp_stop(old, snapshot.dhcp, paths, remove_files=False)
    if snapshot.state_dir:
        steps.append(RemoveTree(paths["dir"]))
    if old.owns_bridge:
        steps += [Command(["ip", "link", "del", name]) for name in (old.member, old.bridge)
                  if name and name in snapshot.links]
    steps.append(RemoveRecord(records, old.name))
    return Plan(steps, old.view(), {})


# --- DHCP plans -----------------------------------------------------------------

def dhcp_wanted(ipam):
    """The addresses the DHCP namespace should carry, or None when no subnet serves DHCP."""
    served = [s for s in ipam.subnets if s.enable_dhcp]
    if not served:
        return None
    port = ipam.ports.get("dhcp")
    if port is None:
        return []
    by_subnet = {s.name: s for s in served}
    return sorted("%s/%d" % (f["ip"], by_subnet[f["subnet"]].net.prefixlen)
                  for f in port.fixed_ips if f["subnet"] in by_subnet)


def plan_dhcp(net, ipam, state, paths, hosts_changed=False):
    """Namespace, veth, addresses, dnsmasq files and unit that serve ``ipam``'s DHCP subnets."""
    wanted = dhcp_wanted(ipam)
    if wanted is None:
        return plan_dhcp_stop(net, state, paths)
    ns, veth, unit = dhcp_namespace(net.name), dhcp_veth(net), DHCP_UNIT % net.name
    steps = []
    link = state.veth
    if not state.namespace:
        steps.append(Command(["ip", "netns", "add", ns]))
        if link is not None:
            # Its peer went with the namespace; the kernel takes this end away too, but only later.
            steps.append(Command(["ip", "link", "del", veth]))
            link = None
    steps += netdev.plan_link(netdev.LinkSpec(name=veth, kind="veth", mtu=net.mtu, master=net.bridge,
                                              peer=DHCP_IFNAME, peer_netns=ns), link)
    fresh = link is None
    inside = {} if fresh else state.ns_links
    lo, dev = inside.get("lo"), inside.get(DHCP_IFNAME)
    if lo is None or not lo.up:
        steps.append(Command(["ip", "-n", ns, "link", "set", "lo", "up"]))
    if dev is None or dev.mtu != net.mtu or not dev.up:
        steps.append(Command(["ip", "-n", ns, "link", "set", DHCP_IFNAME, "mtu", net.mtu, "up"]))
    have = [] if fresh else state.addresses
    steps += [Command(["ip", "-n", ns, "addr", "add", a, "dev", DHCP_IFNAME]) for a in sorted(set(wanted) - set(have))]
    steps += [Command(["ip", "-n", ns, "addr", "del", a, "dev", DHCP_IFNAME]) for a in sorted(set(have) - set(wanted))]
    changed = {}
    for key, text in (("conf", render_dnsmasq_conf(net, ipam.subnets, paths)),
                      ("opts", render_dnsmasq_opts(net, ipam.subnets))):
        changed[key] = state.files.get(key) != text
        if changed[key]:
            steps.append(WriteFile(paths[key], text))
    # dnsmasq binds to its interface when it starts: a new one needs a new dnsmasq.
    if not state.active or changed["conf"] or fresh:
        steps.append(Command(["systemctl", "restart", unit]))
    elif changed["opts"] or hosts_changed:
        # dnsmasq rereads its hosts and options files on SIGHUP.
        steps.append(Command(["systemctl", "reload", unit]))
    return steps


def plan_dhcp_stop(net, state, paths, remove_files=True):
    steps = []
    if state.active:
        steps.append(Command(["systemctl", "stop", DHCP_UNIT % net.name]))
    # The veth first: deleting a namespace frees its end of the pair (and so ours) only later, asynchronously.
    if state.veth is not None:
        steps.append(Command(["ip", "link", "del", dhcp_veth(net)]))
    if state.namespace:
        steps.append(Command(["ip", "netns", "del", dhcp_namespace(net.name)]))
    if remove_files:
        steps += [RemoveFile(paths[key]) for key in DHCP_FILES if key in state.files]
    return steps


# --- subnet and port plans ------------------------------------------------------

def subnet_attributes(subnet):
    """The subnet module's options as ``subnet`` has them."""
    view = subnet.view()
    return {"cidr": subnet.cidr, "gateway": subnet.gateway or "none", "allocation_pools": view["allocation_pools"],
            "dns_servers": view["dns_servers"], "host_routes": view["host_routes"],
            "enable_dhcp": subnet.enable_dhcp, "project": subnet.project}


def subnet_view(subnet, ipam):
    """A subnet as the subnet module returns it: its view and the DHCP server's address in it."""
    if subnet is None:
        return {}
    view = subnet.view()
    port = ipam.ports.get("dhcp")
    view["dhcp_server"] = next((f["ip"] for f in (port.fixed_ips if port else []) if f["subnet"] == subnet.name),
                               None)
    return view


def _ipam_plan(net, ipam, planned, dhcp, store, paths, before, after):
    hosts_changed = ipam_lib.render_hosts(planned) != ipam_lib.render_hosts(ipam)
    steps = []
    if hosts_changed or ipam_lib.render_subnets(planned.subnets) != ipam_lib.render_subnets(ipam.subnets):
        steps.append(ipam_lib.SaveIpam(store, planned))
    steps += plan_dhcp(net, planned, dhcp, paths, hosts_changed)
    return Plan(steps, before, after)


def plan_subnet(net, ipam, name, attributes, given, dhcp, store, paths):
    """Add or change subnet ``name`` of ``ipam`` to ``attributes`` (current ones under the ``given`` ones)."""
    old = ipam.subnet(name)
    if not attributes.get("cidr"):
        raise ValidationError("subnet %s does not exist yet: cidr is required to create it" % name)
    pools = attributes.get("allocation_pools")
    if old is not None and "allocation_pools" not in given:
        moved = ipam_lib.build_subnet(name, net.name, attributes["cidr"], gateway=attributes["gateway"]).gateway
        if moved != old.gateway:
            pools = None  # the kept pools were cut around the old gateway
    subnet = ipam_lib.build_subnet(
        name, net.name, attributes["cidr"], gateway=attributes["gateway"], pools=pools,
        dns_servers=attributes.get("dns_servers") or (), host_routes=attributes.get("host_routes") or (),
        enable_dhcp=attributes.get("enable_dhcp", True), project=attributes.get("project"))
    planned = ipam.copy()
    planned.put_subnet(subnet)
    ipam_lib.keep_dhcp_port(planned)
    return _ipam_plan(net, ipam, planned, dhcp, store, paths, subnet_view(old, ipam), subnet_view(subnet, planned))


def plan_subnet_absent(net, ipam, name, dhcp, store, paths):
    planned = ipam.copy()
    planned.remove_subnet(name)
    ipam_lib.keep_dhcp_port(planned)
    return _ipam_plan(net, ipam, planned, dhcp, store, paths, subnet_view(ipam.subnet(name), ipam), {})


PORT_ATTRIBUTES = ("project", "device_owner", "device_id", "hostname", "security_groups", "port_security")


def port_attributes(port):
    """The port module's options as ``port`` has them."""
    return {"fixed_ips": [dict(f) for f in port.fixed_ips], "mac": port.mac, "project": port.project,
            "device_owner": port.device_owner, "device_id": port.device_id, "hostname": port.hostname,
            "security_groups": sorted(port.security_groups), "port_security": port.port_security}


def _leases(view):
    return {(f["ip"], view["mac"]) for f in view.get("fixed_ips") or []} if view else set()


def _port_plan(net, ipam, planned, before, after, dhcp_active, store):
    steps = []
    if before != after:
        steps.append(ipam_lib.SaveIpam(store, planned))
        if dhcp_active:
            steps.append(Command(["systemctl", "reload", DHCP_UNIT % net.name]))
            # An address the port gives up may still be leased to its MAC: dnsmasq would not hand it to the next
            # port that takes it ("leased to" another MAC) until the lease ran out. Release it now, as Neutron
            # does (no lease: nothing happens).
            steps += [Command(["ip", "netns", "exec", dhcp_namespace(net.name), "dhcp_release", DHCP_IFNAME, ip, mac],
                              check_rc=False)
                      for ip, mac in sorted(_leases(before) - _leases(after))]
    return Plan(steps, before, after)


def plan_port(net, ipam, name, attributes, fixed_ips, dhcp_active, store):
    """Add or change port ``name``: ``fixed_ips`` None keeps its addresses (a new port gets one)."""
    planned = ipam.copy()
    port = planned.plan_port(name, fixed_ips=fixed_ips, mac=attributes.get("mac"),
                             **{k: attributes.get(k) for k in PORT_ATTRIBUTES})
    return _port_plan(net, ipam, planned, port_view(ipam.ports.get(name), net), port_view(port, net),
                      dhcp_active, store)


def plan_port_absent(net, ipam, name, dhcp_active, store):
    planned = ipam.copy()
    old = planned.remove_port(name)
    return _port_plan(net, ipam, planned, port_view(old, net), {}, dhcp_active, store)


class NetworkHost:
    """Reads what the host the module runs on holds of its networks."""

    def __init__(self, runner, record_dir=None, state_dir=None, settings_file=None):
        self.runner = runner
        self.record_dir = record_dir or RECORD_DIR
        self.state_dir = state_dir or STATE_DIR
        self.settings_file = settings_file or SETTINGS_FILE

    # records

    @property
    def records(self):
        return Records(self.record_dir, kind=Network)

    def read(self, name):
        return self.records.load(name)

    def require(self, name):
        net = self.read(name)
        if net is None:
            raise ValidationError("network %s is not on this host: run nimbus.cloud.network here first" % name)
        return net

    def list(self):
        return self.records.load_all()

    def store(self, name):
        return ipam_lib.NetworkStore(os.path.join(self.state_dir, name), name, check_mode=self.runner.check_mode)

    def settings(self):
        return load_settings(self.settings_file)

    def paths(self, net):
        return dhcp_paths(net.name, self.state_dir)

    # the kernel

    def links(self):
        return netdev.read_links(self.runner)

    def link_specs(self, net):
        return link_specs(net, self.settings())

    def plan_links(self, net, links):
        steps = []
        for spec in self.link_specs(net):
            steps += netdev.plan_link(spec, links.get(spec.name))
        if net.type == "vxlan":
            have = netdev.read_flood(self.runner, net.member) if net.member in links else set()
            steps += netdev.plan_flood(net.member, have, net.peers)
        return steps

    def snapshot(self, name, deleting=False):
        """The network's record and links; for a delete also its IPAM ports and DHCP."""
        record = self.read(name)
        snap = NetworkSnapshot(record=record, links=self.links(), others=[n for n in self.list() if n.name != name])
        if record is None:
            return snap
        if record.member and record.type == "vxlan" and record.member in snap.links:
            snap.flood = netdev.read_flood(self.runner, record.member)
        if deleting:
            store = self.store(name)
            if store.exists():
                snap.ports = [p.name for p in store.load().ports.values() if p.device_owner != "network:dhcp"]
            snap.state_dir = os.path.isdir(store.directory)
            snap.dhcp = self.dhcp_state(record, snap.links)
        return snap

    # DHCP on the network node

    def dhcp_active(self, net):
        return self.runner.read(["systemctl", "is-active", "--quiet", DHCP_UNIT % net.name], check_rc=False).ok

    def dhcp_state(self, net, links=None):
        ns = dhcp_namespace(net.name)
        links = self.links() if links is None else links
        present = ns in netdev.read_namespaces(self.runner)
        paths = self.paths(net)
        files = {key: read_text(paths[key]) for key in DHCP_FILES}
        return DhcpState(
            namespace=present,
            ns_links=netdev.read_links(self.runner, netns=ns) if present else {},
            addresses=netdev.read_addresses(self.runner, DHCP_IFNAME, netns=ns) if present else [],
            veth=links.get(dhcp_veth(net)), active=self.dhcp_active(net),
            files={key: text for key, text in files.items() if text is not None})
