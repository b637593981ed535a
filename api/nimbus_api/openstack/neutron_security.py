"""Neutron v2.0 security groups and their rules, under ``/networking/v2.0/security-groups`` and
``/security-group-rules``.

The compute hosts hold the groups (the security groups view: ``security_group_info``), each with the rules it
enforces; a group made through this API is known there by its id, its display name and description are kept
here (``Record``). A rule has no id on the hosts: its id is derived from its group and what it matches, so it
is the same on every read. Every change of a group (its creation, a rule added or deleted) is a job of the
runbook ``security_group_create``, given the group's whole rule set; changes of one group run one after the
other, each from the rules the one before it leaves.

As in Neutron, a new group lets everything out (an egress rule, which may be deleted like any other), and each
project has a group named ``default`` (ingress from its own members, everything out), made the first time the
project needs it: when it lists its groups, or creates a port or a server without naming groups.
Only IPv4 rules: an ``IPv6`` rule is refused.
"""

from __future__ import annotations

import ipaddress
import json
import uuid

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import Field

from nimbus_api import quotas
from nimbus_api.deps import get_db
from nimbus_api.models import Record
from nimbus_api.openstack import neutron, operations
from nimbus_api.policy import PolicyRoute, current_auth, policy

router = APIRouter(prefix=neutron.PREFIX, tags=["neutron"], route_class=PolicyRoute)
DEFAULT = "default"
_IDS = uuid.UUID("6c1f6a7e-93b5-4f0e-a1d2-7d4b0c5e8f31")  # the uuid5 namespace of derived ids
PROTOCOLS = {"tcp": "tcp", "udp": "udp", "icmp": "icmp", "6": "tcp", "17": "udp", "1": "icmp"}
ANY_EGRESS = {"direction": "egress", "protocol": "any", "port_range_min": None, "port_range_max": None,
              "remote_ip_prefix": None, "remote_group": None}


def default_id(project_id: str) -> str:
    """The id of a project's default group: one per project, whoever asks for it first."""
    return str(uuid.uuid5(_IDS, "default-security-group:" + project_id))


def canonical(rule: dict) -> dict:
    """A rule as the hosts keep it, in one form: what its id is derived from."""
    low, high = rule.get("port_range_min"), rule.get("port_range_max")
    protocol = str(rule.get("protocol") or "any")
    if protocol in ("tcp", "udp") and low is not None and high == low:
        high = None  # a single port: the hosts keep no upper bound
    prefix = rule.get("remote_ip_prefix")
    return {"direction": rule.get("direction") or "ingress", "protocol": protocol, "port_range_min": low,
            "port_range_max": high, "remote_ip_prefix": None if prefix in (None, "", "0.0.0.0/0") else prefix,
            "remote_group": rule.get("remote_group") or None}


def rule_id(group_id: str, rule: dict) -> str:
    return str(uuid.uuid5(_IDS, group_id + ":" + json.dumps(canonical(rule), sort_keys=True)))


def _rule_out(group_id: str, project: str, rule: dict) -> dict:
    rule = canonical(rule)
    low, high = rule["port_range_min"], rule["port_range_max"]
    if rule["protocol"] in ("tcp", "udp") and low is not None and high is None:
        high = low
    return {"id": rule_id(group_id, rule), "security_group_id": group_id, "direction": rule["direction"],
            "ethertype": "IPv4", "protocol": None if rule["protocol"] == "any" else rule["protocol"],
            "port_range_min": low, "port_range_max": high,
            "remote_ip_prefix": rule["remote_ip_prefix"] or ("0.0.0.0/0" if not rule["remote_group"] else None),
            "remote_group_id": rule["remote_group"], "remote_address_group_id": None, "description": "",
            "tenant_id": project, "project_id": project, "tags": [], "revision_number": 0,
            "created_at": None, "updated_at": None}


# --- what the hosts hold, with the changes in flight -------------------------------------------

def _states(request: Request, db, auth) -> dict[str, dict]:
    """Every group the token may see, by id: its project, its rules (those the last change in flight gives,
    else the hosts'), its status and the operation that made it, if any is still shown."""
    items, read_at = neutron.view_of(request, db, auth, "security_groups")
    out = {i["name"]: {"project": i.get("project") or "", "rules": [canonical(r) for r in i.get("rules") or []],
                       "status": "ACTIVE", "description": i.get("description") or ""} for i in items}
    project = None if auth.is_admin else auth.project_id
    for op in operations.pending(db, project, "security_group", read_at):
        group_id = op.operation.resource_id
        if op.operation.action == "delete":
            if op.in_flight:  # gone for the API's users once the delete is accepted, as in Neutron
                out.pop(group_id, None)
            continue
        if op.in_flight or (op.failed and op.operation.action == "create" and group_id not in out):
            out[group_id] = {"project": op.operation.project_id, "rules": op.shown.get("rules") or [],
                             "status": "BUILD" if op.in_flight else "ERROR",
                             "description": op.shown.get("description") or "", "fault": op if op.failed else None}
    return out


def _group_out(db, group_id: str, state: dict, record: Record | None) -> dict:
    description = record.description if record else state["description"]
    if state.get("fault") is not None:
        description = (description + " " if description else "") + "[failed: %s]" % operations.fault(db, state["fault"])
    project = state["project"]
    return {"id": group_id, "name": record.name if record else group_id, "description": description,
            "tenant_id": project, "project_id": project, "stateful": True, "shared": False, "tags": [],
            "revision_number": 0,
            "security_group_rules": [_rule_out(group_id, project, r) for r in state["rules"]],
            "created_at": neutron.stamp(record, "created_at"), "updated_at": neutron.stamp(record, "updated_at")}


def groups(request: Request, db, auth) -> list[dict]:
    records = neutron.records(db, "security_group")
    return [_group_out(db, gid, state, records.get(gid)) for gid, state in sorted(_states(request, db, auth).items())]


def _find(request: Request, db, auth, group_id: str) -> dict:
    return neutron.one(groups(request, db, auth), group_id, "Security group")


def _can_make(request: Request, db, auth) -> bool:
    """Whether this cloud has security groups (the view and the runbook) and the caller may change them."""
    if not request.app.state.resources.available("security_groups"):
        return False
    try:
        operations.runbook(db, auth, "security_group", "create")
    except HTTPException:
        return False
    return True


def ensure_default(request: Request, db, auth, project_id: str) -> str | None:
    """The project's default group's id, its creation queued if it has none; None where the cloud has no
    security groups or the caller may not make one."""
    group_id = default_id(project_id)
    if db.get(Record, ("security_group", group_id)) is not None:
        return group_id
    if not _can_make(request, db, auth):
        return None
    rules = [ANY_EGRESS, canonical({"direction": "ingress", "remote_group": group_id})]

    def check():
        if db.get(Record, ("security_group", group_id)) is not None:
            raise _AlreadyMade()
        db.add(Record(kind="security_group", id=group_id, project_id=project_id, name=DEFAULT,
                      description="Default security group"))

    try:
        operations.launch(request, db, auth, "security_group", group_id, "create",
                          _extra_vars(group_id, "Default security group", rules),
                          {"rules": rules, "description": "Default security group"}, check=check,
                          project_id=project_id)
    except _AlreadyMade:
        pass
    return group_id


class _AlreadyMade(Exception):
    """Another request made the default group first (under the project's lock)."""


def group_names(request: Request, db, auth, project_id: str, refs: list[str] | None) -> list[str]:
    """The groups (their names on the hosts) a port or server of the project is in: those named or given by
    id, or the project's default group when none are."""
    if refs is None:
        made = ensure_default(request, db, auth, project_id)
        return [made] if made else []
    known = [g for g in groups(request, db, auth) if g["project_id"] == project_id]
    out = []
    for ref in refs:
        if ref == DEFAULT and not any(g["name"] == DEFAULT for g in known):
            made = ensure_default(request, db, auth, project_id)
            if made:
                out.append(made)
                continue
        found = [g for g in known if g["id"] == ref] or [g for g in known if g["name"] == ref]
        if not found:
            raise HTTPException(status_code=404, detail="Security group %s does not exist" % ref[:64])
        if len(found) > 1:
            raise HTTPException(status_code=409, detail="Multiple security groups are named %s: give an id" % ref[:64])
        out.append(found[0]["id"])
    return sorted(set(out))


def _extra_vars(group_id: str, description: str, rules: list[dict]) -> dict:
    return {"security_group_id": group_id, "security_group_description": description,
            "security_group_rules": [canonical(r) for r in rules]}


def _rule_count(request, db, auth, project_id: str, states=None) -> int:
    states = states if states is not None else _states(request, db, auth)
    return sum(len(s["rules"]) for s in states.values() if s["project"] == project_id and s["status"] != "ERROR")


def _quota(request, db, auth, project_id: str, kind: str, wanted: int):
    limit = quotas.limits(db, request.app.state.settings, project_id)[kind]
    states = _states(request, db, auth)
    if kind == "security_groups":
        used = sum(1 for s in states.values() if s["project"] == project_id and s["status"] != "ERROR")
    else:
        used = _rule_count(request, db, auth, project_id, states)
    if not quotas.allows(limit, used, wanted):
        raise HTTPException(status_code=409, detail="Quota exceeded for resources: ['%s']." % kind[:-1])


# --- groups ----------------------------------------------------------------------------------

class GroupBody(neutron.Loose):
    name: str = Field(default="", max_length=255)
    description: str = Field(default="", max_length=255)
    stateful: bool = True
    project_id: str | None = Field(default=None, max_length=64)
    tenant_id: str | None = Field(default=None, max_length=64)


class GroupCreate(neutron.Loose):
    security_group: GroupBody


class GroupUpdate(neutron.Loose):
    security_group: dict


@router.get("/v2.0/security-groups")
@policy("authenticated")
def list_groups(request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    if auth.project_id is not None:
        ensure_default(request, db, auth, auth.project_id)
    return {"security_groups": neutron.listing(groups(request, db, auth), request)}


@router.get("/v2.0/security-groups/{group_id}")
@policy("authenticated")
def show_group(group_id: str, request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    return {"security_group": neutron.fields([_find(request, db, auth, group_id)], request)[0]}


@router.post("/v2.0/security-groups", status_code=201)
@policy("member")
def create_group(body: GroupCreate, request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    g = body.security_group
    project_id = neutron.target_project(db, auth, g)
    if not g.stateful:
        raise HTTPException(status_code=400, detail="Stateless security groups are not supported")
    if g.name == DEFAULT:
        ensure_default(request, db, auth, project_id)
        raise HTTPException(status_code=409, detail="Default security group already exists (each project has one)")
    group_id = str(uuid.uuid4())
    rules = [ANY_EGRESS]

    def check():
        _quota(request, db, auth, project_id, "security_groups", 1)
        _quota(request, db, auth, project_id, "security_group_rules", len(rules))
        db.add(Record(kind="security_group", id=group_id, project_id=project_id, name=g.name,
                      description=g.description))

    operations.launch(request, db, auth, "security_group", group_id, "create",
                      _extra_vars(group_id, g.description, rules), {"rules": rules, "description": g.description},
                      check=check, project_id=project_id)
    return {"security_group": _find(request, db, auth, group_id)}


@router.put("/v2.0/security-groups/{group_id}")
@policy("member")
def update_group(group_id: str, body: GroupUpdate, request: Request, auth=Depends(current_auth),
                 db=Depends(get_db)):
    group = _find(request, db, auth, group_id)
    neutron.owned(group, auth, "security group")
    renamed = body.security_group.get("name") not in (None, group["name"])
    if renamed and DEFAULT in (group["name"], body.security_group["name"]):
        raise HTTPException(status_code=409, detail="The default security group keeps its name")
    neutron.update_record(db, "security_group", group, body.security_group, group["project_id"] or auth.project_id)
    return {"security_group": _find(request, db, auth, group_id)}


@router.delete("/v2.0/security-groups/{group_id}", status_code=204)
@policy("member")
def delete_group(group_id: str, request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    from nimbus_api.openstack import neutron_ports  # noqa: PLC0415 - ports name their groups

    group = _find(request, db, auth, group_id)
    neutron.owned(group, auth, "security group")
    if group["name"] == DEFAULT and group_id == default_id(group["project_id"]) and not auth.is_admin:
        raise HTTPException(status_code=409, detail="Removing the default security group is not allowed")
    users = [p["id"] for p in neutron_ports.ports(request, db, auth) if group_id in p["security_groups"]]
    if users:
        raise HTTPException(status_code=409, detail="Security group %s in use by ports %s" % (group_id, ", ".join(users[:5])))
    naming = [g["id"] for g in groups(request, db, auth)
              if g["id"] != group_id and any(r["remote_group_id"] == group_id for r in g["security_group_rules"])]
    if naming:
        raise HTTPException(status_code=409, detail="Security group %s is named by the rules of %s"
                            % (group_id, ", ".join(naming[:5])))
    operations.cancel_creates(db, group["project_id"], "security_group", group_id)

    def forget():
        # The default group is made again the next time the project needs one.
        record = db.get(Record, ("security_group", group_id))
        if record is not None and group_id == default_id(group["project_id"]):
            db.delete(record)

    operations.launch(request, db, auth, "security_group", group_id, "delete", {"security_group_id": group_id},
                      {"name": group["name"]}, check=forget, project_id=group["project_id"],
                      after=operations.in_flight(db, "security_group", [group_id]))
    return Response(status_code=204)


# --- rules -----------------------------------------------------------------------------------

class RuleBody(neutron.Loose):
    security_group_id: str = Field(max_length=64)
    direction: str = Field(pattern="^(ingress|egress)$")
    ethertype: str = Field(default="IPv4", pattern="^IPv[46]$")
    protocol: str | int | None = None
    port_range_min: int | None = Field(default=None, ge=0, le=65535)
    port_range_max: int | None = Field(default=None, ge=0, le=65535)
    remote_ip_prefix: str | None = Field(default=None, max_length=64)
    remote_group_id: str | None = Field(default=None, max_length=64)
    remote_address_group_id: str | None = None
    description: str = Field(default="", max_length=255)
    project_id: str | None = Field(default=None, max_length=64)
    tenant_id: str | None = Field(default=None, max_length=64)


class RuleCreate(neutron.Loose):
    security_group_rule: RuleBody


def _rule(request, db, auth, group: dict, r: RuleBody) -> dict:
    """The request's rule as the hosts take it, checked as Neutron checks it."""
    if r.ethertype != "IPv4":
        raise HTTPException(status_code=400, detail="Only IPv4 rules are supported")
    if r.remote_address_group_id:
        raise HTTPException(status_code=400, detail="Address groups are not supported")
    if r.remote_ip_prefix and r.remote_group_id:
        raise HTTPException(status_code=400, detail="Only remote_ip_prefix or remote_group_id may be provided")
    protocol = "any"
    if r.protocol not in (None, "", "any", "0"):
        protocol = PROTOCOLS.get(str(r.protocol).lower())
        if protocol is None:
            number = str(r.protocol)
            if not number.isdigit() or not 0 <= int(number) <= 255:
                raise HTTPException(status_code=400, detail="Security group rule protocol %s not supported"
                                    % str(r.protocol)[:32])
            protocol = number
    low, high = r.port_range_min, r.port_range_max
    if protocol in ("tcp", "udp"):
        if low is None and high is not None or low is not None and high is not None and low > high:
            raise HTTPException(status_code=400, detail="For TCP/UDP protocols, port_range_min must be <= "
                                "port_range_max")
    elif protocol == "icmp":
        if low is None and high is not None or low is not None and low > 255 or high is not None and high > 255:
            raise HTTPException(status_code=400, detail="Invalid ICMP type or code (0 to 255; a code needs a type)")
    elif low is not None or high is not None:
        raise HTTPException(status_code=400, detail="Ports are given only for tcp, udp and icmp rules")
    prefix = None
    if r.remote_ip_prefix:
        try:
            network = ipaddress.ip_network(r.remote_ip_prefix, strict=False)
        except ValueError:
            raise HTTPException(status_code=400, detail="Invalid input for remote_ip_prefix: %r" % r.remote_ip_prefix[:64])
        if network.version != 4:
            raise HTTPException(status_code=400, detail="Only IPv4 rules are supported")
        prefix = str(network)
    remote_group = None
    if r.remote_group_id:
        remote = _find(request, db, auth, r.remote_group_id)
        if remote["project_id"] != group["project_id"]:
            raise HTTPException(status_code=404, detail="Security group %s does not exist" % r.remote_group_id[:64])
        remote_group = remote["id"]
    return canonical({"direction": r.direction, "protocol": protocol, "port_range_min": low, "port_range_max": high,
                      "remote_ip_prefix": prefix, "remote_group": remote_group})


def _change_rules(request, db, auth, group: dict, rules: list[dict], wanted_more: int):
    """Queue the group's new rule set, after the changes of the group in flight."""
    group_id = group["id"]

    def check():
        if wanted_more > 0:
            _quota(request, db, auth, group["project_id"], "security_group_rules", wanted_more)

    after = operations.in_flight(db, "security_group", [group_id]) + operations.in_flight(
        db, "security_group", [r["remote_group"] for r in rules if r.get("remote_group")])
    record = db.get(Record, ("security_group", group_id))
    description = record.description if record else ""
    operations.launch(request, db, auth, "security_group", group_id, "update",
                      _extra_vars(group_id, description, rules), {"rules": rules, "description": description},
                      check=check, runbook_action="create", project_id=group["project_id"], after=after)


def _rules(request, db, auth) -> list[dict]:
    return [rule for g in groups(request, db, auth) for rule in g["security_group_rules"]]


def _current_rules(group: dict) -> list[dict]:
    return [canonical({"direction": r["direction"], "protocol": r["protocol"], "port_range_min": r["port_range_min"],
                       "port_range_max": r["port_range_max"], "remote_ip_prefix": r["remote_ip_prefix"],
                       "remote_group": r["remote_group_id"]}) for r in group["security_group_rules"]]


@router.post("/v2.0/security-group-rules", status_code=201)
@policy("member")
def create_rule(body: RuleCreate, request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    r = body.security_group_rule
    group = _find(request, db, auth, r.security_group_id)
    neutron.owned(group, auth, "security group")
    rule = _rule(request, db, auth, group, r)
    new_id = rule_id(group["id"], rule)
    rules = _current_rules(group)
    if any(existing["id"] == new_id for existing in group["security_group_rules"]):
        raise HTTPException(status_code=409, detail="Security group rule already exists. Rule id is %s." % new_id)
    _change_rules(request, db, auth, group, rules + [rule], 1)
    return {"security_group_rule": _rule_out(group["id"], group["project_id"], rule)}


@router.get("/v2.0/security-group-rules")
@policy("authenticated")
def list_rules(request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    return {"security_group_rules": neutron.listing(_rules(request, db, auth), request)}


@router.get("/v2.0/security-group-rules/{rule_id}")
@policy("authenticated")
def show_rule(rule_id: str, request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    return {"security_group_rule": neutron.fields([neutron.one(_rules(request, db, auth), rule_id,
                                                               "Security group rule")], request)[0]}


@router.delete("/v2.0/security-group-rules/{rule_id}", status_code=204)
@policy("member")
def delete_rule(rule_id: str, request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    rule = neutron.one(_rules(request, db, auth), rule_id, "Security group rule")
    group = _find(request, db, auth, rule["security_group_id"])
    neutron.owned(group, auth, "security group")
    kept = [r for r, shown in zip(_current_rules(group), group["security_group_rules"]) if shown["id"] != rule_id]
    _change_rules(request, db, auth, group, kept, 0)
    return Response(status_code=204)
