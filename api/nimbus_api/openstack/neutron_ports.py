"""Neutron v2.0 ports under ``/networking/v2.0/ports``.

The network node holds the ports (the ports resource view: ``port_info`` on the first network host): their
MAC, their addresses (DHCP reservations) and what uses them. A port made through this API is known there by
its id; its display name and description are kept here (``Record``). A port a server made for itself is named
``<server id>-<n>`` on the hosts, which is its id here, and has no display name, as in Neutron.

A new port is unplugged (``DOWN``) until a server is created with it (Nova's ``networks: [{"port": id}]``);
the server's deletion unplugs it and keeps it. A port in use by a server or a router is not deleted here.
"""

from __future__ import annotations

import ipaddress
import re
import uuid

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import Field

from nimbus_api import quotas
from nimbus_api.deps import get_db
from nimbus_api.models import Record
from nimbus_api.openstack import neutron, operations
from nimbus_api.policy import PolicyRoute, current_auth, policy

router = APIRouter(prefix=neutron.PREFIX, tags=["neutron"], route_class=PolicyRoute)
MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")


# The collection's ids (plugins/module_utils/_ipam.py derive_id): the port module derives a port's id from its
# network and name, the same on every host and run.
_HOST_IDS = uuid.UUID("5b1f0c3e-2a7d-5c4e-9a61-6e696d627573")
# Ports named after their router, one per network: known here by their host id, their names repeat.
ROUTER_OWNERS = ("network:router_interface", "network:router_gateway")


def host_port_id(network: str, name: str) -> str:
    """The id the port module gives port ``name`` of ``network``."""
    return str(uuid.uuid5(_HOST_IDS, "/".join(("port", network, name))))


def _view(request: Request, db, auth) -> tuple[list[dict], float]:
    # Servers, routers and floating IPs make and remove ports too.
    return neutron.view_of(request, db, auth, "ports")


def _status(item: dict) -> str:
    return "ACTIVE" if item.get("device_id") else "DOWN"


def _port_out(item: dict, record: Record | None, status: str | None = None) -> dict:
    """A port as Neutron shows it, with ``_host_name`` and ``_host_id`` (its name and id on the network node)
    for the changes that name it; ``public`` drops them."""
    port_id = item["id"] if item.get("device_owner") in ROUTER_OWNERS and item.get("id") else item["name"]
    project = item.get("project") or ""
    if record is not None:
        name = record.name
    elif item.get("device_owner") == "compute" and port_id.startswith((item.get("device_id") or "") + "-"):
        name = ""  # a server's own port has no name in Neutron
    else:
        name = port_id
    owner = item.get("device_owner") or ""
    return {
        "id": port_id, "name": name, "description": record.description if record else "",
        "network_id": item.get("network"), "tenant_id": project, "project_id": project,
        "mac_address": item.get("mac"), "admin_state_up": True, "status": status or _status(item),
        "fixed_ips": [{"subnet_id": f.get("subnet"), "ip_address": f.get("ip")} for f in item.get("fixed_ips") or []],
        "device_id": item.get("device_id") or "", "device_owner": "compute:nova" if owner == "compute" else owner,
        "security_groups": list(item.get("security_groups") or []),
        "port_security_enabled": item.get("port_security", True) is not False,
        "allowed_address_pairs": [], "extra_dhcp_opts": [], "binding:vnic_type": "normal",
        "dns_name": item.get("hostname") or "", "tags": [], "revision_number": 0,
        "created_at": neutron.stamp(record, "created_at"), "updated_at": neutron.stamp(record, "updated_at"),
        "_host_name": item["name"], "_host_id": item.get("id"),
    }


def public(row: dict) -> dict:
    """A row as the API answers it: without the fields it keeps for itself (``_host_name``, ...)."""
    return {k: v for k, v in row.items() if not k.startswith("_")}


def ports(request: Request, db, auth) -> list[dict]:
    """Every port the token may see: the network node's, and those being made or whose making failed."""
    items, read_at = _view(request, db, auth)
    records = neutron.records(db, "port")
    out = {}
    for item in items:
        row = _port_out(item, records.get(item["name"]))
        out[row["id"]] = row
    project = None if auth.is_admin else auth.project_id
    for op in operations.pending(db, project, "port", read_at):
        port_id = op.operation.resource_id
        if op.operation.action == "delete":
            if op.in_flight:  # gone for the API's users once the delete is accepted, as in Neutron
                out.pop(port_id, None)
            continue
        if port_id in out:
            continue
        if op.operation.action == "create" and (op.in_flight or op.failed):
            item = dict(op.shown, name=port_id, project=op.operation.project_id)
            out[port_id] = _port_out(item, records.get(port_id), "BUILD" if op.in_flight else "ERROR")
    return list(out.values())


def find_port(request: Request, db, auth, port_id: str) -> dict:
    return neutron.one(ports(request, db, auth), port_id, "Port")


def count(request: Request, db, auth, project_id: str) -> int:
    """The project's ports: on the network node, and being made (by this API)."""
    items, read_at = _view(request, db, auth)
    mine = {i["name"] for i in items if i.get("project") == project_id}
    for op in operations.pending(db, project_id, "port", read_at):
        if op.operation.action == "create" and not op.failed:
            mine.add(op.operation.resource_id)
    return len(mine)


def check_quota(request: Request, db, auth, project_id: str, wanted: int) -> str | None:
    """Why ``wanted`` more ports would pass the project's limit; None when they fit."""
    limit = quotas.limits(db, request.app.state.settings, project_id)["ports"]
    used = count(request, db, auth, project_id)
    if not quotas.allows(limit, used, wanted):
        return "Quota exceeded for resources: ['port']."
    return None


# --- changes --------------------------------------------------------------------------------

class FixedIp(neutron.Loose):
    subnet_id: str | None = Field(default=None, max_length=64)
    ip_address: str | None = Field(default=None, max_length=64)


class PortBody(neutron.Loose):
    network_id: str = Field(max_length=64)
    name: str = Field(default="", max_length=255)
    description: str = Field(default="", max_length=255)
    admin_state_up: bool = True
    fixed_ips: list[FixedIp] | None = Field(default=None, max_length=8)
    mac_address: str | None = Field(default=None, max_length=32)
    security_groups: list[str] | None = Field(default=None, max_length=10)
    port_security_enabled: bool = True
    device_id: str = Field(default="", max_length=64)
    device_owner: str = Field(default="", max_length=64)
    project_id: str | None = Field(default=None, max_length=64)
    tenant_id: str | None = Field(default=None, max_length=64)


class PortCreate(neutron.Loose):
    port: PortBody


class PortUpdate(neutron.Loose):
    port: dict


def _fixed_ips(request, db, auth, network: dict, given: list[FixedIp]) -> list[dict]:
    """The request's fixed IPs as the port module takes them: each names a subnet of the port's network, an
    address in one, or both (checked here, so a job is never queued for what the hosts would refuse)."""
    subnets = {s["id"]: s for s in neutron.subnets(request, db, auth) if s["network_id"] == network["id"]}
    out = []
    for n, fixed in enumerate(given):
        entry = {}
        subnet = None
        if fixed.subnet_id is not None:
            subnet = subnets.get(fixed.subnet_id)
            if subnet is None:
                raise HTTPException(status_code=400, detail="Invalid input for fixed_ips[%d]: subnet %s is not a "
                                    "subnet of network %s" % (n, fixed.subnet_id[:64], network["id"]))
            entry["subnet"] = subnet["id"]
        if fixed.ip_address is not None:
            address = ipaddress.ip_address(neutron.address(fixed.ip_address, "fixed_ips"))
            inside = [s for s in subnets.values() if s["cidr"] and address in ipaddress.ip_network(s["cidr"])]
            if subnet is not None and subnet not in inside or not inside:
                raise HTTPException(status_code=400, detail="Invalid input for fixed_ips[%d]: %s is in no subnet of "
                                    "network %s" % (n, address, network["id"]))
            entry.update(subnet=inside[0]["id"], ip=str(address))
        if not entry:
            raise HTTPException(status_code=400, detail="Invalid input for fixed_ips[%d]: give subnet_id or "
                                "ip_address" % n)
        out.append(entry)
    return out


@router.post("/v2.0/ports", status_code=201)
@policy("member")
def create_port(body: PortCreate, request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    p = body.port
    project_id = neutron.target_project(db, auth, p)
    network = neutron.find_network(request, db, auth, p.network_id)
    if network["project_id"] != project_id and not network["shared"] and not auth.is_admin:
        raise HTTPException(status_code=403, detail="Only the network's project may make ports on network %s"
                            % network["id"])
    if p.device_id or p.device_owner:
        raise HTTPException(status_code=400, detail="A port is plugged by creating a server with it, not by "
                            "device_id or device_owner")
    if not p.admin_state_up:
        raise HTTPException(status_code=400, detail="admin_state_up false is not supported")
    if p.port_security_enabled is False and p.security_groups:
        raise HTTPException(status_code=400, detail="Port security must be enabled to have security groups")
    if not any(s["network_id"] == network["id"] for s in neutron.subnets(request, db, auth)):
        raise HTTPException(status_code=400, detail="Network %s has no subnet: a port takes its addresses from one"
                            % network["id"])
    port_id = str(uuid.uuid4())
    extra_vars = {"port_id": port_id, "port_network": network["id"], "port_security": p.port_security_enabled}
    if p.fixed_ips is not None:
        extra_vars["port_fixed_ips"] = _fixed_ips(request, db, auth, network, p.fixed_ips)
    if p.mac_address is not None:
        if not MAC.match(p.mac_address):
            raise HTTPException(status_code=400, detail="Invalid input for mac_address: %r" % p.mac_address[:32])
        extra_vars["port_mac"] = p.mac_address.lower()
    groups = []
    if p.port_security_enabled:
        from nimbus_api.openstack import neutron_security  # noqa: PLC0415 - the groups' module uses this one

        groups = neutron_security.group_names(request, db, auth, project_id, p.security_groups)
        extra_vars["port_security_groups"] = groups
    shown = {"network": network["id"], "mac": extra_vars.get("port_mac"), "device_id": "", "device_owner": "",
             "fixed_ips": extra_vars.get("port_fixed_ips", []), "security_groups": groups,
             "port_security": p.port_security_enabled}

    def check():
        refused = check_quota(request, db, auth, project_id, 1)
        if refused:
            raise HTTPException(status_code=409, detail=refused)
        db.add(Record(kind="port", id=port_id, project_id=project_id, name=p.name, description=p.description))

    after = operations.network_work(db, [network["id"]])
    if groups:
        after += operations.in_flight(db, "security_group", groups)
    operations.launch(request, db, auth, "port", port_id, "create", extra_vars, shown, check=check,
                      project_id=project_id, after=after)
    return {"port": public(_port_out(dict(shown, name=port_id, project=project_id), db.get(Record, ("port", port_id)),
                                     "DOWN"))}


@router.get("/v2.0/ports")
@policy("authenticated")
def list_ports(request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    return {"ports": neutron.listing([public(p) for p in ports(request, db, auth)], request)}


@router.get("/v2.0/ports/{port_id}")
@policy("authenticated")
def show_port(port_id: str, request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    return {"port": neutron.fields([public(find_port(request, db, auth, port_id))], request)[0]}


@router.put("/v2.0/ports/{port_id}")
@policy("member")
def update_port(port_id: str, body: PortUpdate, request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    port = find_port(request, db, auth, port_id)
    neutron.owned(port, auth, "port")
    neutron.update_record(db, "port", port, body.port, port["project_id"] or auth.project_id)
    return {"port": public(find_port(request, db, auth, port_id))}


@router.delete("/v2.0/ports/{port_id}", status_code=204)
@policy("member")
def delete_port(port_id: str, request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    port = find_port(request, db, auth, port_id)
    neutron.owned(port, auth, "port")
    if port["device_id"]:
        raise HTTPException(status_code=409, detail="Port %s is in use by %s %s: delete that first"
                            % (port_id, port["device_owner"] or "device", port["device_id"]))
    operations.cancel_creates(db, port["project_id"], "port", port_id)
    operations.launch(request, db, auth, "port", port_id, "delete",
                      {"port_id": port_id, "port_network": port["network_id"]}, {"name": port["name"]},
                      project_id=port["project_id"], after=operations.in_flight(db, "port", [port_id]))
    return Response(status_code=204)
