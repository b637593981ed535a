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
``/etc/nimbus/floating-ips/<name>.json``. The NAT table's chains carry the
digest of each rule as its comment (``_nftables.Table``), so a rule changed or
deleted by hand inside the table is seen and the chain rewritten.

The host is read once into a :class:`Kernel` snapshot and the IPAM of the
networks a task touches into :class:`Reservations`; the planners
(:func:`plan_router`, :func:`plan_router_absent`, :func:`plan_floating_ip`,
:func:`plan_floating_ip_absent`) are pure and return a ``_resource.Plan``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
from dataclasses import asdict, dataclass, field

from ansible_collections.nimbus.cloud.plugins.module_utils import _ipam as ipam_lib
from ansible_collections.nimbus.cloud.plugins.module_utils import _netdev as netdev
from ansible_collections.nimbus.cloud.plugins.module_utils import _network as nw
from ansible_collections.nimbus.cloud.plugins.module_utils import _nftables as nft
from ansible_collections.nimbus.cloud.plugins.module_utils._errors import ValidationError
from ansible_collections.nimbus.cloud.plugins.module_utils._files import Records
from ansible_collections.nimbus.cloud.plugins.module_utils._names import validate_name
from ansible_collections.nimbus.cloud.plugins.module_utils._resource import (
    Call, Command, Plan, RemoveFile, RemoveRecord, WriteRecord, desired)

ROUTER_DIR = "/etc/nimbus/routers"
FIP_DIR = "/etc/nimbus/floating-ips"
NAT_TABLE = "nimbus-nat"
PREROUTING = "type nat hook prerouting priority dstnat; policy accept;"
POSTROUTING = "type nat hook postrouting priority srcnat; policy accept;"

ROUTER_UPDATABLE = ("project", "interfaces", "external_network", "external_fixed_ip", "enable_snat")
ROUTER_DEFAULTS = {"project": None, "interfaces": [], "external_network": "", "external_fixed_ip": None,
                   "enable_snat": True}
FIP_UPDATABLE = ("port_id", "fixed_ip", "project")
FIP_CREATE_ONLY = ("router", "floating_ip")


@dataclass
class Router:
    name: str
    id: str
    project: str | None = None
    enable_snat: bool = True
    # {"network", "subnet", "ip", "prefixlen", "port_id", "nexthop"} or None
    gateway: dict | None = None
    # [{"network", "subnet", "ip", "prefixlen", "port_id", "cidr"}], sorted by network
    interfaces: list = field(default_factory=list)

    @property
    def namespace(self):
        return "nimbus-router-" + self.name

    def attributes(self):
        """The router as a task states it (see :data:`ROUTER_UPDATABLE`)."""
        return {"project": self.project, "enable_snat": self.enable_snat,
                "interfaces": [{"network": i["network"], "subnet": i["subnet"]} for i in self.interfaces],
                "external_network": self.gateway["network"] if self.gateway else "",
                "external_fixed_ip": self.gateway["ip"] if self.gateway else None}

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

    def attributes(self):
        return {"router": self.router, "floating_ip": self.floating_ip, "port_id": self.port_id,
                "fixed_ip": self.fixed_ip, "project": self.project}

    def view(self):
        return asdict(self)


@dataclass
class Kernel:
    """What the host holds of one router: its namespace, the host ends of its veths, its NAT table."""

    namespace: bool = False
    forwarding: bool = False
    links: dict = field(default_factory=dict)  # in the namespace: name -> netdev.Link
    addresses: dict = field(default_factory=dict)  # in the namespace: link name -> ["10.0.0.1/24"]
    default_route: list = field(default_factory=list)  # gateway addresses of the default routes
    host_links: dict = field(default_factory=dict)
    nat: nft.Table = None
    leftover: str | None = None  # a NAT script older releases kept beside the record

    def __post_init__(self):
        if self.nat is None:
            self.nat = nft.Table("ip", NAT_TABLE)


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


def validate_router_name(name):
    return validate_name(name, "router")


def _address(value, where):
    try:
        address = ipaddress.ip_address(str(value).strip())
    except ValueError:
        raise ValidationError("%s: %r is not an IP address" % (where, value))
    if address.version != 4:
        raise ValidationError("%s: %s is IPv6; only IPv4 is supported so far" % (where, address))
    return str(address)


# --- what a task asks for ---------------------------------------------------------

def router_task(params):
    """The router attributes a task gives, normalised (interfaces sorted by network, one per network)."""
    task = {k: params[k] for k in ROUTER_UPDATABLE if params.get(k) is not None}
    if "interfaces" in task:
        seen = set()
        for index, leg in enumerate(task["interfaces"]):
            if leg["network"] in seen:
                raise ValidationError("interfaces[%d]: the router already joins a subnet of %s (one per network)"
                                      % (index, leg["network"]))
            seen.add(leg["network"])
        task["interfaces"] = sorted(({"network": leg["network"], "subnet": leg["subnet"]}
                                     for leg in task["interfaces"]), key=lambda leg: leg["network"])
    if task.get("external_fixed_ip"):
        task["external_fixed_ip"] = _address(task["external_fixed_ip"], "external_fixed_ip")
    return task


def desired_router(name, current, task):
    """The router's attributes after the task: given ones over current ones (or the defaults)."""
    attrs = desired("router", name, current.attributes() if current else None, task, defaults=ROUTER_DEFAULTS)
    gateway_moves = "external_network" in task and current is not None \
        and task["external_network"] != current.attributes()["external_network"]
    if gateway_moves and "external_fixed_ip" not in task:
        # The kept address belongs to the network the gateway leaves.
        attrs["external_fixed_ip"] = None
    if not attrs["external_network"]:
        if task.get("external_fixed_ip"):
            raise ValidationError("external_fixed_ip needs external_network")
        attrs["external_fixed_ip"] = None
    return attrs


def router_networks(current, params):
    """Every network whose IPAM a router task may change (locked together, in order)."""
    names = {leg["network"] for leg in params.get("interfaces") or ()}
    if params.get("external_network"):
        names.add(params["external_network"])
    if current is not None:
        names.update(leg["network"] for leg in current.interfaces)
        if current.gateway:
            names.add(current.gateway["network"])
    return sorted(names)


def floating_ip_task(params, current, router):
    """The floating IP attributes a task gives; ``port: {}`` leads the address nowhere."""
    task = {k: params[k] for k in ("router", "project") if params.get(k) is not None}
    if params.get("floating_ip"):
        task["floating_ip"] = _address(params["floating_ip"], "floating_ip")
    port = params.get("port")
    if port is None:
        if params.get("fixed_ip"):
            raise ValidationError("fixed_ip needs port (the port whose address it is)")
        return task
    if not port:
        if params.get("fixed_ip"):
            raise ValidationError("fixed_ip needs a port; port: {} disassociates the floating IP")
        task.update(port_id=None, fixed_ip=None)
        return task
    if not port.get("id") or not port.get("fixed_ips"):
        raise ValidationError("port must be what nimbus.cloud.port returns (with id and fixed_ips)")
    joined = {leg["network"] for leg in router.interfaces} if router else set()
    label = port.get("name") or port["id"]
    if router is not None and port.get("network") not in joined:
        raise ValidationError("port %s is on network %s, which router %s does not join (it joins: %s)"
                              % (label, port.get("network"), router.name, ", ".join(sorted(joined)) or "none"))
    ips = [str(ipaddress.ip_address(f["ip"])) for f in port["fixed_ips"]]
    if params.get("fixed_ip"):
        fixed_ip = _address(params["fixed_ip"], "fixed_ip")
        if fixed_ip not in ips:
            raise ValidationError("fixed_ip %s is not an address of port %s (%s)" % (fixed_ip, label, ", ".join(ips)))
    elif current is not None and current.port_id == port["id"] and current.fixed_ip in ips:
        fixed_ip = current.fixed_ip
    else:
        fixed_ip = ips[0]
    task.update(port_id=port["id"], fixed_ip=fixed_ip)
    return task


# --- IPAM ---------------------------------------------------------------------------

class Reservations:
    """The IPAM of the networks a task touches: loaded once, changed in memory, saved by plan steps."""

    def __init__(self, networks):
        self.networks = networks  # a _network.NetworkHost
        self._loaded = {}  # network -> [store, ipam, [what changed]]

    @contextlib.contextmanager
    def locked(self, names, check_mode=False):
        """Hold the IPAM lock of each network for the block, in name order (two runs never wait on each other).

        A check run takes no lock: it saves nothing, and taking one would create the lock file.
        """
        with contextlib.ExitStack() as stack:
            if not check_mode:
                for name in sorted(set(names)):
                    store = self.networks.store(name)
                    if store.exists():
                        stack.enter_context(store.transaction())
            yield self

    def ipam(self, network):
        if network not in self._loaded:
            store = self.networks.store(network)
            if not store.exists():
                raise ValidationError("network %s has no subnet on this host" % network)
            self._loaded[network] = [store, store.load(), []]
        return self._loaded[network][1]

    def reserve(self, network, port_name, fixed_ips, **attrs):
        """Hold an IPAM port; returns (port, its subnet)."""
        ipam = self.ipam(network)
        before = ipam.ports.get(port_name)
        before = before.record() if before else None
        port = ipam.plan_port(port_name, fixed_ips=fixed_ips, port_security=False, **attrs)
        if port.record() != before:
            self._loaded[network][2].append("reserve %s" % port_name)
        return port, ipam.subnet(port.fixed_ips[0]["subnet"])

    def release(self, network, port_name):
        if network not in self._loaded and not self.networks.store(network).exists():
            return
        if self.ipam(network).remove_port(port_name) is not None:
            self._loaded[network][2].append("release %s" % port_name)

    def steps(self):
        return [Call("%s on %s" % (", ".join(changes), network), store.save, (ipam,))
                for network, (store, ipam, changes) in sorted(self._loaded.items()) if changes]


# --- planners -------------------------------------------------------------------------

def nat_rules(router, fips):
    """The rules of the NAT table's two chains: floating IPs 1:1 first, then SNAT of the internal subnets."""
    bound = sorted((f for f in fips if f.fixed_ip), key=lambda f: ipaddress.ip_address(f.floating_ip))
    prerouting = ["ip daddr %s dnat to %s" % (f.floating_ip, f.fixed_ip) for f in bound]
    postrouting = []
    if router.gateway:
        out = qg(router.gateway["port_id"])
        postrouting += ['oifname "%s" ip saddr %s snat to %s' % (out, f.fixed_ip, f.floating_ip) for f in bound]
        if router.enable_snat and router.interfaces:
            cidrs = ", ".join(str(n) for n in sorted(ipaddress.ip_network(i["cidr"]) for i in router.interfaces))
            postrouting.append('oifname "%s" ip saddr { %s } snat to %s' % (out, cidrs, router.gateway["ip"]))
    return {"prerouting": prerouting, "postrouting": postrouting}


def _interfaces(addresses):
    return {ipaddress.ip_interface(a) for a in addresses}


def plan_kernel(router, fips, kernel, networks):
    """Steps that make the namespace, veths, addresses, default route and NAT match the records."""
    ns = router.namespace
    steps = []
    if not kernel.namespace:
        steps.append(Command(["ip", "netns", "add", ns]))
    if not kernel.namespace or not kernel.forwarding:
        steps.append(Command(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1"]))
    ns_links = kernel.links if kernel.namespace else {}
    legs = [(leg, qr(leg["port_id"]), nr(leg["port_id"]), []) for leg in router.interfaces]
    if router.gateway:
        g = router.gateway
        legs.append((g, qg(g["port_id"]), ng(g["port_id"]), ["%s/32" % f.floating_ip for f in fips]))
    announce = []
    for leg, inside, outside, extra in legs:
        net = networks[leg["network"]]
        spec = netdev.LinkSpec(name=outside, kind="veth", mtu=net.mtu, master=net.bridge, peer=inside,
                               peer_netns=ns)
        inner = ns_links.get(inside)
        if outside not in kernel.host_links or inner is None:
            if outside in kernel.host_links:
                steps.append(Command(["ip", "link", "del", outside]))
            steps += netdev.plan_link(spec, None)
            inner = None
        else:
            steps += netdev.plan_link(spec, kernel.host_links[outside])
        if inner is None or inner.mtu != net.mtu or not inner.up:
            steps.append(Command(["ip", "-n", ns, "link", "set", inside, "mtu", net.mtu, "up"]))
        wanted = _interfaces(["%s/%d" % (leg["ip"], leg["prefixlen"])] + extra)
        have = _interfaces(kernel.addresses.get(inside, [])) if inner is not None else set()
        for address in sorted(wanted - have):
            steps.append(Command(["ip", "-n", ns, "addr", "add", address, "dev", inside]))
            announce.append((inside, address.ip))
        steps += [Command(["ip", "-n", ns, "addr", "del", a, "dev", inside]) for a in sorted(have - wanted)]
    if "lo" not in ns_links or not ns_links["lo"].up:
        steps.append(Command(["ip", "-n", ns, "link", "set", "lo", "up"]))
    routes = kernel.default_route if kernel.namespace else []
    nexthop = router.gateway.get("nexthop") if router.gateway else None
    if not nexthop and routes:
        # Before the gateway's link goes: the kernel drops the route with it, and a later delete would fail.
        steps.append(Command(["ip", "-n", ns, "route", "del", "default"]))
    inside_names = {leg[1] for leg in legs}
    steps += [Command(["ip", "-n", ns, "link", "del", name]) for name in sorted(ns_links)
              if name.startswith(("qr-", "qg-")) and name not in inside_names]
    if nexthop and routes != [nexthop]:
        steps.append(Command(["ip", "-n", ns, "route", "replace", "default", "via", nexthop]))
    # Neighbours still hold the MAC of the interface that had these addresses
    # before (a recreated namespace): tell them, as Neutron does.
    steps += [Command(["ip", "netns", "exec", ns, "arping", "-q", "-U", "-c", "1", "-w", "1", "-I", dev, address],
                      check_rc=False) for dev, address in announce]
    table = kernel.nat if kernel.namespace else nft.Table("ip", NAT_TABLE)
    rules = nat_rules(router, fips)
    lines = table.chain_lines("prerouting", rules["prerouting"], header=PREROUTING)
    lines += table.chain_lines("postrouting", rules["postrouting"], header=POSTROUTING)
    return steps + nft.transaction(lines, netns=ns)


def plan_router(name, current, task, fips, networks, reservations, kernel, records):
    """Records, IPAM ports and kernel state of router ``name`` after ``task`` (see :func:`router_task`)."""
    attrs = desired_router(name, current, task)
    before = current.attributes()["external_network"] if current else ""
    if attrs["external_network"]:
        if not networks[attrs["external_network"]].external:
            raise ValidationError("network %s is not external (create it with external: true)"
                                  % attrs["external_network"])
    if before and before != attrs["external_network"] and fips:
        raise ValidationError("router %s: floating IPs use its gateway on %s; delete them before changing it"
                              % (name, before))
    router = Router(name=name, id=ipam_lib.derive_id("router", name), project=attrs["project"],
                    enable_snat=attrs["enable_snat"])
    port_name = router_port_name(name)
    for leg in attrs["interfaces"]:
        subnet = reservations.ipam(leg["network"]).subnet(leg["subnet"])
        if subnet is None:
            raise ValidationError("network %s has no subnet %s" % (leg["network"], leg["subnet"]))
        if not subnet.gateway:
            raise ValidationError("subnet %s has no gateway address for the router to hold" % subnet.name)
        port, subnet = reservations.reserve(leg["network"], port_name, [{"subnet": subnet.name, "ip": subnet.gateway}],
                                            device_owner="network:router_interface", device_id=name,
                                            project=router.project)
        cidr = ipaddress.ip_network(subnet.cidr)
        router.interfaces.append({"network": leg["network"], "subnet": subnet.name, "ip": subnet.gateway,
                                  "prefixlen": cidr.prefixlen, "port_id": port.id, "cidr": str(cidr)})
    joined = {leg["network"] for leg in attrs["interfaces"]}
    for leg in (current.interfaces if current else []):
        if leg["network"] not in joined:
            reservations.release(leg["network"], port_name)
    gateway_port = router_port_name(name, gateway=True)
    if before and before != attrs["external_network"]:
        reservations.release(before, gateway_port)
    if attrs["external_network"]:
        fixed = [{"ip": attrs["external_fixed_ip"]}] if attrs["external_fixed_ip"] else None
        port, subnet = reservations.reserve(attrs["external_network"], gateway_port, fixed,
                                            device_owner="network:router_gateway", device_id=name,
                                            project=router.project)
        router.gateway = {"network": attrs["external_network"], "subnet": subnet.name, "ip": port.fixed_ips[0]["ip"],
                          "prefixlen": ipaddress.ip_network(subnet.cidr).prefixlen, "port_id": port.id,
                          "nexthop": subnet.gateway}
    steps = reservations.steps()
    if current is None or asdict(current) != asdict(router):
        steps.append(WriteRecord(records, name, asdict(router)))
    if kernel.leftover:
        steps.append(RemoveFile(kernel.leftover))
    steps += plan_kernel(router, fips, kernel, networks)
    return Plan(steps, current.view() if current else {}, router.view())


def plan_router_absent(current, fips, reservations, kernel, records):
    if fips:
        raise ValidationError("router %s is used by floating IPs %s; delete them first"
                              % (current.name, ", ".join(sorted(f.name for f in fips))))
    steps = []
    legs = current.interfaces + ([current.gateway] if current.gateway else [])
    # Host ends first: a namespace frees its veths only later, asynchronously.
    steps += [Command(["ip", "link", "del", name]) for leg in legs for name in (nr(leg["port_id"]), ng(leg["port_id"]))
              if name in kernel.host_links]
    if kernel.namespace:
        steps.append(Command(["ip", "netns", "del", current.namespace]))
    for leg in current.interfaces:
        reservations.release(leg["network"], router_port_name(current.name))
    if current.gateway:
        reservations.release(current.gateway["network"], router_port_name(current.name, gateway=True))
    steps += reservations.steps()
    steps.append(RemoveRecord(records, current.name))
    if kernel.leftover:
        steps.append(RemoveFile(kernel.leftover))
    return Plan(steps, current.view(), {})


def plan_floating_ip(name, current, task, router, others, networks, reservations, kernel, records):
    """Record, IPAM port and the router's NAT of floating IP ``name`` (``others``: the router's other ones)."""
    if current is None and "router" not in task:
        raise ValidationError("router is required to create floating IP %s" % name)
    attrs = desired("floating IP", name, current.attributes() if current else None, task,
                    create_only=FIP_CREATE_ONLY, defaults={"port_id": None, "fixed_ip": None, "project": None})
    if router is None or not router.gateway:
        raise ValidationError("router %s does not exist or has no external gateway" % attrs["router"])
    fixed = [{"ip": attrs["floating_ip"]}] if attrs.get("floating_ip") else None
    port, _subnet = reservations.reserve(router.gateway["network"], fip_port_name(name), fixed,
                                         device_owner="network:floatingip", device_id=name, project=attrs["project"])
    fip = FloatingIp(name=name, router=router.name, network=router.gateway["network"],
                     floating_ip=port.fixed_ips[0]["ip"], port_id=attrs["port_id"], fixed_ip=attrs["fixed_ip"],
                     project=attrs["project"])
    steps = reservations.steps()
    if current is None or current != fip:
        steps.append(WriteRecord(records, name, asdict(fip)))
    fips = sorted(others + [fip], key=lambda f: f.name)
    steps += plan_kernel(router, fips, kernel, networks)
    return Plan(steps, current.view() if current else {}, fip.view())


def plan_floating_ip_absent(current, router, others, networks, reservations, kernel, records):
    steps = [RemoveRecord(records, current.name)]
    reservations.release(current.network, fip_port_name(current.name))
    steps += reservations.steps()
    if router is not None:
        steps += plan_kernel(router, others, kernel, networks)
    return Plan(steps, current.view(), {})


# --- the host -------------------------------------------------------------------------

def network_host(runner):
    return nw.NetworkHost(runner)


class RouterHost:
    """Routers and floating IPs on the network node the module runs on: records and snapshots."""

    def __init__(self, runner, networks=None, router_dir=None, fip_dir=None):
        self.runner = runner
        self.networks = networks or network_host(runner)
        self.routers = Records(router_dir or ROUTER_DIR, kind=Router)
        self.floating_ips = Records(fip_dir or FIP_DIR, kind=FloatingIp)
        self.reservations = Reservations(self.networks)

    def fips(self, router, without=None):
        return [f for f in self.floating_ips.load_all() if f.router == router and f.name != without]

    def network_map(self, router):
        legs = router.interfaces + ([router.gateway] if router.gateway else [])
        return {leg["network"]: self.networks.require(leg["network"]) for leg in legs}

    def networks_of(self, names):
        return {name: self.networks.require(name) for name in names}

    def kernel(self, router):
        ns = router.namespace
        listed = json.loads(self.runner.read(["ip", "-j", "netns", "list"]).stdout or "[]")
        leftover = os.path.join(self.routers.directory, router.name + ".nft")
        kernel = Kernel(host_links=self.networks.links(), leftover=leftover if os.path.exists(leftover) else None)
        if not any(n.get("name") == ns for n in listed):
            return kernel
        kernel.namespace = True
        forwarding = self.runner.read(["ip", "netns", "exec", ns, "sysctl", "-n", "net.ipv4.ip_forward"],
                                      check_rc=False)
        kernel.forwarding = forwarding.ok and forwarding.stdout.strip() == "1"
        kernel.links = netdev.read_links(self.runner, netns=ns)
        kernel.addresses = {name: netdev.read_addresses(self.runner, name, netns=ns) for name in kernel.links}
        route = self.runner.read(["ip", "-n", ns, "-j", "-4", "route", "show", "default"], check_rc=False)
        kernel.default_route = [r.get("gateway") for r in json.loads(route.stdout or "[]")] if route.ok else []
        kernel.nat = nft.read_table(self.runner, "ip", NAT_TABLE, netns=ns)
        return kernel
