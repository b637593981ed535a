# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""IP address management: subnets, their pools, and the ports that hold addresses.

A network's records live on the host that serves its DHCP (the network
node), in one directory:

``subnets.json``
    the network's subnets, in creation order.
``hosts``
    dnsmasq's dhcp-hostsfile, and the reservation record: each port is a
    ``# nimbus-port {json}`` comment line, followed by the line dnsmasq
    reads (``mac,ip[,hostname]``) when the port has a MAC and a DHCP address.
``ipam.lock``
    flocked around every read-modify-write (:meth:`NetworkStore.transaction`).

Both files are replaced by rename, so dnsmasq and concurrent readers never
see half a file, and the lock makes two concurrent allocations see each
other: an address is never handed out twice.

The allocation itself (:class:`FreeList`) keeps the free space as sorted
ranges, so taking the lowest free address costs a bisect, not a scan of the
pool address by address.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import uuid as uuidlib
from dataclasses import asdict, dataclass, field, replace

from ansible_collections.nimbus.cloud.plugins.module_utils._errors import NimbusError, ValidationError
from ansible_collections.nimbus.cloud.plugins.module_utils._files import atomic_write, locked, read_text
from ansible_collections.nimbus.cloud.plugins.module_utils._names import normalise_mac, validate_name
from ansible_collections.nimbus.cloud.plugins.module_utils._resource import Step

try:
    import netaddr

    NETADDR_IMPORT_ERROR = None
except ImportError as e:  # pragma: no cover - reported by the module
    netaddr = None
    NETADDR_IMPORT_ERROR = e

# Neutron's base MAC: ports never collide with the 52:54:00 MACs that
# instances derive for NICs plugged straight into a bridge.
PORT_MAC_PREFIX = "fa:16:3e"
RECORD_TAG = "# nimbus-port "
# uuid5 namespace of every id this collection derives from names, so the
# same network, subnet or port has the same id on every host and every run.
ID_NAMESPACE = uuidlib.UUID("5b1f0c3e-2a7d-5c4e-9a61-6e696d627573")
DEVICE_OWNERS = ("compute", "network:dhcp", "network:router_interface", "network:router_gateway",
                 "network:floatingip", "")
# Smallest IPv4 subnet with room for a gateway, a DHCP server and one port.
MAX_PREFIXLEN = 29


class PoolExhaustedError(NimbusError):
    """No free address is left in a subnet's allocation pools."""


def derive_id(*parts):
    return str(uuidlib.uuid5(ID_NAMESPACE, "/".join(str(p) for p in parts)))


# --- subnets ------------------------------------------------------------------

@dataclass(frozen=True)
class Subnet:
    name: str
    network: str
    cidr: str
    gateway: str | None
    pools: tuple  # ((first, last), ...) as strings
    dns_servers: tuple = ()
    host_routes: tuple = ()  # ((destination, nexthop), ...)
    enable_dhcp: bool = True
    project: str | None = None
    id: str = ""

    @property
    def net(self):
        return netaddr.IPNetwork(self.cidr)

    def ranges(self):
        return [netaddr.IPRange(first, last) for first, last in self.pools]

    def contains(self, ip):
        return netaddr.IPAddress(ip) in self.net

    def view(self):
        return {
            "id": self.id, "name": self.name, "network": self.network, "project": self.project,
            "cidr": self.cidr, "ip_version": 4, "gateway": self.gateway,
            "allocation_pools": [{"start": a, "end": b} for a, b in self.pools],
            "dns_servers": list(self.dns_servers),
            "host_routes": [{"destination": d, "nexthop": n} for d, n in self.host_routes],
            "enable_dhcp": self.enable_dhcp,
        }

    def record(self):
        return {k: (list(map(list, v)) if k in ("pools", "host_routes") else
                    list(v) if k == "dns_servers" else v) for k, v in asdict(self).items()}

    @classmethod
    def from_record(cls, data):
        return cls(name=data["name"], network=data["network"], cidr=data["cidr"], gateway=data.get("gateway"),
                   pools=tuple(tuple(p) for p in data.get("pools", ())),
                   dns_servers=tuple(data.get("dns_servers", ())),
                   host_routes=tuple(tuple(r) for r in data.get("host_routes", ())),
                   enable_dhcp=bool(data.get("enable_dhcp", True)), project=data.get("project"),
                   id=data.get("id", ""))


def _ip(value, where):
    try:
        ip = netaddr.IPAddress(str(value).strip())
    except (netaddr.AddrFormatError, ValueError, TypeError):
        raise ValidationError("%s: %r is not an IP address" % (where, value))
    if ip.version != 4:
        raise ValidationError("%s: %s is IPv6; only IPv4 is supported so far" % (where, ip))
    return ip


def _cidr(value, where):
    try:
        net = netaddr.IPNetwork(str(value).strip())
    except (netaddr.AddrFormatError, ValueError, TypeError):
        raise ValidationError("%s: %r is not a CIDR (for example 10.0.0.0/24)" % (where, value))
    if net.version != 4:
        raise ValidationError("%s: %s is IPv6; only IPv4 subnets are supported so far" % (where, net))
    if net.ip != net.network:
        raise ValidationError("%s: %s has host bits set; did you mean %s?" % (where, value, net.cidr))
    return net


def normalise_cidr(value):
    """``value`` written as build_subnet records it, so a task's CIDR compares with a stored one; unparsable
    values are returned as they are, for build_subnet to name what is wrong."""
    try:
        return str(netaddr.IPNetwork(str(value).strip()))
    except (netaddr.AddrFormatError, ValueError, TypeError):
        return value


def build_subnet(name, network, cidr, gateway="auto", pools=None, dns_servers=(), host_routes=(),
                 enable_dhcp=True, project=None):
    """A validated :class:`Subnet`; raises ValidationError naming what is wrong.

    ``gateway``: an address, ``auto`` (the first host) or None (no gateway).
    ``pools``: list of {start, end}; default: every host address but the gateway.
    """
    validate_name(name, "subnet")
    net = _cidr(cidr, "cidr")
    if net.prefixlen > MAX_PREFIXLEN:
        raise ValidationError("cidr %s is too small: use /%d or larger" % (net, MAX_PREFIXLEN))
    first_host, last_host = netaddr.IPAddress(net.first + 1), netaddr.IPAddress(net.last - 1)

    if gateway == "auto":
        gw = first_host
    elif gateway in (None, "", "none"):
        gw = None
    else:
        gw = _ip(gateway, "gateway")
        if gw not in net:
            raise ValidationError("gateway %s is outside the subnet %s" % (gw, net))
        if gw in (net.network, net.broadcast):
            raise ValidationError("gateway %s is the %s address of %s"
                                  % (gw, "network" if gw == net.network else "broadcast", net))

    if pools:
        ranges = []
        for index, pool in enumerate(pools):
            where = "allocation_pools[%d]" % index
            if not isinstance(pool, dict) or set(pool) - {"start", "end"} or not pool.get("start"):
                raise ValidationError("%s: give start and end addresses" % where)
            start = _ip(pool["start"], where + ".start")
            end = _ip(pool.get("end") or pool["start"], where + ".end")
            if start > end:
                raise ValidationError("%s: start %s is after end %s" % (where, start, end))
            if start < first_host or end > last_host:
                raise ValidationError("%s: %s-%s is outside the host addresses of %s (%s-%s)"
                                      % (where, start, end, net, first_host, last_host))
            if gw is not None and start <= gw <= end:
                raise ValidationError("%s: %s-%s contains the gateway %s" % (where, start, end, gw))
            ranges.append(netaddr.IPRange(start, end))
        ranges.sort(key=lambda r: r.first)
        for a, b in zip(ranges, ranges[1:]):
            if b.first <= a.last:
                raise ValidationError("allocation pools %s and %s overlap" % (a, b))
    else:
        hosts = netaddr.IPSet([netaddr.IPRange(first_host, last_host)])
        if gw is not None:
            hosts.remove(gw)
        ranges = list(hosts.iter_ipranges())

    dns = tuple(str(_ip(d, "dns_servers[%d]" % i)) for i, d in enumerate(dns_servers or ()))
    routes = []
    for index, route in enumerate(host_routes or ()):
        where = "host_routes[%d]" % index
        if not isinstance(route, dict) or not route.get("destination") or not route.get("nexthop"):
            raise ValidationError("%s: give destination and nexthop" % where)
        routes.append((str(_cidr(route["destination"], where + ".destination").cidr),
                       str(_ip(route["nexthop"], where + ".nexthop"))))
    return Subnet(
        name=name, network=network, cidr=str(net.cidr), gateway=None if gw is None else str(gw),
        pools=tuple((str(netaddr.IPAddress(r.first)), str(netaddr.IPAddress(r.last))) for r in ranges),
        dns_servers=dns, host_routes=tuple(routes), enable_dhcp=bool(enable_dhcp), project=project,
        id=derive_id("subnet", network, name),
    )


def check_overlap(subnet, others):
    """Refuse a subnet whose CIDR overlaps another subnet of the same network."""
    for other in others:
        if other.name == subnet.name:
            continue
        if subnet.net.first <= other.net.last and other.net.first <= subnet.net.last:
            raise ValidationError("subnet %s (%s) overlaps subnet %s (%s) of network %s"
                                  % (subnet.name, subnet.cidr, other.name, other.cidr, subnet.network))


# --- allocation ---------------------------------------------------------------

class FreeList:
    """Free addresses of some pools, as sorted, disjoint ``[first, last]`` integer ranges.

    Built once from the pools minus what is in use; then :meth:`take_lowest`
    is O(1) and :meth:`take`/:meth:`release` a bisect plus a list splice.
    """

    def __init__(self, ranges, used=()):
        used = sorted(int(u) for u in used)
        free = []
        self._pools = sorted((int(a), int(b)) for a, b in ranges)
        self._pool_firsts = [p[0] for p in self._pools]
        for first, last in self._pools:
            lo = bisect.bisect_left(used, first)
            cursor = first
            for u in used[lo:bisect.bisect_right(used, last)]:
                if u > cursor:
                    free.append([cursor, u - 1])
                cursor = max(cursor, u + 1)
            if cursor <= last:
                free.append([cursor, last])
        self._free = free
        self._firsts = [r[0] for r in free]

    def __len__(self):
        return sum(last - first + 1 for first, last in self._free)

    def __contains__(self, addr):
        i = bisect.bisect_right(self._firsts, int(addr)) - 1
        return i >= 0 and self._free[i][0] <= int(addr) <= self._free[i][1]

    def take_lowest(self):
        """Remove and return the lowest free address, or None when none is left."""
        if not self._free:
            return None
        run = self._free[0]
        addr = run[0]
        if run[0] == run[1]:
            del self._free[0]
            del self._firsts[0]
        else:
            run[0] += 1
            self._firsts[0] += 1
        return addr

    def take(self, addr):
        """Remove one given address; False when it is not free."""
        addr = int(addr)
        i = bisect.bisect_right(self._firsts, addr) - 1
        if i < 0 or not self._free[i][0] <= addr <= self._free[i][1]:
            return False
        first, last = self._free[i]
        pieces = [r for r in ([first, addr - 1], [addr + 1, last]) if r[0] <= r[1]]
        self._free[i:i + 1] = pieces
        self._firsts[i:i + 1] = [r[0] for r in pieces]
        return True

    def in_pools(self, addr):
        i = bisect.bisect_right(self._pool_firsts, int(addr)) - 1
        return i >= 0 and self._pools[i][0] <= int(addr) <= self._pools[i][1]

    def release(self, addr):
        """Give an address back (merged with its neighbours); one outside the pools is ignored."""
        addr = int(addr)
        if addr in self or not self.in_pools(addr):
            return
        i = bisect.bisect_right(self._firsts, addr)
        left = self._free[i - 1] if i > 0 and self._free[i - 1][1] == addr - 1 else None
        right = self._free[i] if i < len(self._free) and self._free[i][0] == addr + 1 else None
        if left and right:
            left[1] = right[1]
            del self._free[i]
            del self._firsts[i]
        elif left:
            left[1] = addr
        elif right:
            right[0] = addr
            self._firsts[i] = addr
        else:
            self._free.insert(i, [addr, addr])
            self._firsts.insert(i, addr)


# --- ports --------------------------------------------------------------------

@dataclass
class Port:
    name: str
    network: str
    id: str
    mac: str | None
    fixed_ips: list = field(default_factory=list)  # [{"subnet": name, "ip": str}]
    project: str | None = None
    device_owner: str = ""
    device_id: str = ""
    hostname: str | None = None
    security_groups: list = field(default_factory=list)
    port_security: bool = True
    # The hosts-file line this port was read from: written back as is while
    # the port is unchanged, so saving a network of thousands of ports does
    # not serialise each of them again.
    line: str = field(default="", compare=False, repr=False)

    def ips(self):
        return [f["ip"] for f in self.fixed_ips]

    def record(self):
        return {
            "name": self.name, "network": self.network, "id": self.id, "mac": self.mac,
            "fixed_ips": [dict(f) for f in self.fixed_ips], "project": self.project,
            "device_owner": self.device_owner, "device_id": self.device_id, "hostname": self.hostname,
            "security_groups": list(self.security_groups), "port_security": self.port_security,
        }

    def record_line(self):
        if not self.line:
            self.line = RECORD_TAG + json.dumps(self.record(), sort_keys=True, separators=(",", ":"))
        return self.line

    @classmethod
    def from_record(cls, data, line=""):
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data and k != "line"}
        return cls(line=line, **known)


def port_mac(port_id, attempt=0):
    """The MAC a port gets when none is given: derived from its id, so it is stable."""
    digest = hashlib.sha256(("%s/%d" % (port_id, attempt)).encode()).hexdigest()
    return "%s:%s:%s:%s" % (PORT_MAC_PREFIX, digest[0:2], digest[2:4], digest[4:6])


class Ipam:
    """One network's subnets and ports, and the rules for changing them. Pure: no files."""

    def __init__(self, network, subnets=(), ports=()):
        self.network = network
        self.subnets = list(subnets)
        self.ports = {p.name: p for p in ports}
        self._free = {}

    def copy(self):
        """An Ipam to plan on, leaving this one (the snapshot read from the host) as it is."""
        return Ipam(self.network, self.subnets,
                    (replace(p, fixed_ips=[dict(f) for f in p.fixed_ips], security_groups=list(p.security_groups))
                     for p in self.ports.values()))

    def subnet(self, name):
        for s in self.subnets:
            if s.name == name:
                return s
        return None

    def in_use(self):
        """Every address some port holds, per subnet name."""
        used = {s.name: set() for s in self.subnets}
        for port in self.ports.values():
            for fixed in port.fixed_ips:
                used.setdefault(fixed["subnet"], set()).add(int(netaddr.IPAddress(fixed["ip"])))
        return used

    def free_list(self, subnet):
        if subnet.name not in self._free:
            self._free[subnet.name] = FreeList(
                ((r.first, r.last) for r in subnet.ranges()), self.in_use().get(subnet.name, ()))
        return self._free[subnet.name]

    def ports_on(self, subnet_name):
        return sorted(p.name for p in self.ports.values()
                      if any(f["subnet"] == subnet_name for f in p.fixed_ips))

    def macs(self, exclude=None):
        return {p.mac for p in self.ports.values() if p.mac and p.name != exclude}

    # subnets

    def put_subnet(self, subnet):
        """Add or update a subnet; refuses overlaps and pools that drop addresses in use."""
        check_overlap(subnet, self.subnets)
        old = self.subnet(subnet.name)
        if old is not None:
            if old.cidr != subnet.cidr:
                raise ValidationError("subnet %s: cidr cannot change (%s -> %s); delete and recreate it"
                                      % (subnet.name, old.cidr, subnet.cidr))
            self._check_held_addresses(subnet)
            self.subnets[self.subnets.index(old)] = subnet
        else:
            self.subnets.append(subnet)
        self._free.pop(subnet.name, None)

    def _check_held_addresses(self, subnet):
        # Ports may hold addresses outside the pools (given explicitly), but
        # only a router interface may hold the gateway.
        for port in self.ports.values():
            for fixed in port.fixed_ips:
                if (fixed["subnet"] == subnet.name and fixed["ip"] == subnet.gateway
                        and port.device_owner != "network:router_interface"):
                    raise ValidationError("subnet %s: gateway %s is held by port %s"
                                          % (subnet.name, subnet.gateway, port.name))

    def remove_subnet(self, name):
        users = [p for p in self.ports_on(name) if self.ports[p].device_owner != "network:dhcp"]
        if users:
            raise ValidationError("subnet %s still has ports: %s" % (name, ", ".join(users)))
        for pname in self.ports_on(name):
            port = self.ports[pname]
            port.fixed_ips = [f for f in port.fixed_ips if f["subnet"] != name]
            port.line = ""
            if not port.fixed_ips:
                del self.ports[pname]
        self.subnets = [s for s in self.subnets if s.name != name]
        self._free.pop(name, None)

    # ports

    def plan_port(self, name, fixed_ips=None, mac=None, **attrs):
        """The port as it should be, allocating what is missing; the Ipam is updated.

        ``fixed_ips``: None keeps what the port holds (a new port gets one
        address from the first subnet); otherwise a list of {subnet, ip?}: an
        entry without ip keeps an address the port holds in that subnet or
        takes the lowest free one. Raises ValidationError / PoolExhaustedError
        and leaves the Ipam as it was.
        """
        validate_name(name, "port")
        old = self.ports.get(name)
        if not self.subnets:
            raise ValidationError("network %s has no subnet to allocate port %s from" % (self.network, name))
        port_id = old.id if old else derive_id("port", self.network, name)
        mac = self._mac_for(name, port_id, old, mac)
        wanted = self._wanted_ips(name, old, fixed_ips)
        held = list(old.fixed_ips) if old else []
        named = {pair[1] for pair in wanted if pair[1]}
        taken, result = [], []
        try:
            for subnet, ip in wanted:
                entry = {"subnet": subnet.name, "ip": ip}
                if ip is None:
                    keep = next((f for f in held if f["subnet"] == subnet.name and f["ip"] not in named
                                 and f not in result), None)
                    if keep is not None:
                        result.append(dict(keep))
                        continue
                    addr = self.free_list(subnet).take_lowest()
                    if addr is None:
                        raise PoolExhaustedError(
                            "subnet %s (%s) has no free address left in its allocation pools"
                            % (subnet.name, subnet.cidr), subnet=subnet.name)
                    entry["ip"] = str(netaddr.IPAddress(addr))
                    taken.append((subnet, addr))
                elif not any(f["subnet"] == subnet.name and f["ip"] == ip for f in held):
                    if self._take_requested(subnet, ip, name, attrs.get("device_owner", "")):
                        taken.append((subnet, int(netaddr.IPAddress(ip))))
                result.append(entry)
        except NimbusError:
            for subnet, addr in taken:
                self.free_list(subnet).release(addr)
            raise
        for fixed in held:
            if fixed not in result and self.subnet(fixed["subnet"]) is not None:
                self.free_list(self.subnet(fixed["subnet"])).release(int(netaddr.IPAddress(fixed["ip"])))
        port = Port(name=name, network=self.network, id=port_id, mac=mac, fixed_ips=result, **attrs)
        self.ports[name] = port
        return port

    def _mac_for(self, name, port_id, old, mac):
        if mac:
            mac = normalise_mac(mac, "mac")
            if old is not None and old.mac and old.mac != mac:
                raise ValidationError("port %s: mac cannot change (%s -> %s); delete and recreate the port"
                                      % (name, old.mac, mac))
            if mac in self.macs(exclude=name):
                raise ValidationError("port %s: MAC %s is already used by another port of network %s"
                                      % (name, mac, self.network))
            return mac
        if old is not None and old.mac:
            return old.mac
        used = self.macs(exclude=name)
        for attempt in range(64):
            candidate = port_mac(port_id, attempt)
            if candidate not in used:
                return candidate
        raise NimbusError("could not derive a free MAC for port %s" % name)  # pragma: no cover

    def _wanted_ips(self, name, old, fixed_ips):
        if fixed_ips is None:
            if old is not None and old.fixed_ips:
                return [(self.subnet(f["subnet"]), f["ip"]) for f in old.fixed_ips if self.subnet(f["subnet"])]
            return [(self.subnets[0], None)]
        wanted = []
        for index, fixed in enumerate(fixed_ips):
            where = "fixed_ips[%d]" % index
            if not isinstance(fixed, dict) or set(fixed) - {"subnet", "ip"}:
                raise ValidationError("%s: give subnet and/or ip" % where)
            ip = str(_ip(fixed["ip"], where + ".ip")) if fixed.get("ip") else None
            subnet = self.subnet(fixed["subnet"]) if fixed.get("subnet") else None
            if fixed.get("subnet") and subnet is None:
                raise ValidationError("%s: network %s has no subnet %s (it has: %s)"
                                      % (where, self.network, fixed["subnet"],
                                         ", ".join(s.name for s in self.subnets) or "none"))
            if subnet is None:
                if ip is None:
                    raise ValidationError("%s: give subnet and/or ip" % where)
                subnet = next((s for s in self.subnets if s.contains(ip)), None)
                if subnet is None:
                    raise ValidationError("%s: %s is in no subnet of network %s" % (where, ip, self.network))
            elif ip is not None and not subnet.contains(ip):
                raise ValidationError("%s: %s is outside subnet %s (%s)" % (where, ip, subnet.name, subnet.cidr))
            wanted.append((subnet, ip))
        pairs = [(s.name, ip) for s, ip in wanted if ip]
        if len(pairs) != len(set(pairs)):
            raise ValidationError("port %s: an address is given twice in fixed_ips" % name)
        return wanted

    def _take_requested(self, subnet, ip, port_name, device_owner):
        addr = netaddr.IPAddress(ip)
        for other in self.ports.values():
            if other.name != port_name and any(f["ip"] == ip and f["subnet"] == subnet.name
                                               for f in other.fixed_ips):
                raise ValidationError("%s is already held by port %s" % (ip, other.name))
        net = subnet.net
        if addr in (net.network, net.broadcast):
            raise ValidationError("%s is the network or broadcast address of %s" % (ip, subnet.cidr))
        if ip == subnet.gateway and device_owner != "network:router_interface":
            raise ValidationError("%s is the gateway of subnet %s; only a router interface may hold it"
                                  % (ip, subnet.name))
        # Addresses outside the pools may be given explicitly (as in Neutron);
        # inside them, they leave the free list.
        return self.free_list(subnet).take(addr)

    def remove_port(self, name):
        port = self.ports.pop(name, None)
        if port is None:
            return None
        for fixed in port.fixed_ips:
            subnet = self.subnet(fixed["subnet"])
            if subnet is not None:
                self.free_list(subnet).release(int(netaddr.IPAddress(fixed["ip"])))
        return port


def keep_dhcp_port(ipam):
    """The DHCP server's port holds one address in each subnet DHCP serves, and exists only while one does."""
    served = [s.name for s in ipam.subnets if s.enable_dhcp]
    if served:
        ipam.plan_port("dhcp", fixed_ips=[{"subnet": name} for name in served], device_owner="network:dhcp",
                       device_id="dhcp")
    else:
        ipam.remove_port("dhcp")


# --- the files ----------------------------------------------------------------

def render_hosts(ipam):
    """dnsmasq's dhcp-hostsfile, with each port's record above its line."""
    dhcp = {s.name for s in ipam.subnets if s.enable_dhcp}
    lines = ["# Managed by nimbus.cloud: reservations of network %s. Edit through nimbus.cloud.port." % ipam.network]
    for name in sorted(ipam.ports):
        port = ipam.ports[name]
        lines.append(port.record_line())
        served = [f["ip"] for f in port.fixed_ips if f["subnet"] in dhcp]
        if port.mac and served and port.device_owner == "compute":
            entry = [port.mac, served[0]]
            if port.hostname:
                entry.append(port.hostname)
            lines.append(",".join(entry))
    return "\n".join(lines) + "\n"


def parse_hosts(text):
    ports = []
    for line in (text or "").splitlines():
        if line.startswith(RECORD_TAG):
            ports.append(Port.from_record(json.loads(line[len(RECORD_TAG):]), line=line))
    return ports


def render_subnets(subnets):
    return json.dumps([s.record() for s in subnets], indent=2, sort_keys=True) + "\n"


def parse_subnets(text):
    return [Subnet.from_record(d) for d in json.loads(text or "[]")]


class NetworkStore:
    """A network's IPAM files in ``directory`` on the host that owns the pool."""

    def __init__(self, directory, network, check_mode=False):
        self.directory = directory
        self.network = network
        self.check_mode = check_mode
        self.subnets_path = os.path.join(directory, "subnets.json")
        self.hosts_path = os.path.join(directory, "hosts")
        self.lock_path = os.path.join(directory, "ipam.lock")

    def exists(self):
        return os.path.exists(self.subnets_path)

    def load(self):
        return Ipam(self.network, parse_subnets(read_text(self.subnets_path)),
                    parse_hosts(read_text(self.hosts_path)))

    def save(self, ipam):
        """Write both files; True when either changed. Call inside :meth:`transaction`."""
        os.makedirs(self.directory, mode=0o755, exist_ok=True)
        # hosts first: a port is never recorded against a subnet that is not yet saved
        # when the subnet file is the one that fails to write.
        changed = atomic_write(self.hosts_path, render_hosts(ipam))
        return atomic_write(self.subnets_path, render_subnets(ipam.subnets)) or changed

    def transaction(self):
        """The lock every read-modify-write of this network's records holds (nothing is created in check mode)."""
        return locked(self.lock_path, check_mode=self.check_mode)


class SaveIpam(Step):
    """Write a network's IPAM records (subnets and the hosts file dnsmasq reads) as planned."""

    def __init__(self, store, ipam):
        self.store = store
        self.ipam = ipam

    def __eq__(self, other):
        return isinstance(other, SaveIpam) and self.store.directory == other.store.directory and (
            render_subnets(self.ipam.subnets), render_hosts(self.ipam)) == (
            render_subnets(other.ipam.subnets), render_hosts(other.ipam))

    __hash__ = None

    def describe(self):
        return "write the IPAM records of %s in %s" % (self.store.network, self.store.directory)

    def apply(self, runner):
        return runner.apply(self.describe(), self.store.save, self.ipam)
