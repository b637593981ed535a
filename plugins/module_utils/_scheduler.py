# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Choosing a hypervisor for each new instance, the way Nova's filter scheduler does.

Hypervisors come in the shape ``nimbus.cloud.hypervisor_info`` returns. Filters
drop the hosts that cannot take a request (availability zone, aggregates, RAM,
vCPU and disk capacity after allocation ratios and reservations, server-group
affinity and anti-affinity); a weigher orders the rest (``spread``: most free
RAM first; ``stack``: least free RAM first; hostname breaks ties).

A :class:`Scheduler` claims what it places, so a series of placements, or
placements from many threads at once, never overshoot a host. A request whose
instance already exists on a hypervisor is answered with that hypervisor and
claims nothing, so that re-running a playbook places nothing twice.

Standard library only: the action plugin imports it on the controller, and the
benchmark and the tests import it without Ansible. Errors are this module's own
exceptions; the plugin turns them into a failed task.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from fractions import Fraction

WEIGHERS = ("spread", "stack")
AFFINITY = "affinity"
ANTI_AFFINITY = "anti-affinity"
POLICIES = (AFFINITY, ANTI_AFFINITY)
RESOURCES = ("vcpus", "ram_mb", "disk_gb")
# Nova's default_availability_zone: where a host with no zone lives.
DEFAULT_ZONE = "nova"

AZ_FILTER = "AvailabilityZoneFilter"
AGGREGATE_FILTER = "AggregateFilter"
RAM_FILTER = "RamFilter"
CORE_FILTER = "CoreFilter"
DISK_FILTER = "DiskFilter"
AFFINITY_FILTER = "AffinityFilter"
ANTI_AFFINITY_FILTER = "AntiAffinityFilter"
# As in Nova, each filter only sees the hosts the previous ones let through, so
# a host is counted against the first filter that rejects it.
FILTERS = (AZ_FILTER, AGGREGATE_FILTER, RAM_FILTER, CORE_FILTER, DISK_FILTER, AFFINITY_FILTER, ANTI_AFFINITY_FILTER)

_REQUEST_KEYS = ("name", "flavor", "availability_zone", "aggregate", "server_group")
_FLAVOR_KEYS = ("name", "vcpus", "ram_mb", "disk_gb")
_GROUP_KEYS = ("name", "policy")


class SchedulerError(Exception):
    """Base of this module's errors; ``msg`` is meant for the user."""

    def __init__(self, msg):
        super().__init__(msg)
        self.msg = msg


class InvalidInput(SchedulerError, ValueError):
    """A hypervisor or a request is malformed; ``field`` says where."""

    def __init__(self, field, problem):
        super().__init__("%s %s" % (field, problem))
        self.field = field


class NoValidHost(SchedulerError):
    """No host passes every filter; ``rejected`` maps filter name to the hosts it dropped."""

    def __init__(self, name, hosts, rejected):
        counts = ", ".join("%s rejected %d" % (f, n) for f, n in rejected.items())
        super().__init__("No valid host for %s: %d host%s%s" % (
            name, hosts, "" if hosts == 1 else "s", "; " + counts if counts else ""))
        self.name = name
        self.hosts = hosts
        self.rejected = rejected


@dataclass(frozen=True)
class Request:
    name: str
    vcpus: int
    ram_mb: int
    disk_gb: int
    availability_zone: str | None = None
    aggregates: frozenset = frozenset()
    server_group: str | None = None
    policy: str | None = None


@dataclass(frozen=True)
class Placement:
    name: str
    hypervisor: str
    reused: bool

    def to_dict(self):
        return asdict(self)


def _text(value, field, optional=False):
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidInput(field, "must be a non-empty string, got %r" % (value,))
    return value


def _number(value, field, minimum=0, integer=False):
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or (isinstance(value, float) and not math.isfinite(value)):
        raise InvalidInput(field, "must be %s, got %r" % ("an integer" if integer else "a number", value))
    if value < minimum:
        raise InvalidInput(field, "must be >= %s, got %r" % (minimum, value))
    return value


def _mapping(value, field, allowed=None):
    if not isinstance(value, Mapping):
        raise InvalidInput(field, "must be a mapping, got %s" % type(value).__name__)
    if allowed is not None:
        unknown = sorted(str(k) for k in value if k not in allowed)
        if unknown:
            raise InvalidInput("%s.%s" % (field, unknown[0]), "is not a known key (known: %s)" % ", ".join(allowed))
    return value


def _list(value, field):
    if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__"):
        raise InvalidInput(field, "must be a list, got %s" % type(value).__name__)
    return list(value)


def parse_request(data, field="request"):
    """Validate one request (see the module docstring) into a :class:`Request`."""
    _mapping(data, field, _REQUEST_KEYS)
    if "name" not in data:
        raise InvalidInput(field + ".name", "is required")
    name = _text(data["name"], field + ".name")
    if "flavor" not in data:
        raise InvalidInput(field + ".flavor", "is required")
    flavor = _mapping(data["flavor"], field + ".flavor", _FLAVOR_KEYS)
    sizes = {}
    # Nova refuses flavors without a vCPU or RAM; requiring one of each also
    # lets the scheduler forget hosts that have none left.
    for key, minimum in (("vcpus", 1), ("ram_mb", 1), ("disk_gb", 0)):
        where = "%s.flavor.%s" % (field, key)
        if key not in flavor:
            raise InvalidInput(where, "is required")
        sizes[key] = _number(flavor[key], where, minimum=minimum, integer=True)
    zone = _text(data.get("availability_zone"), field + ".availability_zone", optional=True)
    aggregate = data.get("aggregate")
    if aggregate is None:
        aggregates = frozenset()
    elif isinstance(aggregate, str):
        aggregates = frozenset([_text(aggregate, field + ".aggregate")])
    else:
        aggregates = frozenset(_text(a, "%s.aggregate[%d]" % (field, i))
                               for i, a in enumerate(_list(aggregate, field + ".aggregate")))
    group = policy = None
    if data.get("server_group") is not None:
        sg = _mapping(data["server_group"], field + ".server_group", _GROUP_KEYS)
        group = _text(sg.get("name"), field + ".server_group.name")
        policy = sg.get("policy")
        if policy not in POLICIES:
            raise InvalidInput(field + ".server_group.policy", "must be one of %s, got %r" % (", ".join(POLICIES), policy))
    return Request(name, sizes["vcpus"], sizes["ram_mb"], sizes["disk_gb"], zone, aggregates, group, policy)


def parse_requests(requests, field="requests"):
    """Validate a list of requests; names must be unique within it."""
    parsed = []
    seen = {}
    for i, data in enumerate(_list(requests, field)):
        request = parse_request(data, "%s[%d]" % (field, i))
        if request.name in seen:
            raise InvalidInput("%s[%d].name" % (field, i), "%r repeats %s[%d].name" % (request.name, field, seen[request.name]))
        seen[request.name] = i
        parsed.append(request)
    return parsed


def capacity(total, reserved, ratio):
    """Nova placement's capacity, floor((total - reserved) * ratio).

    The ratio is taken as the decimal it is written as, so 100 GB at 1.15 gives
    115 rather than the 114 that binary floating point would.
    """
    figures = (total, reserved, ratio)
    if any(isinstance(x, float) and not x.is_integer() for x in figures):
        total, reserved, ratio = (Fraction(repr(x)) if isinstance(x, float) else x for x in figures)
    return int(math.floor((total - reserved) * ratio))


class _Host:
    """One hypervisor's claimable state; only the scheduler touches it, under its lock."""

    __slots__ = ("hostname", "rank", "zone", "aggregates", "cap_vcpus", "cap_ram", "cap_disk",
                 "used_vcpus", "used_ram", "used_disk", "orders")

    def __init__(self, hostname, zone, aggregates, caps, used):
        self.hostname = hostname
        self.rank = 0
        self.zone = zone
        self.aggregates = aggregates
        self.cap_vcpus, self.cap_ram, self.cap_disk = caps
        self.used_vcpus, self.used_ram, self.used_disk = used
        self.orders = []

    def takes_more(self):
        return self.cap_vcpus - self.used_vcpus >= 1 and self.cap_ram - self.used_ram >= 1

    def usage(self):
        return {
            "vcpus": {"capacity": self.cap_vcpus, "used": self.used_vcpus},
            "ram_mb": {"capacity": self.cap_ram, "used": self.used_ram},
            "disk_gb": {"capacity": self.cap_disk, "used": self.used_disk},
        }


def _parse_hypervisor(data, field, hostname=None):
    _mapping(data, field)
    if hostname is None:
        hostname = _text(data.get("hostname"), field + ".hostname")
    zone = _text(data.get("availability_zone", DEFAULT_ZONE) or DEFAULT_ZONE, field + ".availability_zone")
    aggregates = frozenset(_text(a, "%s.aggregates[%d]" % (field, i))
                           for i, a in enumerate(_list(data.get("aggregates") or [], field + ".aggregates")))
    instances = []
    for i, inst in enumerate(_list(data.get("instances") or [], field + ".instances")):
        where = "%s.instances[%d]" % (field, i)
        _mapping(inst, where)
        _text(inst.get("name"), where + ".name")
        _text(inst.get("server_group"), where + ".server_group", optional=True)
        instances.append((inst, where))
    caps = []
    used = []
    for res in RESOURCES:
        where = "%s.%s" % (field, res)
        figures = _mapping(data.get(res), where)
        if "total" not in figures:
            raise InvalidInput(where + ".total", "is required")
        total = _number(figures["total"], where + ".total")
        reserved = figures.get("reserved")
        reserved = 0 if reserved is None else _number(reserved, where + ".reserved")
        if reserved > total:
            raise InvalidInput(where + ".reserved", "(%r) exceeds total (%r)" % (reserved, total))
        ratio = figures.get("ratio")
        ratio = 1.0 if ratio is None else _number(ratio, where + ".ratio")
        if ratio <= 0:
            raise InvalidInput(where + ".ratio", "must be > 0, got %r" % (ratio,))
        caps.append(capacity(total, reserved, ratio))
        # capacity and free in the input are derived figures: recomputed, never trusted.
        if figures.get("used") is not None:
            used.append(_number(figures["used"], where + ".used"))
        else:
            used.append(sum(_number(inst.get(res, 0), "%s.%s" % (at, res)) for inst, at in instances))
    host = _Host(hostname, zone, aggregates, caps, used)
    return host, [(inst["name"], inst.get("server_group")) for inst, at in instances]


class _Order:
    """Hosts that can still take an instance, best first for one weigher.

    Keys are (weight, rank): the weight is minus the free RAM for spread and
    the free RAM for stack, the rank is the host's place in hostname order, so
    ties go to the first hostname. Sorted keys let a placement start at the
    best host and skip, by bisection, every host with too little free RAM.
    """

    __slots__ = ("keys",)

    def __init__(self, keys=()):
        self.keys = sorted(keys)

    def __len__(self):
        return len(self.keys)

    def add(self, key):
        bisect.insort(self.keys, key)

    def remove(self, key):
        i = bisect.bisect_left(self.keys, key)
        if i < len(self.keys) and self.keys[i] == key:
            del self.keys[i]


class Scheduler:
    """Places requests on a fixed set of hypervisors, claiming what it places.

    ``hypervisors`` is a list of hypervisor mappings, or a mapping of host name
    to hypervisor mapping (the keys then name the hosts, whatever ``hostname``
    the values carry). :meth:`place` selects and claims under one lock, so
    threads sharing a scheduler never claim the same capacity twice.
    """

    def __init__(self, hypervisors, weigher="spread"):
        if weigher not in WEIGHERS:
            raise InvalidInput("weigher", "must be one of %s, got %r" % (", ".join(WEIGHERS), weigher))
        self.weigher = weigher
        self._sign = -1 if weigher == "spread" else 1
        self._lock = threading.Lock()
        hosts = []
        existing = []
        if isinstance(hypervisors, Mapping):
            for key, data in hypervisors.items():
                name = _text(key, "hypervisors key")
                host, instances = _parse_hypervisor(data, "hypervisors[%s]" % name, hostname=name)
                hosts.append(host)
                existing.append(instances)
        else:
            seen = set()
            for i, data in enumerate(_list(hypervisors, "hypervisors")):
                host, instances = _parse_hypervisor(data, "hypervisors[%d]" % i)
                if host.hostname in seen:
                    raise InvalidInput("hypervisors[%d].hostname" % i, "%r is listed twice" % host.hostname)
                seen.add(host.hostname)
                hosts.append(host)
                existing.append(instances)
        order = sorted(range(len(hosts)), key=lambda j: hosts[j].hostname)
        self._hosts = [hosts[j] for j in order]
        self._placed = {}
        self._ambiguous = {}
        self._groups = {}
        self._policies = {}
        for rank, j in enumerate(order):
            host = hosts[j]
            host.rank = rank
            for name, group in existing[j]:
                if name in self._placed and self._placed[name] != host.hostname:
                    self._ambiguous.setdefault(name, {self._placed[name]}).add(host.hostname)
                self._placed.setdefault(name, host.hostname)
                if group is not None:
                    members = self._groups.setdefault(group, {})
                    members[host.hostname] = members.get(host.hostname, 0) + 1
        self._by_name = {h.hostname: h for h in self._hosts}
        self._all, self._by_zone, self._by_aggregate = self._build_orders()

    def _key(self, host):
        return (self._sign * (host.cap_ram - host.used_ram), host.rank)

    def _build_orders(self):
        everything = []
        zones = {}
        aggregates = {}
        for host in self._hosts:
            if not host.takes_more():
                continue
            key = self._key(host)
            everything.append(key)
            zones.setdefault(host.zone, []).append(key)
            for name in host.aggregates:
                aggregates.setdefault(name, []).append(key)
        everything = _Order(everything)
        zones = {zone: _Order(keys) for zone, keys in zones.items()}
        aggregates = {name: _Order(keys) for name, keys in aggregates.items()}
        for host in self._hosts:
            mine = [everything, zones.get(host.zone)] + [aggregates.get(name) for name in host.aggregates]
            host.orders = [order for order in mine if order is not None]
        return everything, zones, aggregates

    @property
    def hostnames(self):
        return [h.hostname for h in self._hosts]

    def usage(self):
        """Capacity and used figures of every host: hostname -> resource -> {capacity, used}."""
        with self._lock:
            return {h.hostname: h.usage() for h in self._hosts}

    def members(self, group):
        """Hosts holding members of a server group: hostname -> count."""
        with self._lock:
            return dict(self._groups.get(group, {}))

    def place(self, request):
        """Place one request (a mapping or a :class:`Request`); return a :class:`Placement`."""
        if not isinstance(request, Request):
            request = parse_request(request)
        with self._lock:
            if request.server_group is not None:
                known = self._policies.get(request.server_group)
                if known is not None and known != request.policy:
                    raise InvalidInput("request %s: server_group.policy" % request.name,
                                       "is %r, but server group %r was requested as %r before"
                                       % (request.policy, request.server_group, known))
            if request.name in self._ambiguous:
                raise InvalidInput("request %s: name" % request.name, "names instances on several hypervisors: %s"
                                   % ", ".join(sorted(self._ambiguous[request.name])))
            if request.server_group is not None:
                self._policies[request.server_group] = request.policy
            if request.name in self._placed:
                return Placement(request.name, self._placed[request.name], True)
            host = self._select(request)
            if host is None:
                raise NoValidHost(request.name, len(self._hosts), self._explain(request))
            self._claim(host, request)
            return Placement(request.name, host.hostname, False)

    def _rejected_by(self, host, request, members):
        if request.availability_zone is not None and host.zone != request.availability_zone:
            return AZ_FILTER
        if request.aggregates and not request.aggregates <= host.aggregates:
            return AGGREGATE_FILTER
        if host.cap_ram - host.used_ram < request.ram_mb:
            return RAM_FILTER
        if host.cap_vcpus - host.used_vcpus < request.vcpus:
            return CORE_FILTER
        if host.cap_disk - host.used_disk < request.disk_gb:
            return DISK_FILTER
        if members:
            if request.policy == AFFINITY and host.hostname not in members:
                return AFFINITY_FILTER
            if request.policy == ANTI_AFFINITY and host.hostname in members:
                return ANTI_AFFINITY_FILTER
        return None

    def _select(self, request):
        members = self._groups.get(request.server_group) if request.server_group is not None else None
        if request.policy == AFFINITY and members:
            # Only the hosts already holding members can pass: weigh those few directly.
            for key in sorted(self._key(self._by_name[h]) for h in members):
                host = self._hosts[key[1]]
                if self._rejected_by(host, request, members) is None:
                    return host
            return None
        candidates = [self._all]
        if request.availability_zone is not None:
            candidates.append(self._by_zone.get(request.availability_zone, _Order()))
        candidates.extend(self._by_aggregate.get(a, _Order()) for a in request.aggregates)
        keys = min(candidates, key=len).keys
        if self._sign < 0:
            start, end = 0, bisect.bisect_right(keys, (-request.ram_mb, math.inf))
        else:
            start, end = bisect.bisect_left(keys, (request.ram_mb, -1)), len(keys)
        hosts = self._hosts
        for i in range(start, end):
            host = hosts[keys[i][1]]
            if self._rejected_by(host, request, members) is None:
                return host
        return None

    def _explain(self, request):
        members = self._groups.get(request.server_group) if request.server_group is not None else None
        counts = dict.fromkeys(FILTERS, 0)
        for host in self._hosts:
            name = self._rejected_by(host, request, members)
            if name is not None:
                counts[name] += 1
        return {name: n for name, n in counts.items() if n}

    def _claim(self, host, request):
        old = self._key(host)
        host.used_vcpus += request.vcpus
        host.used_ram += request.ram_mb
        host.used_disk += request.disk_gb
        new = self._key(host)
        keep = host.takes_more()
        for order in host.orders:
            order.remove(old)
            if keep:
                order.add(new)
        self._placed[request.name] = host.hostname
        if request.server_group is not None:
            members = self._groups.setdefault(request.server_group, {})
            members[host.hostname] = members.get(host.hostname, 0) + 1


def place_all(hypervisors, requests, weigher="spread"):
    """Place a list of requests in order, each claiming before the next; return their placements.

    Every request is validated before the first is placed.
    """
    parsed = parse_requests(requests)
    scheduler = Scheduler(hypervisors, weigher)
    return [scheduler.place(request) for request in parsed]
