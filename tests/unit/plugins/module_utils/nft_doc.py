"""nftables tables for tests: written compactly in YAML, listed as ``nft -j list table`` does, changed by scripts.

A table spec is a dict::

    base: true                  # the collection's maps and base chains, as base_lines() makes them
    chains: {sg-web-in: [rule text, ...]}   # each rule gets its digest comment;
                                            # {rule: text, comment: x} is a rule changed by hand
    maps: {port_egress: {"nb-1 . fa:16:3e:00:00:01": "jump port-abcdef01-out"}}
    sets: {sg-web-members: [10.0.0.5]}

:class:`FakeNft` keeps such tables and applies ``nft -f`` scripts of the lines the
collection writes, refusing what nft refuses (a rule in a missing chain, an
element of a missing map, deleting what is not there, a jump to a missing
chain), so a test can run a module again on what its last run left.
"""

import json
import os
import re

from ansible_collections.nimbus.cloud.plugins.module_utils import _nftables as nft

DATA = os.path.join(os.path.dirname(__file__), "data")


def fixture(name):
    with open(os.path.join(DATA, "nft_%s.json" % name)) as f:
        return json.load(f)


def state(family, spec):
    """A spec as FakeNft keeps it: chains {name: [(rule, comment)]}, maps {name: {key: verdict}}, sets."""
    if spec is None:
        return None
    chains, maps, sets = {}, {}, {}
    if spec.get("base"):
        for name in nft.BASE_MAPS[family]:
            maps[name] = {}
        for chain, (header, rules) in nft.BASE_CHAINS[family].items():
            chains[chain] = [(r, nft.digest(r)) for r in rules]
    for chain, rules in (spec.get("chains") or {}).items():
        chains[chain] = [(r["rule"], r.get("comment")) if isinstance(r, dict) else (r, nft.digest(r)) for r in rules]
    for name, elements in (spec.get("maps") or {}).items():
        maps[name] = dict(elements or {})
    for name, elements in (spec.get("sets") or {}).items():
        sets[name] = sorted(str(e) for e in elements or [])
    return {"chains": chains, "maps": maps, "sets": sets}


def listing(family, table):
    """``nft -j list table FAMILY nimbus`` for a kept table (None: no such table)."""
    if table is None:
        return None
    items = [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
             {"table": {"family": family, "name": nft.TABLE}}]
    for name, elements in table["maps"].items():
        item = {"family": family, "name": name, "table": nft.TABLE, "map": "verdict"}
        if elements:
            item["elem"] = [[_key(k), _verdict(v)] for k, v in elements.items()]
        items.append({"map": item})
    for name, elements in table["sets"].items():
        item = {"family": family, "name": name, "table": nft.TABLE, "type": "ipv4_addr"}
        if elements:
            item["elem"] = list(elements)
        items.append({"set": item})
    for chain in table["chains"]:
        items.append({"chain": {"family": family, "table": nft.TABLE, "name": chain}})
    for chain, rules in table["chains"].items():
        for text, comment in rules:
            rule = {"family": family, "table": nft.TABLE, "chain": chain, "expr": [{"text": text}]}
            if comment is not None:
                rule["comment"] = comment
            items.append({"rule": rule})
    return {"nftables": items}


def tables(spec):
    """A :class:`_nftables.Tables` from a case's ``tables``: a spec per family, or the name of a JSON fixture."""
    if isinstance(spec, str):
        doc = fixture(spec)
        return nft.Tables.from_json(doc.get("inet"), doc.get("bridge"))
    spec = spec or {}
    return nft.Tables.from_json(*(listing(f, state(f, spec.get(f))) for f in nft.FAMILIES))


def _key(key):
    if " . " in key:
        return {"concat": key.split(" . ")}
    return key


def _verdict(text):
    verdict, _space, target = text.partition(" ")
    return {verdict: {"target": target}} if target else {verdict: None}


class NftError(Exception):
    pass


LINE = re.compile(r"^(add|flush|delete) (table|chain|rule|map|set|element) (inet|bridge|ip) nimbus(?: (\S+))?(.*)$")


class FakeNft:
    """The two nimbus tables of a host, changed by scripts as nft would change them (all or nothing)."""

    def __init__(self, spec=None):
        spec = spec or {}
        self.tables = {f: state(f, spec.get(f)) for f in nft.FAMILIES}
        self.scripts = []

    def listing(self, family):
        return listing(family, self.tables[family])

    def apply(self, script):
        self.scripts.append(script)
        work = json.loads(json.dumps(self.tables))
        for line in script.splitlines():
            self._line(work, line)
        self.tables = work

    def _line(self, work, line):
        match = LINE.match(line)
        if not match:
            raise NftError("cannot parse %r" % line)
        verb, what, family, name, rest = match.groups()
        rest = rest.strip()
        if what == "table":
            if verb == "add":
                work[family] = work[family] or {"chains": {}, "maps": {}, "sets": {}}
            elif work[family] is None:
                raise NftError("no table %s: %r" % (family, line))
            else:
                work[family] = None
            return
        table = work[family]
        if table is None:
            raise NftError("no table %s: %r" % (family, line))
        if what == "chain":
            self._chain(table, verb, name, line)
        elif what == "rule":
            if name not in table["chains"]:
                raise NftError("no chain %s: %r" % (name, line))
            text, comment = re.match(r'^(.*) comment "([^"]*)"$', rest).groups()
            for target in re.findall(r"(?:jump|goto) (\S+)", text):
                if target not in table["chains"]:
                    raise NftError("no chain %s: %r" % (target, line))
            for used in re.findall(r"@(\S+)", text):
                if used not in table["sets"] and used not in table["maps"]:
                    raise NftError("no set %s: %r" % (used, line))
            table["chains"][name].append([text, comment])
        elif what in ("map", "set"):
            kind = what + "s"
            if verb == "add":
                table[kind].setdefault(name, {} if what == "map" else [])
            elif name not in table[kind]:
                raise NftError("no %s %s: %r" % (what, name, line))
            elif verb == "flush":
                table[kind][name] = {} if what == "map" else []
            else:
                del table[kind][name]
        else:
            self._element(table, verb, name, rest, line)

    @staticmethod
    def _chain(table, verb, name, line):
        if verb == "add":
            table["chains"].setdefault(name, [])
            return
        if name not in table["chains"]:
            raise NftError("no chain %s: %r" % (name, line))
        if verb == "flush":
            table["chains"][name] = []
            return
        users = [c for c, rules in table["chains"].items() if any(r[0].endswith("jump " + name) for r in rules)]
        users += [m for m, elements in table["maps"].items() if "jump " + name in elements.values()]
        if users:
            raise NftError("chain %s is in use by %s: %r" % (name, users, line))
        del table["chains"][name]

    @staticmethod
    def _element(table, verb, name, rest, line):
        body = re.match(r"^\{ (.*) \}$", rest).group(1)
        if name in table["maps"]:
            key, _colon, verdict = body.partition(" : ")
            key = key.replace('"', "")
            if verb == "add":
                if key in table["maps"][name]:
                    raise NftError("element exists: %r" % line)
                if verdict.split(" ")[-1] not in table["chains"]:
                    raise NftError("no chain for %s: %r" % (verdict, line))
                table["maps"][name][key] = verdict
            elif key not in table["maps"][name]:
                raise NftError("no element %s: %r" % (key, line))
            else:
                del table["maps"][name][key]
        elif name in table["sets"]:
            values = [v.strip() for v in body.split(",")]
            if verb == "add":
                table["sets"][name] = sorted(set(table["sets"][name]) | set(values))
            else:
                table["sets"][name] = sorted(set(table["sets"][name]) - set(values))
        else:
            raise NftError("no map or set %s: %r" % (name, line))
