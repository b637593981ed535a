# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Security groups on a compute host: a record per group and its chains in ``inet nimbus``.

The record (``/etc/nimbus/security-groups/<name>.json``) keeps what nftables
cannot: the project, the description, ``allow_all_egress`` and the rules as the
tasks gave them, so a task that leaves ``rules`` out while it closes egress
keeps the group's own rules. The tables are the truth for what is enforced and
for the member set.

The planners are pure: a :class:`Host` snapshot (both tables and every record)
and a task in, a :class:`Plan` out.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from ansible_collections.nimbus.cloud.plugins.module_utils import _nftables as nft
from ansible_collections.nimbus.cloud.plugins.module_utils._errors import ValidationError
from ansible_collections.nimbus.cloud.plugins.module_utils._files import Records
from ansible_collections.nimbus.cloud.plugins.module_utils._resource import Plan, RemoveRecord, WriteRecord, desired

KIND = "security group"
RECORD_DIR = "/etc/nimbus/security-groups"
UPDATABLE = ("project", "description", "rules", "allow_all_egress")
CREATE_ONLY = ()
DEFAULTS = {"project": None, "description": None, "rules": [], "allow_all_egress": True}


@dataclass
class GroupRecord:
    name: str
    project: str | None = None
    description: str | None = None
    allow_all_egress: bool = True
    #: the enforced rules (with the implied egress rule), as the module returns them
    rules: list = field(default_factory=list)
    #: the rules the tasks gave, normalised; what a task that leaves ``rules`` out keeps
    given_rules: list = field(default_factory=list)

    def attributes(self):
        return {"project": self.project, "description": self.description, "rules": self.given_rules,
                "allow_all_egress": self.allow_all_egress}


def records():
    return Records(RECORD_DIR, kind=GroupRecord)


def given_rules(raw):
    """Rules as the record keeps them: validated, de-duplicated, sorted, without the implied egress rule."""
    return [r.view() for r in nft.build_rules(raw, allow_all_egress=False)]


@dataclass
class Host:
    """What the planners read: the two tables and every group's record."""

    tables: nft.Tables
    records: list = field(default_factory=list)

    def record(self, name):
        return next((r for r in self.records if r.name == name), None)

    def find(self, name):
        """The group's record; a bare one when only its chains are left (the record was removed); or None."""
        record = self.record(name)
        if record is None and (nft.group_defined(self.tables, name) or nft.members_set(name) in self.tables.inet.sets):
            return GroupRecord(name=name)
        return record


def read_host(runner):
    loaded = records().load_all()
    # Records written before the rules were kept normalised compare equal to what a task gives now.
    return Host(nft.read(runner), [replace(r, given_rules=given_rules(r.given_rules)) for r in loaded])


def view(record, members):
    data = asdict(record)
    del data["given_rules"]
    data["members"] = list(members)
    return data


def plan_present(host, name, task, ports=None):
    """The group as ``task`` (the attributes it gives) wants it; ``ports`` given, the member set follows them."""
    record = host.record(name)
    current = record or host.find(name)
    wanted = desired(KIND, name, current.attributes() if current else None, task,
                     create_only=CREATE_ONLY, defaults=DEFAULTS)
    rules = nft.build_rules(wanted["rules"], wanted["allow_all_egress"])
    members = nft.group_members(name, ports) if ports is not None else None
    lines = nft.base_lines(host.tables) + nft.group_lines(host.tables, name, rules, members)
    present_members = host.tables.inet.sets.get(nft.members_set(name), [])
    new = GroupRecord(name=name, project=wanted["project"], description=wanted["description"],
                      allow_all_egress=wanted["allow_all_egress"], rules=[r.view() for r in rules],
                      given_rules=given_rules(wanted["rules"]))
    steps = nft.steps(lines)
    if record != new:
        steps.append(WriteRecord(records(), name, asdict(new)))
    before = view(current, present_members) if current else {}
    return Plan(steps, before, view(new, present_members if members is None else members))


def plan_absent(host, name):
    """Delete the group here; refused while a port on this host or another group's rules use it."""
    current = host.find(name)
    if current is None:
        return Plan()
    check_unused(host, name)
    steps = nft.steps(nft.delete_group_lines(host.tables, name))
    if host.record(name) is not None:
        steps.append(RemoveRecord(records(), name))
    members = host.tables.inet.sets.get(nft.members_set(name), [])
    return Plan(steps, view(current, members), {})


def check_unused(host, name):
    ports = nft.group_users(host.tables, name)
    if ports:
        raise ValidationError("security group %s is used by ports on this host (ids %s...); unplug them first"
                              % (name, ", ".join(ports)))
    naming = sorted(other.name for other in host.records
                    if other.name != name and any(r.get("remote_group") == name for r in other.rules))
    if naming:
        raise ValidationError("security group %s is named by the rules of %s" % (name, ", ".join(naming)))
