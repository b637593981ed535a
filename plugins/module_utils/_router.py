# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Routers and floating IPs on the network node.

A router is namespace ``nimbus-router-<name>`` with:

- an interface per subnet: veth ``nr-<port id8>`` in the network's bridge,
  ``qr-<port id8>`` in the namespace holding the subnet's gateway address
  (an IPAM port with device_owner ``network:router_interface``);
- optionally an external gateway: veth ``ng-<port id8>`` in the external
  network's bridge, ``qg-<port id8>`` in the namespace with an address from
  the external subnet (``network:router_gateway``) and the default route;
- table ``ip nimbus-nat`` in the namespace: 1:1 DNAT/SNAT for each floating
  IP (whose address also sits on ``qg-`` as a /32, so it answers ARP), then
  SNAT of the internal subnets to the gateway address.

Records: ``/etc/nimbus/routers/<name>.json`` and
``/etc/nimbus/floating-ips/<name>.json``. The NAT table is rendered from the
router's record and every floating IP record that names it, and replaced in one
nft transaction; the last script applied is kept beside the record, so a run
with nothing new does not touch it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

from ansible_collections.nimbus.cloud.plugins.module_utils import _ipam as ipam_lib
from ansible_collections.nimbus.cloud.plugins.module_utils import _netdev as netdev
from ansible_collections.nimbus.cloud.plugins.module_utils._errors import ValidationError
from ansible_collections.nimbus.cloud.plugins.module_utils._files import Records, atomic_write, read_text, remove
from ansible_collections.nimbus.cloud.plugins.module_utils._names import validate_name

ROUTER_DIR = "/etc/nimbus/routers"
FIP_DIR = "/etc/nimbus/floating-ips"
NAT_TABLE = "nimbus-nat"


@dataclass
class Router:
    name: str
    id: str
    project: str | None = None
    enable_snat: bool = True
    # {"network", "subnet", "ip", "prefixlen", "port_id", "nexthop"} or None
    gateway: dict | None = None
    # [{"network", "subnet", "ip", "prefixlen", "port_id", "cidr"}], sorted by subnet
    interfaces: list = field(default_factory=list)

    @property
    def namespace(self):
        return "nimbus-router-" + self.name

    def view(self):
        return {"id": self.id, "name": self.name, "project": self.project, "namespace": self.namespace,
                "enable_snat": self.enable_snat,
                "external_gateway": ({k: self.gateway[k] for k in ("network", "subnet", "ip")}
                                     if self.gateway else None),
                "interfaces": [{k: i[k] for k in ("network", "subnet", "ip", "port_id")} for i in self.interfaces]}


@dataclass
class FloatingIp:
    name: str
    router: str
    network: str
    floating_ip: str
    port_id: str | None = None
    fixed_ip: str | None = None
    project: str | None = None

    def view(self):
        return asdict(self)


def router_port_name(router, gateway=False):
    return "router-%s%s" % (router, "-gw" if gateway else "")


def fip_port_name(name):
    return "fip-" + name


def qr(port_id):
    return "qr-" + port_id[:8]


def nr(port_id):
    return "nr-" + port_id[:8]


def qg(port_id):
    return "qg-" + port_id[:8]


def ng(port_id):
    return "ng-" + port_id[:8]


def render_nat(router, fips):
    """The whole NAT table of a router's namespace, as one nft script that replaces it."""
    lines = ["table ip %s" % NAT_TABLE, "delete table ip %s" % NAT_TABLE, "table ip %s {" % NAT_TABLE,
             "  chain prerouting {", "    type nat hook prerouting priority dstnat; policy accept;"]
    bound = sorted((f for f in fips if f.fixed_ip), key=lambda f: f.floating_ip)
    lines += ["    ip daddr %s dnat to %s" % (f.floating_ip, f.fixed_ip) for f in bound]
    lines += ["  }", "  chain postrouting {", "    type nat hook postrouting priority srcnat; policy accept;"]
    if router.gateway:
        out = qg(router.gateway["port_id"])
        lines += ['    oifname "%s" ip saddr %s snat to %s' % (out, f.fixed_ip, f.floating_ip) for f in bound]
        if router.enable_snat and router.interfaces:
            cidrs = ", ".join(sorted(i["cidr"] for i in router.interfaces))
            lines.append('    oifname "%s" ip saddr { %s } snat to %s' % (out, cidrs, router.gateway["ip"]))
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


class RouterHost:
    """Routers and floating IPs on the network node the module runs on."""

    def __init__(self, runner, networks, router_dir=ROUTER_DIR, fip_dir=FIP_DIR):
        self.runner = runner
        self.networks = networks  # a _network.NetworkHost
        self.router_dir = router_dir
        self.fip_dir = fip_dir

    # records

    def read(self, name):
        data = Records(self.router_dir).read(name)
        return Router(**data) if data else None

    def fips(self, router=None):
        return [f for f in (FloatingIp(**d) for d in Records(self.fip_dir).all()) if router in (None, f.router)]

    def read_fip(self, name):
        data = Records(self.fip_dir).read(name)
        return FloatingIp(**data) if data else None

    def write(self, directory, name, data):
        records = Records(directory)
        self.runner.apply("write %s" % records.path(name), records.write, name, data)

    def forget(self, directory, name):
        for suffix in (".json", ".nft"):
            path = os.path.join(directory, name + suffix)
            if os.path.exists(path):
                self.runner.apply("remove %s" % path, remove, path)

    # addresses through IPAM

    def reserve(self, network, port_name, device_owner, device_id, fixed_ips, project=None):
        """Hold an IPAM port on ``network``; returns (port, subnet) without saving in check mode."""
        net = self.networks.require(network)
        store = self.networks.store(network)
        if not store.exists():
            raise ValidationError("network %s has no subnet on this host" % network)
        with store.transaction():
            ipam = store.load()
            before = ipam_lib.render_hosts(ipam)
            port = ipam.plan_port(port_name, fixed_ips=fixed_ips, device_owner=device_owner, device_id=device_id,
                                  project=project, port_security=False)
            if ipam_lib.render_hosts(ipam) != before:
                self.runner.apply("reserve %s on %s" % (port_name, network), store.save, ipam)
            subnet = ipam.subnet(port.fixed_ips[0]["subnet"])
        return net, port, subnet

    def release(self, network, port_name):
        store = self.networks.store(network)
        if not store.exists():
            return False
        with store.transaction():
            ipam = store.load()
            if ipam.remove_port(port_name) is None:
                return False
            self.runner.apply("release %s on %s" % (port_name, network), store.save, ipam)
        return True

    # the namespace

    def namespace_state(self, router):
        listed = self.runner.read(["ip", "-j", "netns", "list"]).stdout
        present = any(n.get("name") == router.namespace for n in json.loads(listed or "[]"))
        links = netdev.read_links(self.runner, netns=router.namespace) if present else {}
        addresses = {name: netdev.read_addresses(self.runner, name, netns=router.namespace) for name in links}
        return present, links, addresses

    def converge(self, router, fips):
        """Make namespace, interfaces, routes and NAT match the records; True when anything changed."""
        ns = router.namespace
        present, ns_links, addresses = self.namespace_state(router)
        host_links = self.networks.links()
        steps = []
        if not present:
            steps.append(["ip", "netns", "add", ns])
        steps.append(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1"])
        wanted_devs = {}
        announce = []
        legs = [(i, qr(i["port_id"]), nr(i["port_id"]), self.networks.require(i["network"])) for i in router.interfaces]
        if router.gateway:
            g = router.gateway
            legs.append((g, qg(g["port_id"]), ng(g["port_id"]), self.networks.require(g["network"])))
        for leg, inside, outside, net in legs:
            wanted = ["%s/%d" % (leg["ip"], leg["prefixlen"])]
            if leg is router.gateway:
                wanted += ["%s/32" % f.floating_ip for f in fips]
            wanted_devs[inside] = sorted(wanted)
            if outside not in host_links or inside not in ns_links:
                if outside in host_links:
                    steps.append(["ip", "link", "del", outside])
                steps.append(["ip", "link", "add", outside, "mtu", str(net.mtu), "type", "veth", "peer", "name",
                              inside, "netns", ns])
                steps += [["ip", "link", "set", outside, "master", net.bridge, "up"],
                          ["ip", "-n", ns, "link", "set", inside, "mtu", str(net.mtu), "up"]]
                have = []
            else:
                have = addresses.get(inside, [])
                if host_links[outside].master != net.bridge or not host_links[outside].up:
                    steps.append(["ip", "link", "set", outside, "master", net.bridge, "up"])
            added = [a for a in wanted_devs[inside] if a not in have]
            steps += [["ip", "-n", ns, "addr", "add", a, "dev", inside] for a in added]
            # Neighbours still hold the MAC of the interface that had these
            # addresses before (a recreated namespace): tell them, as Neutron does.
            announce += [(inside, a.split("/")[0]) for a in added]
            steps += [["ip", "-n", ns, "addr", "del", a, "dev", inside] for a in have if a not in wanted_devs[inside]]
        if not present or "lo" not in ns_links or not ns_links["lo"].up:
            steps.append(["ip", "-n", ns, "link", "set", "lo", "up"])
        for name in sorted(ns_links):
            if name.startswith(("qr-", "qg-")) and name not in wanted_devs:
                steps.append(["ip", "-n", ns, "link", "del", name])
        if router.gateway and router.gateway.get("nexthop"):
            route = self.runner.read(["ip", "-n", ns, "-j", "-4", "route", "show", "default"], check_rc=False)
            current = json.loads(route.stdout or "[]") if present and route.ok else []
            if [r.get("gateway") for r in current] != [router.gateway["nexthop"]]:
                steps.append(["ip", "-n", ns, "route", "replace", "default", "via", router.gateway["nexthop"]])
        elif present:
            route = self.runner.read(["ip", "-n", ns, "-j", "-4", "route", "show", "default"], check_rc=False)
            if route.ok and json.loads(route.stdout or "[]"):
                steps.append(["ip", "-n", ns, "route", "del", "default"])
        changed = any(s[:3] != ["ip", "netns", "exec"] for s in steps)
        for argv in steps:
            self.runner.change(argv)
        for dev, address in announce:
            self.runner.change(["ip", "netns", "exec", ns, "arping", "-q", "-U", "-c", "1", "-w", "1", "-I", dev,
                                address], check_rc=False)
        return self.sync_nat(router, fips, present) or changed

    def sync_nat(self, router, fips, present=True):
        script = render_nat(router, fips)
        saved = os.path.join(self.router_dir, router.name + ".nft")
        table = self.runner.read(["ip", "netns", "exec", router.namespace, "nft", "list", "table", "ip", NAT_TABLE],
                                 check_rc=False) if present else None
        if table is not None and table.ok and read_text(saved) == script:
            return False
        self.runner.change(["ip", "netns", "exec", router.namespace, "nft", "-f", "-"], data=script)

        def keep():
            os.makedirs(self.router_dir, mode=0o755, exist_ok=True)
            atomic_write(saved, script)
        self.runner.apply("keep %s" % saved, keep)
        return True

    def remove_namespace(self, router):
        present, ns_links, addresses = self.namespace_state(router)
        host_links = self.networks.links()
        changed = False
        # Host ends first: a namespace frees its veths only later, asynchronously.
        for leg in router.interfaces + ([router.gateway] if router.gateway else []):
            for name in (nr(leg["port_id"]), ng(leg["port_id"])):
                if name in host_links:
                    self.runner.change(["ip", "link", "del", name])
                    changed = True
        if present:
            self.runner.change(["ip", "netns", "del", router.namespace])
            changed = True
        return changed


def validate_router_name(name):
    return validate_name(name, "router")
