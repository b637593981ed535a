# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""nftables as the collection keeps it: any table read typed, compared by digest, changed in one transaction.

The generic layer (:class:`Table`, :func:`read_table`, :func:`transaction`)
serves every table the collection owns (a router's NAT table, the compute
host's filters). Every rule written carries a comment that is the digest of
its text, so reading a table back tells chain by chain whether it holds
exactly the wanted rules; maps and sets are compared as data.

On a compute host two tables, both named ``nimbus``, hold security groups and
port filters:

``inet nimbus`` (stateful, sees bridged IPv4 through br_netfilter)
    Base chain ``egress`` (forward hook, priority -10) sends a new packet from a
    port (bridge . source MAC) to ``port-<id8>-out``; base chain ``ingress``
    (priority 0) sends one to a port (bridge . destination MAC) to
    ``port-<id8>-in``. Accepting in ``egress`` does not skip ``ingress``, so
    traffic between two ports on one host passes both ports' filters.
    Established and related traffic is accepted first in both.
    Port chains jump to the chains of their groups, ``sg-<name>-in`` and
    ``sg-<name>-out`` (rules accept), and drop what no rule accepted.
    Set ``sg-<name>-members`` holds the addresses of a group's ports, for
    rules with a remote group.

``bridge nimbus`` (stateless, before anything else)
    Anti-spoofing per tap device: frames whose source MAC, ARP sender or IPv4
    source is not the port's are dropped.

The planners here are pure: a :class:`Tables` snapshot and the wanted state in,
nft script lines out; :func:`steps` turns the lines into one ``nft -f``
transaction and a save of both tables to ``/etc/nimbus/nftables.nft``, which
the bridges role's ``nimbus-nftables`` unit loads at boot.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from dataclasses import dataclass, field

from ansible_collections.nimbus.cloud.plugins.module_utils._errors import ValidationError
from ansible_collections.nimbus.cloud.plugins.module_utils._files import atomic_write, remove
from ansible_collections.nimbus.cloud.plugins.module_utils._names import validate_name
from ansible_collections.nimbus.cloud.plugins.module_utils._resource import Command, Step

TABLE = "nimbus"
FAMILIES = ("inet", "bridge")
SAVE_FILE = "/etc/nimbus/nftables.nft"
PROTOCOLS = {"icmp": 1, "tcp": 6, "udp": 17}
DIRECTIONS = ("ingress", "egress")

BASE_MAPS = {
    "inet": {"port_egress": "type ifname . ether_addr : verdict;", "port_ingress": "type ifname . ether_addr : verdict;"},
    "bridge": {"taps": "type ifname : verdict;"},
}
# chain -> (hook header, rules)
BASE_CHAINS = {
    "inet": {
        "egress": ("type filter hook forward priority -10; policy accept;",
                   ["ct state established,related accept", "ct state invalid drop",
                    "iifname . ether saddr vmap @port_egress"]),
        "ingress": ("type filter hook forward priority 0; policy accept;",
                    ["ct state established,related accept", "ct state invalid drop",
                     "oifname . ether daddr vmap @port_ingress"]),
    },
    "bridge": {
        "antispoof": ("type filter hook prerouting priority -200; policy accept;", ["iifname vmap @taps"]),
    },
}


def digest(text):
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --- any table: read typed, compared by digest, changed in one transaction -------------

class Table:
    """One nftables table as ``nft -j list table`` gives it: chains (their rules' digest comments), maps, sets.

    Every rule the collection writes carries the digest of its text as its
    comment, so a chain holds the wanted rules exactly when its comments are the
    wanted digests, in order: a rule added, removed or rewritten by hand (its
    comment gone or not matching) makes the chain differ and be rewritten.
    """

    def __init__(self, family, name, doc=None):
        self.family = family
        self.name = name
        self.present = doc is not None
        self.chains = {}
        self.maps = {}
        self.sets = {}
        for item in (doc or {}).get("nftables", []):
            if "chain" in item:
                self.chains.setdefault(item["chain"]["name"], [])
            elif "rule" in item:
                rule = item["rule"]
                self.chains.setdefault(rule["chain"], []).append(rule.get("comment"))
            elif "map" in item:
                self.maps[item["map"]["name"]] = _elements(item["map"].get("elem"))
            elif "set" in item:
                self.sets[item["set"]["name"]] = sorted(str(e) for e in item["set"].get("elem") or [])

    def chain_is(self, chain, rules):
        return self.chains.get(chain) == [digest(r) for r in rules]

    def chain_lines(self, chain, rules, header=None):
        """Nothing when ``chain`` holds ``rules``; otherwise the lines that create (with ``header``, e.g. a hook),
        flush and refill it."""
        if self.present and self.chain_is(chain, rules):
            return []
        spec = " { %s }" % header if header else ""
        lines = ["add table %s %s" % (self.family, self.name),
                 "add chain %s %s %s%s" % (self.family, self.name, chain, spec),
                 "flush chain %s %s %s" % (self.family, self.name, chain)]
        return lines + ['add rule %s %s %s %s comment "%s"' % (self.family, self.name, chain, r, digest(r))
                        for r in rules]

    def map_lines(self, name, spec):
        """The lines that create map ``name`` (``spec`` as nft declares it) when it is missing."""
        if name in self.maps:
            return []
        return ["add table %s %s" % (self.family, self.name),
                "add map %s %s %s { %s }" % (self.family, self.name, name, spec)]

    def set_lines(self, name, spec, elements=None):
        """Create set ``name`` when missing; with ``elements``, make it hold exactly those (compared as data)."""
        lines = []
        if name not in self.sets:
            lines += ["add table %s %s" % (self.family, self.name),
                      "add set %s %s %s { %s }" % (self.family, self.name, name, spec)]
        if elements is not None and self.sets.get(name, []) != sorted(str(e) for e in elements):
            lines.append("flush set %s %s %s" % (self.family, self.name, name))
            if elements:
                lines.append("add element %s %s %s { %s }" % (self.family, self.name, name, ", ".join(elements)))
        return lines

    def element_lines(self, map_name, key, verdict):
        """Make map ``map_name`` send ``key`` (a tuple for concatenated keys) to ``verdict``."""
        text = _key_text(key)
        current = self.maps.get(map_name, {}).get(_key_id(key))
        if current == verdict:
            return []
        lines = ["delete element %s %s %s { %s }" % (self.family, self.name, map_name, text)] if current else []
        return lines + ["add element %s %s %s { %s : %s }" % (self.family, self.name, map_name, text, verdict)]

    def elements_to(self, verdicts, keep=()):
        """Lines deleting the map elements whose verdict is one of ``verdicts`` (except the keys in ``keep``)."""
        keep = {(m, _key_id(k)) for m, k in keep}
        lines = []
        for map_name, elements in sorted(self.maps.items()):
            for key, verdict in sorted(elements.items()):
                if verdict in verdicts and (map_name, key) not in keep:
                    lines.append("delete element %s %s %s { %s }"
                                 % (self.family, self.name, map_name, _key_text(_split_key(key))))
        return lines


def _elements(elem):
    """Map elements as {key: verdict text}, concatenated keys joined with '.'."""
    out = {}
    for entry in elem or []:
        key, value = entry
        if isinstance(key, dict) and "concat" in key:
            key = ".".join(str(k) for k in key["concat"])
        verdict = next(iter(value)) if isinstance(value, dict) else value
        target = value[verdict].get("target") if isinstance(value, dict) and isinstance(value[verdict], dict) else None
        out[str(key)] = "%s %s" % (verdict, target) if target else str(verdict)
    return out


def _key_id(key):
    return ".".join(key) if isinstance(key, tuple) else key


def _split_key(key_id):
    # Only the collection's ifname . MAC keys are concatenated; a MAC has no dot, an interface name may.
    if "." in key_id and ":" in key_id:
        return tuple(key_id.rsplit(".", 1))
    return key_id


def _key_text(key):
    if isinstance(key, tuple):
        ifname, mac = key
        return '"%s" . %s' % (ifname, mac)
    return '"%s"' % key


def netns_argv(netns, argv):
    return (["ip", "netns", "exec", netns] + list(argv)) if netns else list(argv)


def read_table(runner, family, name, netns=None):
    """The table, or an absent :class:`Table` (also when the namespace does not exist yet)."""
    result = runner.read(netns_argv(netns, ["nft", "-j", "list", "table", family, name]), check_rc=False)
    doc = json.loads(result.stdout) if result.ok and result.stdout.strip() else None
    return Table(family, name, doc)


def transaction(lines, netns=None):
    """One atomic ``nft -f -`` as a plan step (nothing when there are no lines)."""
    if not lines:
        return []
    return [Command(netns_argv(netns, ["nft", "-f", "-"]), data="\n".join(lines) + "\n")]


# --- the compute host's two tables ----------------------------------------------

@dataclass
class Tables:
    """A snapshot of ``inet nimbus`` and ``bridge nimbus``; what every planner below reads."""

    inet: Table = field(default_factory=lambda: Table("inet", TABLE))
    bridge: Table = field(default_factory=lambda: Table("bridge", TABLE))

    @classmethod
    def from_json(cls, inet=None, bridge=None):
        return cls(Table("inet", TABLE, inet), Table("bridge", TABLE, bridge))


def read(runner):
    return Tables(read_table(runner, "inet", TABLE), read_table(runner, "bridge", TABLE))


def base_lines(tables):
    """The maps and base chains that are missing or differ (nothing when all are as they should be)."""
    lines = []
    for family in FAMILIES:
        table = getattr(tables, family)
        for name, spec in BASE_MAPS[family].items():
            lines += table.map_lines(name, spec)
        for chain, (header, rules) in BASE_CHAINS[family].items():
            lines += table.chain_lines(chain, rules, header=header)
    return lines


@dataclass(frozen=True, repr=False)
class SaveTables(Step):
    """Save both tables for the boot-time unit; it reads the tables as the transaction before it left them."""

    path: str

    def describe(self):
        return "save the nimbus nftables to %s" % self.path

    def apply(self, runner):
        return runner.apply(self.describe(), save, runner, self.path)


def steps(lines):
    """The plan steps for script ``lines``: one transaction, then the save (nothing when there are no lines)."""
    if not lines:
        return []
    seen, script = set(), []
    for line in lines:
        # Each chain's lines start by adding its table; once is enough.
        if line.startswith("add table "):
            if line in seen:
                continue
            seen.add(line)
        script.append(line)
    return transaction(script) + [SaveTables(SAVE_FILE)]


def save(runner, path):
    """Write the tables for the boot-time unit; with no table left, there is nothing to restore."""
    parts = []
    for family in FAMILIES:
        listing = runner.read(["nft", "list", "table", family, TABLE], check_rc=False)
        if listing.ok:
            # Recreated whole at boot: delete first so loading twice is harmless.
            parts.append("table %s %s\ndelete table %s %s\n%s" % (family, TABLE, family, TABLE, listing.stdout))
    if parts:
        return atomic_write(path, "".join(parts), mode=0o600)
    return remove(path)


# --- security groups -------------------------------------------------------------

@dataclass(frozen=True)
class Rule:
    direction: str
    protocol: str = "any"  # any, icmp, tcp, udp or an IP protocol number
    port_range_min: int | None = None
    port_range_max: int | None = None
    remote_ip_prefix: str | None = None
    remote_group: str | None = None

    def view(self):
        return {"direction": self.direction, "protocol": self.protocol, "port_range_min": self.port_range_min,
                "port_range_max": self.port_range_max, "remote_ip_prefix": self.remote_ip_prefix,
                "remote_group": self.remote_group}

    def nft(self):
        """The rule as nft statements (without the comment)."""
        parts = []
        peer = "saddr" if self.direction == "ingress" else "daddr"
        if self.remote_group:
            parts.append("ip %s @%s" % (peer, members_set(self.remote_group)))
        elif self.remote_ip_prefix and self.remote_ip_prefix != "0.0.0.0/0":
            parts.append("ip %s %s" % (peer, self.remote_ip_prefix))
        if self.protocol != "any":
            number = PROTOCOLS.get(self.protocol, self.protocol)
            parts.append("ip protocol %s" % number)
            if self.protocol in ("tcp", "udp") and self.port_range_min is not None:
                low, high = self.port_range_min, self.port_range_max or self.port_range_min
                parts.append("%s dport %s" % (self.protocol, low if low == high else "%d-%d" % (low, high)))
            elif self.protocol == "icmp" and self.port_range_min is not None:
                parts.append("icmp type %d" % self.port_range_min)
                if self.port_range_max is not None:
                    parts.append("icmp code %d" % self.port_range_max)
        parts.append("accept")
        return " ".join(parts)


IMPLIED_EGRESS = Rule(direction="egress")


def build_rules(rules, allow_all_egress=True):
    """Validated, de-duplicated rules, sorted so that order never makes a difference."""
    out = set()
    for index, raw in enumerate(rules or ()):
        out.add(_rule(raw, "rules[%d]" % index))
    if allow_all_egress:
        out.add(IMPLIED_EGRESS)
    return sorted(out, key=lambda r: json.dumps(r.view(), sort_keys=True))


def _rule(raw, where):
    direction = raw.get("direction") or "ingress"
    if direction not in DIRECTIONS:
        raise ValidationError("%s: direction must be ingress or egress" % where)
    protocol = str(raw.get("protocol") or "any").lower()
    if protocol not in ("any",) + tuple(PROTOCOLS):
        if not protocol.isdigit() or not 0 <= int(protocol) <= 255:
            raise ValidationError("%s: protocol must be any, icmp, tcp, udp or a number 0-255, got %r"
                                  % (where, raw.get("protocol")))
    low, high = raw.get("port_range_min"), raw.get("port_range_max")
    if (low is not None or high is not None) and protocol not in ("tcp", "udp", "icmp"):
        raise ValidationError("%s: ports need protocol tcp, udp or icmp" % where)
    limit = 255 if protocol == "icmp" else 65535
    for value, name in ((low, "port_range_min"), (high, "port_range_max")):
        if value is not None and not 0 <= int(value) <= limit:
            raise ValidationError("%s: %s %s is out of range (0-%d)" % (where, name, value, limit))
    if protocol in ("tcp", "udp") and low is None and high is not None:
        raise ValidationError("%s: port_range_max needs port_range_min" % where)
    if protocol in ("tcp", "udp") and low is not None and high is not None and int(high) < int(low):
        raise ValidationError("%s: port_range_max %s is below port_range_min %s" % (where, high, low))
    prefix, group = raw.get("remote_ip_prefix"), raw.get("remote_group")
    if prefix and group:
        raise ValidationError("%s: give remote_ip_prefix or remote_group, not both" % where)
    if prefix:
        prefix = _prefix(prefix, where)
    if group:
        validate_name(group, "security group")
    return Rule(direction=direction, protocol=protocol, port_range_min=None if low is None else int(low),
                port_range_max=None if high is None else int(high), remote_ip_prefix=prefix, remote_group=group)


def _prefix(value, where):
    try:
        net = ipaddress.ip_network(str(value), strict=False)
    except ValueError:
        raise ValidationError("%s: remote_ip_prefix %r is not a CIDR" % (where, value))
    if net.version != 4:
        raise ValidationError("%s: only IPv4 prefixes are supported so far" % where)
    if ipaddress.ip_interface(str(value)).ip != net.network_address:
        raise ValidationError("%s: remote_ip_prefix %s has host bits set; did you mean %s?" % (where, value, net))
    return str(net)


def ipv4(addresses):
    """The IPv4 addresses among ``addresses`` (anything else, IPv6 included, is left out)."""
    out = []
    for address in addresses:
        try:
            if ipaddress.ip_address(str(address)).version == 4:
                out.append(str(address))
        except ValueError:
            continue
    return out


def group_chain(name, direction):
    return "sg-%s-%s" % (name, "in" if direction == "ingress" else "out")


def members_set(name):
    return "sg-%s-members" % name


def group_members(name, ports):
    """The IPv4 addresses of the ports (port dicts) that belong to group ``name``."""
    members = set()
    for port in ports or ():
        if name in (port.get("security_groups") or ()) and port.get("port_security", True):
            members.update(ipv4(f.get("ip") for f in port.get("fixed_ips") or ()))
    return sorted(members)


def group_defined(tables, name):
    return group_chain(name, "ingress") in tables.inet.chains


def group_lines(tables, name, rules, members=None):
    """A group's two chains (and its member set when ``members`` is given), as they should be."""
    lines = []
    # Sets come first: a rule cannot name a set the transaction has not made yet.
    named = {r.remote_group for r in rules if r.remote_group} | ({name} if members is not None else set())
    for group in sorted(named):
        lines += tables.inet.set_lines(members_set(group), "type ipv4_addr;", members if group == name else None)
    for direction in DIRECTIONS:
        lines += tables.inet.chain_lines(group_chain(name, direction),
                                         [r.nft() for r in rules if r.direction == direction])
    return lines


def group_users(tables, name):
    """Ids (8-character prefixes) of the ports on this host whose filters jump to the group's chains."""
    marks = {digest("jump %s" % group_chain(name, d)) for d in DIRECTIONS}
    return sorted({port_of_chain(chain) for chain, comments in tables.inet.chains.items()
                   if port_of_chain(chain) and marks & set(comments)})


def delete_group_lines(tables, name):
    """What deletes the group here; the last group on a host with no bound port takes both tables."""
    own = {group_chain(name, d) for d in DIRECTIONS}
    others = [c for c in tables.inet.chains if c.startswith(("sg-", "port-")) and c not in own]
    if not others and not any(c.startswith("tap-") for c in tables.bridge.chains):
        return ["delete table %s %s" % (t.family, TABLE) for t in (tables.inet, tables.bridge) if t.present]
    lines = ["delete chain inet %s %s" % (TABLE, c) for c in sorted(own) if c in tables.inet.chains]
    if members_set(name) in tables.inet.sets:
        lines.append("delete set inet %s %s" % (TABLE, members_set(name)))
    return lines


# --- ports ---------------------------------------------------------------------

@dataclass
class PortFilter:
    """A port bound to a tap on this host."""

    id: str
    bridge: str
    mac: str
    tap: str
    ips: list = field(default_factory=list)
    security_groups: list = field(default_factory=list)

    @property
    def chain(self):
        return port_chain(self.id)

    @property
    def tap_chain(self):
        return "tap-" + self.id[:8]

    def in_rules(self):
        # DHCP replies reach the port before it has an address anyone could allow.
        rules = ["udp sport 67 udp dport 68 accept"]
        rules += ["jump %s" % group_chain(g, "ingress") for g in sorted(self.security_groups)]
        return rules + ["drop"]

    def out_rules(self):
        rules = ["ip saddr 0.0.0.0 udp sport 68 udp dport 67 accept"]
        rules += ["jump %s" % group_chain(g, "egress") for g in sorted(self.security_groups)]
        return rules + ["drop"]

    def tap_rules(self):
        ips = "{ %s }" % ", ".join(self.ips) if self.ips else None
        rules = ["ether saddr != %s drop" % self.mac]
        if ips:
            rules += ["arp saddr ip != %s arp saddr ip != 0.0.0.0 drop" % ips,
                      "ip saddr != %s ip saddr != 0.0.0.0 drop" % ips]
        else:
            rules += ["ether type ip drop"]
        return rules


def port_chain(port_id):
    return "port-" + port_id[:8]


def port_of_chain(chain):
    """The port id prefix of a port chain (``port-<id8>-in``/``-out``), or None for any other chain."""
    if chain.startswith("port-") and chain.endswith(("-in", "-out")):
        return chain[len("port-"):].rsplit("-", 1)[0]
    return None


def port_lines(tables, pf):
    """What binds one port's filter on this host: its chains, its tap's anti-spoofing and the map entries.

    Map entries that still send another key (the port's old MAC or bridge) to the port's chains are removed.
    """
    lines = tables.inet.chain_lines(pf.chain + "-in", pf.in_rules())
    lines += tables.inet.chain_lines(pf.chain + "-out", pf.out_rules())
    lines += tables.bridge.chain_lines(pf.tap_chain, pf.tap_rules())
    pair = (pf.bridge, pf.mac)
    out, into, tap = "jump %s-out" % pf.chain, "jump %s-in" % pf.chain, "jump " + pf.tap_chain
    lines += tables.inet.elements_to({out, into}, keep=[("port_egress", pair), ("port_ingress", pair)])
    lines += tables.bridge.elements_to({tap}, keep=[("taps", pf.tap)])
    lines += tables.inet.element_lines("port_egress", pair, out)
    lines += tables.inet.element_lines("port_ingress", pair, into)
    lines += tables.bridge.element_lines("taps", pf.tap, tap)
    return lines


def unbind_lines(tables, port_id):
    """Everything of a port's filter that is still in the tables, removed (map entries before chains)."""
    chain = port_chain(port_id)
    tap_chain = "tap-" + port_id[:8]
    lines = tables.inet.elements_to({"jump %s-out" % chain, "jump %s-in" % chain})
    lines += tables.bridge.elements_to({"jump " + tap_chain})
    for table, name in ((tables.inet, chain + "-in"), (tables.inet, chain + "-out"), (tables.bridge, tap_chain)):
        if name in table.chains:
            lines.append("delete chain %s %s %s" % (table.family, TABLE, name))
    return lines


def bound_ports(tables):
    """Port ids (8-character prefixes) that have a filter here."""
    return sorted({p for p in (port_of_chain(c) for c in tables.inet.chains) if p})
