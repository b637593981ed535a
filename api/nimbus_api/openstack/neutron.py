"""Neutron v2.0 under ``/networking``: networks and subnets, and what the other Neutron modules share (ports:
neutron_ports.py, security groups: neutron_security.py, routers and floating IPs: neutron_routers.py).

The hosts hold the networks (the networks resource view: ``network_info`` on the network and compute hosts);
a network or subnet made through this API is known there by its id, which is its name on the hosts, and its
display name and description are kept here (``Record``). A network made on the hosts by hand shows with its
host name as both id and name. Changes are jobs of the runbooks (operations.py): a new network is ``BUILD``
until the hosts show it, ``ERROR`` if its job failed.

Tenant networks are VXLAN networks with a VNI from ``tenant_vni_range``, given out here so that no two share
one; the cloud admin may make provider networks (flat, vlan, vxlan with a given segment), shared or
external ones, and networks for another project.
"""

from __future__ import annotations

import ipaddress
import uuid

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from nimbus_api import identity, quotas
from nimbus_api.deps import get_db
from nimbus_api.models import Job, Operation, Project, Record, Segment, now
from nimbus_api.openstack import operations
from nimbus_api.policy import PolicyRoute, current_auth, policy

PREFIX = "/networking"
router = APIRouter(prefix=PREFIX, tags=["neutron"], route_class=PolicyRoute)
NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
EXTENSIONS = (("external-net", "Neutron external network", "Adds the router:external attribute to networks"),
              ("provider", "Provider Network", "Exposes the provider network attributes (cloud admin)"),
              ("net-mtu", "Network MTU", "Exposes the MTU of a network"),
              ("project-id", "project_id field enabled", "Accepts project_id next to tenant_id"),
              ("standard-attr-description", "standard-attr-description", "Descriptions on resources"),
              ("quotas", "Quota management support", "Per-project quotas"),
              ("security-group", "security-group", "Security groups and their rules (IPv4)"),
              ("port-security", "Port Security", "Whether a port is filtered"),
              ("router", "Neutron L3 Router", "Routers with an external gateway (SNAT) and floating IPs"),
              ("ext-gw-mode", "Neutron L3 Configurable external gateway mode", "enable_snat on a router's gateway"))


def _root(request: Request) -> str:
    return str(request.base_url).rstrip("/") + PREFIX


class Loose(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


# --- versions and extensions ----------------------------------------------------------------

@router.get("", include_in_schema=False)
@router.get("/")
@policy("public")
def versions(request: Request):
    return {"versions": [{"id": "v2.0", "status": "CURRENT",
                          "links": [{"rel": "self", "href": _root(request) + "/v2.0/"}]}]}


@router.get("/v2.0", include_in_schema=False)
@router.get("/v2.0/")
@policy("authenticated")
def resources(request: Request):
    return {"resources": [{"name": name, "collection": name + "s",
                           "links": [{"rel": "self", "href": _root(request) + "/v2.0/" + name + "s"}]}
                          for name in ("network", "subnet", "port", "security-group", "security-group-rule", "router",
                                       "floatingip")]}


def _extension(alias, name, description):
    return {"alias": alias, "name": name, "description": description, "updated": "2013-01-01T00:00:00-00:00",
            "links": []}


@router.get("/v2.0/extensions")
@policy("authenticated")
def extensions():
    return {"extensions": [_extension(*e) for e in EXTENSIONS]}


@router.get("/v2.0/extensions/{alias}")
@policy("authenticated")
def extension(alias: str):
    for e in EXTENSIONS:
        if e[0] == alias:
            return {"extension": _extension(*e)}
    raise HTTPException(status_code=404, detail="Extension with alias %s does not exist" % alias[:64])


# --- what the hosts hold, with what the API keeps --------------------------------------------

def records(db, kind: str) -> dict[str, Record]:
    return {r.id: r for r in db.scalars(select(Record).where(Record.kind == kind))}


def view_of(request: Request, db, auth, kind: str) -> tuple[list[dict], float]:
    """A resource view's items the token may see (every project's for the cloud admin), read after the last
    job that changed them ended, and when the read began."""
    views = request.app.state.resources
    if not views.available(kind):
        return [], 0
    if auth.is_admin:
        items, _errors, read_at = views.read(kind)
        return items, read_at
    if auth.project_id is None:
        return [], 0
    view = views.for_project(kind, db.get(Project, auth.project_id))
    return view["items"], view.get("read_at", 0)


def _view(request: Request, db, auth) -> tuple[list[dict], float]:
    """The networks the token may see (all of them for the cloud admin), as the hosts hold them."""
    views = request.app.state.resources
    if not views.available("networks"):
        return [], 0
    if auth.is_admin or auth.project_id is None:
        items, _errors, read_at = views.read("networks")
        if not auth.is_admin:
            items = []
    else:
        view = views.for_project("networks", db.get(Project, auth.project_id))
        items, read_at = view["items"], view.get("read_at", 0)
    return items, read_at


def _network_out(item: dict, record: Record | None, auth, status: str = "ACTIVE", pending_subnets=()) -> dict:
    network_id = item["name"]
    project = item.get("project") or ""
    out = {
        "id": network_id, "name": record.name if record else network_id, "description": record.description if record
        else "", "tenant_id": project, "project_id": project, "status": status,
        "admin_state_up": True, "shared": bool(item.get("shared")), "router:external": bool(item.get("external")),
        "mtu": item.get("mtu"), "port_security_enabled": True, "availability_zones": ["nova"],
        "subnets": [s["name"] for s in item.get("subnets") or []] + list(pending_subnets),
        "tags": [], "revision_number": 0, "is_default": False,
        "created_at": stamp(record, "created_at"), "updated_at": stamp(record, "updated_at"),
    }
    if auth.is_admin:
        out.update({"provider:network_type": item.get("type"), "provider:physical_network": item.get("physical_network"),
                    "provider:segmentation_id": item.get("segmentation_id")})
    return out


def _networks(request: Request, db, auth) -> list[dict]:
    """Every network the token may see: the hosts', those being made or whose making failed, with the changes
    in flight."""
    items, read_at = _view(request, db, auth)
    known = records(db, "network")
    project = None if auth.is_admin else auth.project_id
    pending = operations.pending(db, project, "network", read_at)
    subnet_ops = operations.pending(db, project, "subnet", read_at)
    building_subnets = {}
    for op in subnet_ops:
        if op.operation.action == "create" and op.in_flight:
            building_subnets.setdefault(op.shown.get("network_id"), []).append(op.operation.resource_id)
    out = {}
    for item in items:
        out[item["name"]] = _network_out(item, known.get(item["name"]), auth,
                                         pending_subnets=building_subnets.get(item["name"], ()))
    for op in pending:
        network_id = op.operation.resource_id
        if network_id in out:
            if op.in_flight and op.operation.action == "delete":
                out[network_id]["status"] = "DOWN"
            continue
        if op.operation.action == "create" and (op.in_flight or op.failed):
            shown = op.shown
            item = {"name": network_id, "project": op.operation.project_id, "shared": shown.get("shared"),
                    "external": shown.get("external"), "mtu": shown.get("mtu"), "type": shown.get("type"),
                    "physical_network": shown.get("physical_network"),
                    "segmentation_id": shown.get("segmentation_id"), "subnets": []}
            view = _network_out(item, known.get(network_id), auth, "BUILD" if op.in_flight else "ERROR",
                                building_subnets.get(network_id, ()))
            if op.failed:
                view["description"] = (view["description"] + " " if view["description"] else "") + \
                    "[failed: %s]" % operations.fault(db, op)
            out[network_id] = view
    return list(out.values())


def filtered(rows: list[dict], request: Request) -> list[dict]:
    """Neutron's equality filters (?name=...&shared=true), on the fields a row has; repeated values are ORed."""
    wanted = {}
    for key, value in request.query_params.multi_items():
        if key in ("fields", "limit", "marker", "sort_key", "sort_dir", "page_reverse"):
            continue
        wanted.setdefault(key, []).append(value)
    out = []
    for row in rows:
        if all(key in row and _text(row[key]) in values for key, values in wanted.items()):
            out.append(row)
    return out


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def fields(rows: list[dict], request: Request) -> list[dict]:
    fields = request.query_params.getlist("fields")
    if not fields:
        return rows
    return [{k: v for k, v in row.items() if k in fields} for row in rows]


# --- networks ---------------------------------------------------------------------------------

class NetworkBody(Loose):
    name: str = Field(default="", max_length=255)
    description: str = Field(default="", max_length=255)
    admin_state_up: bool = True
    shared: bool = False
    external: bool = Field(default=False, alias="router:external")
    network_type: str | None = Field(default=None, alias="provider:network_type", pattern="^(flat|vlan|vxlan)$")
    physical_network: str | None = Field(default=None, alias="provider:physical_network", pattern=NAME)
    segmentation_id: int | None = Field(default=None, alias="provider:segmentation_id", ge=1, le=16777215)
    mtu: int | None = Field(default=None, ge=68, le=9000)
    port_security_enabled: bool = True
    project_id: str | None = Field(default=None, max_length=64)
    tenant_id: str | None = Field(default=None, max_length=64)


class NetworkCreate(Loose):
    network: NetworkBody


class NetworkUpdate(Loose):
    network: dict


def target_project(db, auth, body) -> str:
    """The project a new resource is for: the token's, or any project for the cloud admin."""
    wanted = body.project_id or body.tenant_id
    if wanted and wanted != auth.project_id:
        if not auth.is_admin:
            raise HTTPException(status_code=403, detail="Only the cloud admin makes resources of another project")
        identity.get_or_404(db, Project, wanted, "project")
        return wanted
    if auth.project_id is None:
        raise HTTPException(status_code=403, detail="A project-scoped token is needed")
    return auth.project_id


def _allocate_vni(db, settings, network_id: str) -> int:
    """The lowest free tenant VNI, held for this network (the unique index settles a race: the loser takes
    the next one)."""
    # VNIs of networks whose deletion has finished are free again.
    done = (select(Operation.resource_id).join(Job, Operation.job_id == Job.id)
            .where(Operation.resource == "network", Operation.action == "delete", Job.status == "successful"))
    db.execute(delete(Segment).where(Segment.network_id.in_(done)))
    first, last = settings.tenant_vnis
    used = set(db.scalars(select(Segment.segmentation_id).where(Segment.type == "vxlan",
                                                                Segment.segmentation_id.between(first, last))))
    for vni in range(first, last + 1):
        if vni in used:
            continue
        try:
            with db.begin_nested():
                db.add(Segment(type="vxlan", segmentation_id=vni, network_id=network_id))
            return vni
        except IntegrityError:
            continue
    raise HTTPException(status_code=503, detail="No tenant network segment is free (tenant_vni_range %s)"
                        % settings.tenant_vni_range)


def _count(request, db, auth, project_id: str, kind: str) -> int:
    items, read_at = _view(request, db, auth)
    if kind == "networks":
        mine = {i["name"] for i in items if i.get("project") == project_id}
    else:
        mine = {s["name"] for i in items for s in i.get("subnets") or [] if s.get("project") == project_id}
    resource = "network" if kind == "networks" else "subnet"
    for op in operations.pending(db, project_id, resource, read_at):
        if op.operation.action == "create" and not op.failed:
            mine.add(op.operation.resource_id)
    return len(mine)


def _quota(request, db, auth, project_id: str, kind: str):
    limit = quotas.limits(db, request.app.state.settings, project_id)[kind]
    used = _count(request, db, auth, project_id, kind)
    if not quotas.allows(limit, used, 1):
        raise HTTPException(status_code=409, detail="Quota exceeded for resources: ['%s']." % kind[:-1])


@router.post("/v2.0/networks", status_code=201)
@policy("member")
def create_network(body: NetworkCreate, request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    n = body.network
    project_id = target_project(db, auth, n)
    admin_only = [k for k, v in (("shared", n.shared), ("router:external", n.external),
                                 ("provider:network_type", n.network_type)) if v]
    if admin_only and not auth.is_admin:
        raise HTTPException(status_code=403, detail="Only the cloud admin sets %s" % ", ".join(admin_only))
    if not n.admin_state_up or not n.port_security_enabled:
        raise HTTPException(status_code=400, detail="admin_state_up and port_security_enabled false are not supported")
    network_id = str(uuid.uuid4())
    kind = n.network_type or "vxlan"
    if kind == "flat" and (n.segmentation_id is not None or not n.physical_network):
        raise HTTPException(status_code=400, detail="A flat network needs provider:physical_network and no segment")
    if kind == "vlan" and (n.segmentation_id is None or n.segmentation_id > 4094 or not n.physical_network):
        raise HTTPException(status_code=400, detail="A vlan network needs provider:physical_network and a "
                            "provider:segmentation_id of 1 to 4094")
    if kind == "vxlan" and n.physical_network:
        raise HTTPException(status_code=400, detail="A vxlan network has no provider:physical_network")
    settings = request.app.state.settings
    shown = {"name": n.name, "type": kind, "physical_network": n.physical_network, "mtu": n.mtu,
             "shared": n.shared, "external": n.external, "segmentation_id": n.segmentation_id}
    extra_vars = {"network_id": network_id, "network_type": kind, "network_shared": n.shared,
                  "network_external": n.external}
    if n.physical_network:
        extra_vars["network_physical_network"] = n.physical_network
    if n.mtu:
        extra_vars["network_mtu"] = n.mtu

    def check():
        _quota(request, db, auth, project_id, "networks")
        segment = n.segmentation_id
        if kind == "vxlan" and segment is None:
            segment = _allocate_vni(db, settings, network_id)
        elif segment is not None:
            try:
                with db.begin_nested():
                    db.add(Segment(type=kind, segmentation_id=segment, network_id=network_id))
            except IntegrityError:
                raise HTTPException(status_code=409, detail="Segment %s %d is in use" % (kind, segment))
        if segment is not None:
            extra_vars["network_segmentation_id"] = segment
            shown["segmentation_id"] = segment
        db.add(Record(kind="network", id=network_id, project_id=project_id, name=n.name,
                      description=n.description))

    operations.launch(request, db, auth, "network", network_id, "create", extra_vars, shown, check=check,
                      project_id=project_id)
    item = {"name": network_id, "project": project_id, "shared": n.shared, "external": n.external, "mtu": n.mtu,
            "type": kind, "physical_network": n.physical_network, "segmentation_id": shown["segmentation_id"]}
    return {"network": _network_out(item, db.get(Record, ("network", network_id)), auth, "BUILD")}


@router.get("/v2.0/networks")
@policy("authenticated")
def list_networks(request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    return {"networks": listing(_networks(request, db, auth), request)}


def one(rows: list[dict], resource_id: str, what: str) -> dict:
    for row in rows:
        if row["id"] == resource_id:
            return row
    raise HTTPException(status_code=404, detail="%s %s could not be found." % (what, resource_id[:64]))


def listing(rows: list[dict], request: Request) -> list[dict]:
    return fields(filtered(rows, request), request)


def find_network(request, db, auth, network_id: str) -> dict:
    return one(_networks(request, db, auth), network_id, "Network")


@router.get("/v2.0/networks/{network_id}")
@policy("authenticated")
def show_network(network_id: str, request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    return {"network": fields([find_network(request, db, auth, network_id)], request)[0]}


def owned(row: dict, auth, what: str) -> None:
    """Changes are the owner's (and the cloud admin's); a shared or external network is only used by others."""
    if not auth.is_admin and row["project_id"] != auth.project_id:
        raise HTTPException(status_code=403, detail="Only the %s's project may change %s %s" % (what, what, row["id"]))


def stamp(record: Record | None, key: str) -> str | None:
    """A record's created_at or updated_at as Neutron writes times; None without a record."""
    value = getattr(record, key, None) if record else None
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def update_record(db, kind: str, shown: dict, given: dict, project_id: str) -> None:
    """A PUT of name and description: kept here (the hosts know a resource by its id)."""
    unsupported = sorted(set(given) - {"name", "description"})
    if unsupported:
        raise HTTPException(status_code=400, detail="Only name and description change (not %s)"
                            % ", ".join(k[:32] for k in unsupported))
    for key in ("name", "description"):
        value = given.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > 255):
            raise HTTPException(status_code=400, detail="Invalid input for %s" % key)
    record = db.get(Record, (kind, shown["id"]))
    if record is None:
        record = Record(kind=kind, id=shown["id"], project_id=project_id, name=shown["name"],
                        description=shown["description"])
        db.add(record)
    for key in ("name", "description"):
        if given.get(key) is not None:
            setattr(record, key, given[key])
    record.updated_at = now()
    db.commit()


@router.put("/v2.0/networks/{network_id}")
@policy("member")
def update_network(network_id: str, body: NetworkUpdate, request: Request, auth=Depends(current_auth),
                   db=Depends(get_db)):
    network = find_network(request, db, auth, network_id)
    owned(network, auth, "network")
    update_record(db, "network", network, body.network, network["project_id"] or auth.project_id)
    return {"network": find_network(request, db, auth, network_id)}


@router.delete("/v2.0/networks/{network_id}", status_code=204)
@policy("member")
def delete_network(network_id: str, request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    network = find_network(request, db, auth, network_id)
    owned(network, auth, "network")
    items, _read_at = _view(request, db, auth)
    if any(i["name"] == network_id and i.get("port_count") for i in items):
        raise HTTPException(status_code=409, detail="Unable to complete operation on network %s. There are one or "
                            "more ports still in use on the network." % network_id)
    operations.cancel_creates(db, network["project_id"], "network", network_id)
    operations.launch(request, db, auth, "network", network_id, "delete", {"network_id": network_id},
                      {"name": network["name"]}, project_id=network["project_id"] or auth.project_id,
                      after=operations.network_work(db, [network_id]))
    return Response(status_code=204)


# --- subnets ----------------------------------------------------------------------------------

class Pool(Loose):
    start: str = Field(max_length=64)
    end: str = Field(max_length=64)


class Route(Loose):
    destination: str = Field(max_length=64)
    nexthop: str = Field(max_length=64)


class SubnetBody(Loose):
    network_id: str = Field(max_length=64)
    cidr: str = Field(max_length=64)
    ip_version: int = 4
    name: str = Field(default="", max_length=255)
    description: str = Field(default="", max_length=255)
    gateway_ip: str | None = Field(default="", max_length=64)
    allocation_pools: list[Pool] = Field(default=[], max_length=16)
    dns_nameservers: list[str] = Field(default=[], max_length=5)
    host_routes: list[Route] = Field(default=[], max_length=16)
    enable_dhcp: bool = True
    project_id: str | None = Field(default=None, max_length=64)
    tenant_id: str | None = Field(default=None, max_length=64)


class SubnetCreate(Loose):
    subnet: SubnetBody


def address(value: str, what: str) -> str:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise HTTPException(status_code=400, detail="Invalid input for %s: %r is not an IP address" % (what, value[:64]))
    if address.version != 4:
        raise HTTPException(status_code=400, detail="Invalid input for %s: only IPv4" % what)
    return str(address)


def _subnet_out(subnet: dict, network: dict, record: Record | None) -> dict:
    subnet_id = subnet["name"]
    return {
        "id": subnet_id, "name": record.name if record else subnet_id,
        "description": record.description if record else "", "network_id": network["id"],
        "tenant_id": subnet.get("project") or network["project_id"], "project_id": subnet.get("project")
        or network["project_id"], "ip_version": 4, "cidr": subnet.get("cidr"), "gateway_ip": subnet.get("gateway"),
        "allocation_pools": subnet.get("allocation_pools") or [], "dns_nameservers": subnet.get("dns_servers") or [],
        "host_routes": [{"destination": r["destination"], "nexthop": r["nexthop"]}
                        for r in subnet.get("host_routes") or []],
        "enable_dhcp": bool(subnet.get("enable_dhcp")), "ipv6_ra_mode": None, "ipv6_address_mode": None,
        "subnetpool_id": None, "tags": [], "revision_number": 0, "service_types": [],
        "created_at": stamp(record, "created_at"), "updated_at": stamp(record, "updated_at"),
    }


def subnets(request: Request, db, auth) -> list[dict]:
    items, read_at = _view(request, db, auth)
    networks = {n["id"]: n for n in _networks(request, db, auth)}
    known = records(db, "subnet")
    out = {}
    for item in items:
        network = networks.get(item["name"])
        for subnet in item.get("subnets") or []:
            # As in Neutron, a project sees the subnets of shared and external networks too.
            if network is not None and (auth.is_admin or network["project_id"] == auth.project_id
                                        or network["shared"] or network["router:external"]):
                out[subnet["name"]] = _subnet_out(subnet, network, known.get(subnet["name"]))
    project = None if auth.is_admin else auth.project_id
    for op in operations.pending(db, project, "subnet", read_at):
        if op.operation.resource_id in out or op.operation.action != "create" or not op.in_flight:
            continue
        shown = op.shown
        network = networks.get(shown.get("network_id"))
        if network is not None:
            out[op.operation.resource_id] = _subnet_out(dict(shown, name=op.operation.resource_id),
                                                        network, known.get(op.operation.resource_id))
    return list(out.values())


@router.post("/v2.0/subnets", status_code=201)
@policy("member")
def create_subnet(body: SubnetCreate, request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    s = body.subnet
    if s.ip_version != 4:
        raise HTTPException(status_code=400, detail="Only IPv4 subnets are supported")
    network = find_network(request, db, auth, s.network_id)
    owned(network, auth, "network")
    try:
        cidr = ipaddress.ip_network(s.cidr, strict=True)
    except ValueError:
        raise HTTPException(status_code=400, detail="Invalid input for cidr: %r is not a network address" % s.cidr[:64])
    if cidr.version != 4 or not 8 <= cidr.prefixlen <= 30:
        raise HTTPException(status_code=400, detail="Invalid input for cidr: an IPv4 network of /8 to /30")
    for existing in subnets(request, db, auth):
        if existing["network_id"] == network["id"] and existing["cidr"] and \
                cidr.overlaps(ipaddress.ip_network(existing["cidr"])):
            raise HTTPException(status_code=400, detail="Invalid input for cidr: %s overlaps with subnet %s"
                                % (cidr, existing["id"]))
    subnet_id = str(uuid.uuid4())
    extra_vars = {"subnet_id": subnet_id, "subnet_network": network["id"], "subnet_cidr": str(cidr),
                  "subnet_enable_dhcp": s.enable_dhcp}
    if s.gateway_ip:
        gateway = address(s.gateway_ip, "gateway_ip")
        if ipaddress.ip_address(gateway) not in cidr:
            raise HTTPException(status_code=400, detail="Invalid input for gateway_ip: not in %s" % cidr)
        extra_vars["subnet_gateway"] = gateway
    elif s.gateway_ip == "":
        extra_vars["subnet_gateway"] = str(next(cidr.hosts()))
    if s.allocation_pools:
        extra_vars["subnet_allocation_pools"] = [{"start": address(p.start, "allocation_pools"),
                                                  "end": address(p.end, "allocation_pools")}
                                                 for p in s.allocation_pools]
    if s.dns_nameservers:
        extra_vars["subnet_dns_servers"] = [address(d, "dns_nameservers") for d in s.dns_nameservers]
    if s.host_routes:
        extra_vars["subnet_host_routes"] = [{"destination": str(_route_destination(r.destination)),
                                             "nexthop": address(r.nexthop, "host_routes")} for r in s.host_routes]
    project_id = network["project_id"] or auth.project_id
    shown = {"network_id": network["id"], "cidr": str(cidr), "gateway": extra_vars.get("subnet_gateway"),
             "allocation_pools": extra_vars.get("subnet_allocation_pools", []),
             "dns_servers": extra_vars.get("subnet_dns_servers", []),
             "host_routes": extra_vars.get("subnet_host_routes", []), "enable_dhcp": s.enable_dhcp,
             "project": project_id}

    def check():
        _quota(request, db, auth, project_id, "subnets")
        db.add(Record(kind="subnet", id=subnet_id, project_id=project_id, name=s.name, description=s.description))

    operations.launch(request, db, auth, "subnet", subnet_id, "create", extra_vars, shown, check=check,
                      project_id=project_id, after=operations.in_flight(db, "network", [network["id"]]))
    return {"subnet": _subnet_out(dict(shown, name=subnet_id), network, db.get(Record, ("subnet", subnet_id)))}


def _route_destination(value: str):
    try:
        return ipaddress.IPv4Network(value, strict=True)
    except ValueError:
        raise HTTPException(status_code=400, detail="Invalid input for host_routes: %r" % value[:64])


@router.get("/v2.0/subnets")
@policy("authenticated")
def list_subnets(request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    return {"subnets": listing(subnets(request, db, auth), request)}


def _find_subnet(request, db, auth, subnet_id: str) -> dict:
    return one(subnets(request, db, auth), subnet_id, "Subnet")


@router.get("/v2.0/subnets/{subnet_id}")
@policy("authenticated")
def show_subnet(subnet_id: str, request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    return {"subnet": fields([_find_subnet(request, db, auth, subnet_id)], request)[0]}


@router.delete("/v2.0/subnets/{subnet_id}", status_code=204)
@policy("member")
def delete_subnet(subnet_id: str, request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    subnet = _find_subnet(request, db, auth, subnet_id)
    network = find_network(request, db, auth, subnet["network_id"])
    owned(network, auth, "network")
    items, _read_at = _view(request, db, auth)
    if any(i["name"] == network["id"] and i.get("port_count") for i in items):
        raise HTTPException(status_code=409, detail="Unable to complete operation on subnet %s: one or more ports "
                            "have an IP allocation from this subnet." % subnet_id)
    operations.launch(request, db, auth, "subnet", subnet_id, "delete",
                      {"subnet_id": subnet_id, "subnet_network": network["id"]},
                      {"name": subnet["name"], "network_id": network["id"]}, project_id=subnet["project_id"],
                      after=operations.in_flight(db, "subnet", [subnet_id]))
    return Response(status_code=204)
