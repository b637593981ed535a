# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Security groups and port filters in nftables, on the compute host that runs the instances.

Two tables, both named ``nimbus``:

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

Every rule carries a comment that is a digest of what it says, so reading the
table back tells whether a chain holds exactly the wanted rules; a chain that
differs is rewritten in one ``nft -f`` transaction. After each change the
tables are saved to ``/etc/nimbus/nftables.nft``, which the bridges role's
``nimbus-nftables`` unit loads at boot.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from ansible_collections.nimbus.cloud.plugins.module_utils._errors import ValidationError
from ansible_collections.nimbus.cloud.plugins.module_utils._files import atomic_write, remove
from ansible_collections.nimbus.cloud.plugins.module_utils._names import validate_name
from ansible_collections.nimbus.cloud.plugins.module_utils._resource import Command

TABLE = "nimbus"
SAVE_FILE = "/etc/nimbus/nftables.nft"
PROTOCOLS = {"icmp": 1, "tcp": 6, "udp": 17}
DIRECTIONS = ("ingress", "egress")

BASE_INET = """\
add table inet nimbus
add map inet nimbus port_egress { type ifname . ether_addr : verdict; }
add map inet nimbus port_ingress { type ifname . ether_addr : verdict; }
add chain inet nimbus egress { type filter hook forward priority -10; policy accept; }
add chain inet nimbus ingress { type filter hook forward priority 0; policy accept; }
"""
BASE_INET_RULES = {
    "egress": ["ct state established,related accept", "ct state invalid drop",
               "iifname . ether saddr vmap @port_egress"],
    "ingress": ["ct state established,related accept", "ct state invalid drop",
                "oifname . ether daddr vmap @port_ingress"],
}
BASE_BRIDGE = """\
add table bridge nimbus
add map bridge nimbus taps { type ifname : verdict; }
add chain bridge nimbus antispoof { type filter hook prerouting priority -200; policy accept; }
"""
BASE_BRIDGE_RULES = {"antispoof": ["iifname vmap @taps"]}


def digest(text):
    return hashlib.sha256(text.encode()).hexdigest()[:16]


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


def build_rules(rules, allow_all_egress=True):
    """Validated, de-duplicated rules, sorted so that order never makes a difference."""
    out = set()
    for index, raw in enumerate(rules or ()):
        where = "rules[%d]" % index
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
        out.add(Rule(direction=direction, protocol=protocol, port_range_min=None if low is None else int(low),
                     port_range_max=None if high is None else int(high), remote_ip_prefix=prefix,
                     remote_group=group))
    if allow_all_egress:
        out.add(Rule(direction="egress"))
    return sorted(out, key=lambda r: json.dumps(r.view(), sort_keys=True))


def _prefix(value, where):
    from ansible_collections.nimbus.cloud.plugins.module_utils._ipam import netaddr  # netaddr is optional elsewhere

    try:
        net = netaddr.IPNetwork(str(value))
    except Exception:
        raise ValidationError("%s: remote_ip_prefix %r is not a CIDR" % (where, value))
    if net.version != 4:
        raise ValidationError("%s: only IPv4 prefixes are supported so far" % where)
    if net.ip != net.network:
        raise ValidationError("%s: remote_ip_prefix %s has host bits set; did you mean %s?" % (where, value, net.cidr))
    return str(net.cidr)


def group_chain(name, direction):
    return "sg-%s-%s" % (name, "in" if direction == "ingress" else "out")


def members_set(name):
    return "sg-%s-members" % name


def group_members(name, ports):
    """The IPv4 addresses of the ports (port dicts) that belong to group ``name``."""
    members = set()
    for port in ports or ():
        if name in (port.get("security_groups") or ()) and port.get("port_security", True):
            members.update(f["ip"] for f in port.get("fixed_ips") or () if "." in f.get("ip", ""))
    return sorted(members)


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
        return "port-" + self.id[:8]

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


# --- reading and writing the tables ------------------------------------------------

class Ruleset:
    """The two ``nimbus`` tables as read with ``nft -j``: chains with their rules' comments, maps, sets."""

    def __init__(self, inet=None, bridge=None):
        self.chains = {"inet": {}, "bridge": {}}
        self.maps = {"inet": {}, "bridge": {}}
        self.sets = {}
        self.present = {"inet": inet is not None, "bridge": bridge is not None}
        for family, doc in (("inet", inet), ("bridge", bridge)):
            for item in (doc or {}).get("nftables", []):
                if "chain" in item:
                    self.chains[family].setdefault(item["chain"]["name"], [])
                elif "rule" in item:
                    rule = item["rule"]
                    self.chains[family].setdefault(rule["chain"], []).append(rule.get("comment"))
                elif "map" in item:
                    self.maps[family][item["map"]["name"]] = _elements(item["map"].get("elem"))
                elif "set" in item and family == "inet":
                    self.sets[item["set"]["name"]] = sorted(str(e) for e in item["set"].get("elem") or [])

    def chain_is(self, family, chain, rules):
        return self.chains[family].get(chain) == [digest(r) for r in rules]

    def jumps_to(self, chain):
        """Port chains that jump to ``chain`` (their comments are digests of ``jump <chain>``)."""
        mark = digest("jump %s" % chain)
        return sorted(name for name, comments in self.chains["inet"].items()
                      if name.startswith("port-") and mark in comments)


def _elements(elem):
    """Map elements as {key: verdict text}, keys joined with '.'."""
    out = {}
    for entry in elem or []:
        key, value = entry
        if isinstance(key, dict) and "concat" in key:
            key = ".".join(str(k) for k in key["concat"])
        verdict = next(iter(value)) if isinstance(value, dict) else value
        target = value[verdict].get("target") if isinstance(value, dict) and isinstance(value[verdict], dict) else None
        out[str(key)] = "%s %s" % (verdict, target) if target else str(verdict)
    return out


def read(runner):
    tables = {}
    for family in ("inet", "bridge"):
        result = runner.read(["nft", "-j", "list", "table", family, TABLE], check_rc=False)
        tables[family] = json.loads(result.stdout) if result.ok and result.stdout.strip() else None
    return Ruleset(tables["inet"], tables["bridge"])


def chain_script(family, chain, rules):
    """Replace a chain's rules in the transaction: create it if missing, flush, add each rule with its digest."""
    lines = ["add chain %s %s %s" % (family, TABLE, chain), "flush chain %s %s %s" % (family, TABLE, chain)]
    lines += ['add rule %s %s %s %s comment "%s"' % (family, TABLE, chain, r, digest(r)) for r in rules]
    return lines


def base_script(ruleset):
    """Create the tables, maps and base chains that are missing (nothing when all exist)."""
    lines = []
    for family, base, rules in (("inet", BASE_INET, BASE_INET_RULES), ("bridge", BASE_BRIDGE, BASE_BRIDGE_RULES)):
        if not all(ruleset.chain_is(family, chain, wanted) for chain, wanted in rules.items()):
            lines += base.splitlines()
            for chain, wanted in rules.items():
                lines += ["flush chain %s %s %s" % (family, TABLE, chain)]
                lines += ['add rule %s %s %s %s comment "%s"' % (family, TABLE, chain, r, digest(r)) for r in wanted]
    return lines


def apply(runner, lines):
    """Run one atomic nft transaction and save the tables for the next boot."""
    if not lines:
        return False
    script = "\n".join(lines) + "\n"
    runner.change(["nft", "-f", "-"], data=script)
    runner.apply("save the nimbus nftables to %s" % SAVE_FILE, save, runner)
    return True


def save(runner):
    """Write the tables for the boot-time unit; with no table left, there is nothing to restore."""
    parts = []
    for family in ("inet", "bridge"):
        listing = runner.read(["nft", "list", "table", family, TABLE], check_rc=False)
        if listing.ok:
            # Recreated whole at boot: delete first so loading twice is harmless.
            parts.append("table %s %s\ndelete table %s %s\n%s" % (family, TABLE, family, TABLE, listing.stdout))
    if parts:
        atomic_write(SAVE_FILE, "".join(parts), mode=0o600)
    else:
        remove(SAVE_FILE)


# --- plans ----------------------------------------------------------------------

def _element_lines(ruleset, family, map_name, key, key_text, verdict):
    current = ruleset.maps[family].get(map_name, {}).get(key)
    if current == verdict:
        return []
    lines = ["delete element %s %s %s { %s }" % (family, TABLE, map_name, key_text)] if current else []
    return lines + ["add element %s %s %s { %s : %s }" % (family, TABLE, map_name, key_text, verdict)]


def port_lines(ruleset, pf):
    """What binds one port's filter on this host: its chains, its tap's anti-spoofing and the map entries."""
    lines = []
    for chain, rules in ((pf.chain + "-in", pf.in_rules()), (pf.chain + "-out", pf.out_rules())):
        if not ruleset.chain_is("inet", chain, rules):
            lines += chain_script("inet", chain, rules)
    tap_chain = "tap-" + pf.id[:8]
    if not ruleset.chain_is("bridge", tap_chain, pf.tap_rules()):
        lines += chain_script("bridge", tap_chain, pf.tap_rules())
    pair = '"%s" . %s' % (pf.bridge, pf.mac)
    key = "%s.%s" % (pf.bridge, pf.mac)
    lines += _element_lines(ruleset, "inet", "port_egress", key, pair, "jump %s-out" % pf.chain)
    lines += _element_lines(ruleset, "inet", "port_ingress", key, pair, "jump %s-in" % pf.chain)
    lines += _element_lines(ruleset, "bridge", "taps", pf.tap, '"%s"' % pf.tap, "jump " + tap_chain)
    return lines


def unbind_lines(ruleset, port_id):
    """Everything of a port's filter that is still in the tables, removed (map entries before chains)."""
    chain = "port-" + port_id[:8]
    targets = {"jump %s-out" % chain, "jump %s-in" % chain, "jump tap-" + port_id[:8]}
    lines = []
    for family in ("inet", "bridge"):
        for map_name, elements in ruleset.maps[family].items():
            for key, verdict in elements.items():
                if verdict in targets:
                    lines.append("delete element %s %s %s { %s }" % (family, TABLE, map_name, _key_text(key)))
    for family, name in (("inet", chain + "-in"), ("inet", chain + "-out"), ("bridge", "tap-" + port_id[:8])):
        if name in ruleset.chains[family]:
            lines.append("delete chain %s %s %s" % (family, TABLE, name))
    return lines


def _key_text(key):
    if "." in key and ":" in key:
        ifname, mac = key.rsplit(".", 1)
        return '"%s" . %s' % (ifname, mac)
    return '"%s"' % key


def bound_ports(ruleset):
    """Port ids (8-character prefixes) that have a filter here."""
    return sorted({name[5:13] for name in ruleset.chains["inet"] if name.startswith("port-")})


def group_lines(ruleset, name, rules, members=None):
    """A group's two chains (and its member set when ``members`` is given), as they should be."""
    lines = []
    for direction in DIRECTIONS:
        chain = group_chain(name, direction)
        wanted = [r.nft() for r in rules if r.direction == direction]
        if not ruleset.chain_is("inet", chain, wanted):
            lines += chain_script("inet", chain, wanted)
    sets = {r.remote_group for r in rules if r.remote_group} | ({name} if members is not None else set())
    for group in sorted(sets):
        if members_set(group) not in ruleset.sets:
            lines.append("add set inet %s %s { type ipv4_addr; }" % (TABLE, members_set(group)))
    if members is not None and ruleset.sets.get(members_set(name)) != sorted(members):
        lines.append("flush set inet %s %s" % (TABLE, members_set(name)))
        if members:
            lines.append("add element inet %s %s { %s }" % (TABLE, members_set(name), ", ".join(members)))
    # Sets must exist before the rules that name them.
    return sorted(lines, key=lambda line: 0 if line.startswith("add set") else 1)


def delete_group_lines(ruleset, name):
    own = {group_chain(name, d) for d in DIRECTIONS}
    others = [c for c in ruleset.chains["inet"] if c.startswith(("sg-", "port-")) and c not in own]
    if not others and not any(c.startswith("tap-") for c in ruleset.chains["bridge"]):
        # The last group on a host with no bound port: nothing of the collection stays in nftables.
        return ["delete table %s %s" % (family, TABLE) for family in ("inet", "bridge") if ruleset.present[family]]
    lines = ["delete chain inet %s %s" % (TABLE, c) for c in sorted(own) if c in ruleset.chains["inet"]]
    if members_set(name) in ruleset.sets:
        lines.append("delete set inet %s %s" % (TABLE, members_set(name)))
    return lines
