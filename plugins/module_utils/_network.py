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

Host-wide settings (physical networks, the VXLAN endpoint) come from
``/etc/nimbus/bridges.json``, written by the bridges role.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field

from ansible_collections.nimbus.cloud.plugins.module_utils import _ipam as ipam_lib
from ansible_collections.nimbus.cloud.plugins.module_utils import _netdev as netdev
from ansible_collections.nimbus.cloud.plugins.module_utils._errors import NimbusError, ValidationError
from ansible_collections.nimbus.cloud.plugins.module_utils._files import Records, atomic_write, read_text, remove
from ansible_collections.nimbus.cloud.plugins.module_utils._names import validate_name

SETTINGS_FILE = "/etc/nimbus/bridges.json"
RECORD_DIR = "/etc/nimbus/networks"
STATE_DIR = "/var/lib/nimbus/networks"
TYPES = ("flat", "vlan", "vxlan")
VXLAN_OVERHEAD = 50
SEGMENT_RANGES = {"vlan": (1, 4094), "vxlan": (1, 16777215)}
DHCP_IFNAME = "dhcp0"
DHCP_UNIT = "nimbus-dhcp@%s.service"
LEASE_TIME = "86400s"


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
        peers = sorted({str(p) for p in vxlan_peers or ()} - {local_ip})
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


def immutable_changes(old, new):
    """Attributes a network cannot change in place."""
    return ["%s %s -> %s" % (attr, getattr(old, attr), getattr(new, attr))
            for attr in ("type", "segmentation_id", "physical_network")
            if getattr(old, attr) != getattr(new, attr)]


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


class NetworkHost:
    """Reads and changes networks on the host the module runs on."""

    def __init__(self, runner, record_dir=RECORD_DIR, state_dir=STATE_DIR, settings_file=SETTINGS_FILE):
        self.runner = runner
        self.record_dir = record_dir
        self.state_dir = state_dir
        self.settings_file = settings_file

    # records

    @property
    def records(self):
        return Records(self.record_dir)

    def read(self, name):
        data = self.records.read(name)
        if data is None:
            return None
        return Network(**{k: data[k] for k in Network.__dataclass_fields__ if k in data})

    def require(self, name):
        net = self.read(name)
        if net is None:
            raise ValidationError("network %s is not on this host: run nimbus.cloud.network here first" % name)
        return net

    def list(self):
        return [n for n in (self.read(name) for name in self.records.names()) if n is not None]

    def store(self, name):
        return ipam_lib.NetworkStore(os.path.join(self.state_dir, name), name)

    # the kernel

    def links(self):
        return netdev.read_links(self.runner)

    def link_specs(self, net):
        settings = load_settings(self.settings_file)
        specs = []
        if net.owns_bridge:
            specs.append(netdev.LinkSpec(name=net.bridge, kind="bridge", mtu=net.mtu, nf_call_iptables=True))
        if net.type == "vxlan":
            specs.append(netdev.LinkSpec(name=net.member, kind="vxlan", mtu=net.mtu, master=net.bridge,
                                         vxlan_id=net.segmentation_id, local=net.local_ip,
                                         dstport=int((settings.get("vxlan") or {}).get("port") or netdev.VXLAN_PORT),
                                         underlay=(settings.get("vxlan") or {}).get("interface")))
        elif net.type == "vlan":
            trunk = settings["physical_networks"][net.physical_network]["interface"]
            specs.append(netdev.LinkSpec(name=net.member, kind="vlan", mtu=net.mtu, master=net.bridge,
                                         vlan_id=net.segmentation_id, parent=trunk))
        return specs

    def plan_links(self, net, links):
        steps = []
        for spec in self.link_specs(net):
            steps += netdev.plan_link(spec, links.get(spec.name))
        if net.type == "vxlan":
            have = netdev.read_flood(self.runner, net.member) if net.member in links else set()
            steps += netdev.plan_flood(net.member, have, net.peers)
        return steps

    def kernel_view(self, net, links):
        """What the kernel holds of the network, for the diff."""
        bridge = links.get(net.bridge)
        member = links.get(net.member) if net.member else None
        view = {"bridge": net.bridge if bridge else None, "mtu": bridge.mtu if bridge else None}
        if net.type == "vxlan" and member is not None:
            view["vxlan_peers"] = sorted(netdev.read_flood(self.runner, net.member))
        return view

    def ports_in_use(self, net, links):
        """Devices plugged into the network's bridge besides its own member and DHCP link."""
        own = {net.member, dhcp_veth(net)}
        used = sorted(n for n, link in links.items() if link.master == net.bridge and n not in own)
        if not net.owns_bridge:
            return []  # a provider bridge is shared; its uplink and other flat users are not ours to judge
        return [n for n in used if not n.startswith("nr-")]

    def apply(self, net, steps):
        """Run the planned steps, then record the network; a failure removes the links this call added."""
        netdev.run_steps(self.runner, steps)
        self.runner.apply("write %s" % self.records.path(net.name), self.records.write, net.name, net.record())

    def delete(self, net, links):
        if net.owns_bridge:
            for name in (net.member, net.bridge):
                if name and name in links:
                    self.runner.change(["ip", "link", "del", name])
        self.runner.apply("remove %s" % self.records.path(net.name), self.records.remove, net.name)

    # DHCP on the network node

    def dhcp_state(self, net):
        ns = dhcp_namespace(net.name)
        namespaces = self.runner.read(["ip", "-j", "netns", "list"]).stdout
        present = any(n.get("name") == ns for n in json.loads(namespaces or "[]"))
        addresses = netdev.read_addresses(self.runner, DHCP_IFNAME, netns=ns) if present else []
        unit = DHCP_UNIT % net.name
        active = self.runner.read(["systemctl", "is-active", "--quiet", unit], check_rc=False).ok
        return {"namespace": present, "addresses": addresses, "active": active}

    def dhcp_wanted(self, net, ipam):
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

    def sync_dhcp(self, net, ipam, hosts_changed=False):
        """Bring namespace, addresses, config and dnsmasq in line with the IPAM; True when anything changed."""
        wanted = self.dhcp_wanted(net, ipam)
        state = self.dhcp_state(net)
        paths = dhcp_paths(net.name, self.state_dir)
        ns = dhcp_namespace(net.name)
        unit = DHCP_UNIT % net.name
        if wanted is None:
            return self.stop_dhcp(net, state)
        changed = False
        links = self.links()
        veth = dhcp_veth(net)
        if not state["namespace"]:
            self.runner.change(["ip", "netns", "add", ns])
            changed = True
        if veth not in links:
            self.runner.change(["ip", "link", "add", veth, "mtu", str(net.mtu), "type", "veth", "peer", "name",
                                DHCP_IFNAME, "netns", ns])
            changed = True
        steps = netdev.plan_link(netdev.LinkSpec(name=veth, kind="veth", mtu=net.mtu, master=net.bridge),
                                 links.get(veth) or netdev.Link(veth, "veth", 0, False))
        if steps:
            netdev.run_steps(self.runner, steps)
            changed = True
        if not state["namespace"] or veth not in links:
            for argv in (["ip", "-n", ns, "link", "set", "lo", "up"],
                         ["ip", "-n", ns, "link", "set", DHCP_IFNAME, "mtu", str(net.mtu), "up"]):
                self.runner.change(argv)
        for addr in sorted(set(wanted) - set(state["addresses"])):
            self.runner.change(["ip", "-n", ns, "addr", "add", addr, "dev", DHCP_IFNAME])
            changed = True
        for addr in sorted(set(state["addresses"]) - set(wanted)):
            self.runner.change(["ip", "-n", ns, "addr", "del", addr, "dev", DHCP_IFNAME])
            changed = True
        conf_changed = self._write(paths["conf"], render_dnsmasq_conf(net, ipam.subnets, paths))
        opts_changed = self._write(paths["opts"], render_dnsmasq_opts(net, ipam.subnets))
        changed = changed or conf_changed or opts_changed
        if not state["active"] or conf_changed:
            self.runner.change(["systemctl", "restart", unit])
            changed = True
        elif opts_changed or hosts_changed:
            self.reload_dhcp(net)
        return changed

    def reload_dhcp(self, net):
        """dnsmasq rereads its hosts and options files on SIGHUP."""
        unit = DHCP_UNIT % net.name
        if self.runner.read(["systemctl", "is-active", "--quiet", unit], check_rc=False).ok:
            self.runner.change(["systemctl", "reload", unit])

    def _write(self, path, text):
        if read_text(path) == text:
            return False
        self.runner.apply("write %s" % path, atomic_write, path, text)
        return True

    def stop_dhcp(self, net, state=None):
        state = state or self.dhcp_state(net)
        changed = False
        if state["active"]:
            self.runner.change(["systemctl", "stop", DHCP_UNIT % net.name])
            changed = True
        # The veth first: deleting a namespace frees its end of the pair (and so
        # ours) only later, asynchronously.
        veth = dhcp_veth(net)
        if veth in self.links():
            self.runner.change(["ip", "link", "del", veth])
            changed = True
        if state["namespace"]:
            self.runner.change(["ip", "netns", "del", dhcp_namespace(net.name)])
            changed = True
        paths = dhcp_paths(net.name, self.state_dir)
        for key in ("conf", "opts", "leases", "pid"):
            if os.path.exists(paths[key]):
                self.runner.apply("remove %s" % paths[key], remove, paths[key])
                changed = True
        return changed

    def forget_ipam(self, net):
        directory = os.path.join(self.state_dir, net.name)
        if os.path.isdir(directory):
            self.runner.apply("remove %s" % directory, shutil.rmtree, directory)
            return True
        return False
