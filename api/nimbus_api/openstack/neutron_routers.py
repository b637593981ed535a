"""Neutron v2.0 routers and floating IPs, under ``/networking/v2.0/routers`` and ``/floatingips``.

The network node holds them (the routers and floating IPs views: ``router_info`` on the first network host);
one made through this API is known there by its id, its display name and description are kept here
(``Record``). A router's every change (its creation, its gateway, an interface added or removed) is a job of
the runbook ``router_create`` given the router's whole state, the changes of one router one after the other;
a floating IP's creation and every re-pointing are jobs of ``floating_ip_create``.

A floating IP is carried by a router of its project with a gateway on the floating IP's network (and, when it
leads to a port, joined to the port's network), chosen when it is made; it cannot move to another router.
"""

from __future__ import annotations

import ipaddress
import uuid

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import Field

from nimbus_api import identity, quotas
from nimbus_api.deps import get_db
from nimbus_api.models import Record
from nimbus_api.openstack import neutron, neutron_ports, operations
from nimbus_api.policy import PolicyRoute, current_auth, policy

router = APIRouter(prefix=neutron.PREFIX, tags=["neutron"], route_class=PolicyRoute)


# --- routers: what the network node holds, with the changes in flight ----------------------------

def _router_states(request: Request, db, auth) -> dict[str, dict]:
    items, read_at = neutron.view_of(request, db, auth, "routers")
    out = {}
    for item in items:
        gateway = item.get("external_gateway") or None
        out[item["name"]] = {
            "project": item.get("project") or "", "status": "ACTIVE", "enable_snat": item.get("enable_snat", True),
            "interfaces": [{k: i.get(k) for k in ("network", "subnet", "ip", "port_id")} for i in item.get("interfaces") or []],
            "gateway": gateway}
    project = None if auth.is_admin else auth.project_id
    for op in operations.pending(db, project, "router", read_at):
        router_id = op.operation.resource_id
        if op.operation.action == "delete":
            if op.in_flight:  # gone for the API's users once the delete is accepted, as in Neutron
                out.pop(router_id, None)
            continue
        if op.in_flight or (op.failed and op.operation.action == "create" and router_id not in out):
            shown = op.shown
            held = out.get(router_id, {})
            gateway = None
            if shown.get("external_network"):
                kept = held.get("gateway") or {}
                gateway = {"network": shown["external_network"], "subnet": kept.get("subnet"), "ip": kept.get("ip")} \
                    if kept.get("network") == shown["external_network"] else {"network": shown["external_network"]}
            ips = {i["subnet"]: i for i in held.get("interfaces") or []}
            out[router_id] = {"project": op.operation.project_id,
                              "status": held.get("status", "ALLOCATING") if op.in_flight else "ERROR",
                              "enable_snat": shown.get("enable_snat", True), "gateway": gateway,
                              "interfaces": [dict(ips.get(i["subnet"], {}), **i) for i in shown.get("interfaces") or []],
                              "fault": op if op.failed else None}
    return out


def _router_out(db, router_id: str, state: dict, record: Record | None) -> dict:
    gateway = state["gateway"]
    description = record.description if record else ""
    if state.get("fault") is not None:
        description = (description + " " if description else "") + "[failed: %s]" % operations.fault(db, state["fault"])
    return {
        "id": router_id, "name": record.name if record else router_id, "description": description,
        "tenant_id": state["project"], "project_id": state["project"], "status": state["status"],
        "admin_state_up": True, "distributed": False, "ha": False, "routes": [], "flavor_id": None,
        "availability_zones": ["nova"], "availability_zone_hints": [], "tags": [], "revision_number": 0,
        "external_gateway_info": None if not gateway else {
            "network_id": gateway["network"], "enable_snat": bool(state["enable_snat"]),
            "external_fixed_ips": [{"subnet_id": gateway.get("subnet"), "ip_address": gateway.get("ip")}]
            if gateway.get("ip") else []},
        "created_at": neutron.stamp(record, "created_at"), "updated_at": neutron.stamp(record, "updated_at"),
    }


def routers(request: Request, db, auth) -> dict[str, dict]:
    """Every router the token may see, by id, with its state (``_state``) for the changes that follow."""
    records = neutron.records(db, "router")
    out = {}
    for router_id, state in sorted(_router_states(request, db, auth).items()):
        shown = _router_out(db, router_id, state, records.get(router_id))
        shown["_state"] = state
        out[router_id] = shown
    return out


def _find_router(request: Request, db, auth, router_id: str) -> dict:
    found = routers(request, db, auth).get(router_id)
    if found is None:
        raise HTTPException(status_code=404, detail="Router %s could not be found." % router_id[:64])
    return found


def _count(states: dict, project_id: str) -> int:
    return sum(1 for s in states.values() if s["project"] == project_id and s["status"] != "ERROR")


def _quota(request, db, project_id: str, kind: str, used: int):
    limit = quotas.limits(db, request.app.state.settings, project_id)[kind]
    if not quotas.allows(limit, used, 1):
        raise HTTPException(status_code=409, detail="Quota exceeded for resources: ['%s']." % kind[:-1])


def _external_network(request, db, auth, network_id: str) -> dict:
    network = neutron.find_network(request, db, auth, network_id)
    if not network["router:external"]:
        raise HTTPException(status_code=400, detail="Bad router request: network %s is not an external network"
                            % network_id[:64])
    if not any(s["network_id"] == network["id"] for s in neutron.subnets(request, db, auth)):
        raise HTTPException(status_code=400, detail="Bad router request: external network %s has no subnet"
                            % network_id[:64])
    return network


def _gateway(request, db, auth, given: dict | None) -> dict:
    """A request's external_gateway_info as the runbook's variables ({} clears the gateway)."""
    if not given:
        return {"router_external_network": ""}
    if not isinstance(given, dict) or not isinstance(given.get("network_id"), str):
        raise HTTPException(status_code=400, detail="Invalid input for external_gateway_info: give network_id")
    network = _external_network(request, db, auth, given["network_id"])
    out = {"router_external_network": network["id"], "router_enable_snat": given.get("enable_snat", True) is not False}
    fixed = given.get("external_fixed_ips") or []
    if fixed:
        if not auth.is_admin:
            raise HTTPException(status_code=403, detail="Only the cloud admin chooses a gateway's address")
        address = fixed[0].get("ip_address") if isinstance(fixed[0], dict) else None
        if not isinstance(address, str):
            raise HTTPException(status_code=400, detail="Invalid input for external_fixed_ips: give ip_address")
        out["router_external_fixed_ip"] = neutron.address(address, "external_fixed_ips")
    return out


def _change_router(request, db, auth, router_id: str, project_id: str, interfaces: list[dict], gateway: dict,
                   action: str, check=None):
    """Queue the router's whole state, after the changes of it and of its networks in flight."""
    extra_vars = {"router_id": router_id, "router_interfaces": interfaces, **gateway}
    shown = {"interfaces": interfaces, "external_network": gateway.get("router_external_network", ""),
             "enable_snat": gateway.get("router_enable_snat", True)}
    networks = [i["network"] for i in interfaces] + ([shown["external_network"]] if shown["external_network"] else [])
    operations.launch(request, db, auth, "router", router_id, action, extra_vars, shown, check=check,
                      runbook_action="create", project_id=project_id,
                      after=operations.in_flight(db, "router", [router_id]) + operations.network_work(db, networks))


def _gateway_vars(state: dict) -> dict:
    gateway = state["gateway"]
    if not gateway:
        return {"router_external_network": ""}
    return {"router_external_network": gateway["network"], "router_enable_snat": bool(state["enable_snat"])}


def _interfaces(state: dict) -> list[dict]:
    return [{"network": i["network"], "subnet": i["subnet"]} for i in state["interfaces"]]


class RouterBody(neutron.Loose):
    name: str = Field(default="", max_length=255)
    description: str = Field(default="", max_length=255)
    admin_state_up: bool = True
    external_gateway_info: dict | None = None
    project_id: str | None = Field(default=None, max_length=64)
    tenant_id: str | None = Field(default=None, max_length=64)


class RouterCreate(neutron.Loose):
    router: RouterBody


class RouterUpdate(neutron.Loose):
    router: dict


class InterfaceBody(neutron.Loose):
    subnet_id: str | None = Field(default=None, max_length=64)
    port_id: str | None = Field(default=None, max_length=64)


@router.get("/v2.0/routers")
@policy("authenticated")
def list_routers(request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    rows = [neutron_ports.public(r) for r in routers(request, db, auth).values()]
    return {"routers": neutron.listing(rows, request)}


@router.get("/v2.0/routers/{router_id}")
@policy("authenticated")
def show_router(router_id: str, request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    return {"router": neutron.fields([neutron_ports.public(_find_router(request, db, auth, router_id))], request)[0]}


@router.post("/v2.0/routers", status_code=201)
@policy("member")
def create_router(body: RouterCreate, request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    r = body.router
    project_id = neutron.target_project(db, auth, r)
    if not r.admin_state_up:
        raise HTTPException(status_code=400, detail="admin_state_up false is not supported")
    gateway = _gateway(request, db, auth, r.external_gateway_info)
    router_id = str(uuid.uuid4())

    def check():
        _quota(request, db, project_id, "routers", _count(_router_states(request, db, auth), project_id))
        db.add(Record(kind="router", id=router_id, project_id=project_id, name=r.name, description=r.description))

    _change_router(request, db, auth, router_id, project_id, [], gateway, "create", check=check)
    return {"router": neutron_ports.public(_find_router(request, db, auth, router_id))}


@router.put("/v2.0/routers/{router_id}")
@policy("member")
def update_router(router_id: str, body: RouterUpdate, request: Request, auth=Depends(current_auth),
                  db=Depends(get_db)):
    found = _find_router(request, db, auth, router_id)
    neutron.owned(found, auth, "router")
    given = dict(body.router)
    unsupported = sorted(set(given) - {"name", "description", "external_gateway_info", "admin_state_up"})
    if unsupported or given.get("admin_state_up", True) is not True:
        raise HTTPException(status_code=400, detail="Only name, description and external_gateway_info change (not %s)"
                            % ", ".join(k[:32] for k in unsupported or ["admin_state_up"]))
    for key in ("name", "description"):
        if key in given and (not isinstance(given[key], str) or len(given[key]) > 255):
            raise HTTPException(status_code=400, detail="Invalid input for %s" % key)
    if "external_gateway_info" in given:
        gateway = _gateway(request, db, auth, given.pop("external_gateway_info"))
        state = found["_state"]
        if gateway != _gateway_vars(state):
            if _floating_ips_of(request, db, auth, router_id):
                raise HTTPException(status_code=409, detail="Gateway of router %s is used by floating IPs: delete "
                                    "or disassociate them first" % router_id)
            _change_router(request, db, auth, router_id, found["project_id"], _interfaces(state), gateway, "update")
    if given.get("admin_state_up") is True:
        del given["admin_state_up"]
    if given:
        neutron.update_record(db, "router", found, given, found["project_id"] or auth.project_id)
    return {"router": neutron_ports.public(_find_router(request, db, auth, router_id))}


@router.put("/v2.0/routers/{router_id}/add_router_interface")
@policy("member")
def add_interface(router_id: str, body: InterfaceBody, request: Request, auth=Depends(current_auth),
                  db=Depends(get_db)):
    found = _find_router(request, db, auth, router_id)
    neutron.owned(found, auth, "router")
    if body.port_id or not body.subnet_id:
        raise HTTPException(status_code=400, detail="Give subnet_id (joining a router by a port is not supported)")
    subnet = neutron.one(neutron.subnets(request, db, auth), body.subnet_id, "Subnet")
    network = neutron.find_network(request, db, auth, subnet["network_id"])
    if network["router:external"]:
        raise HTTPException(status_code=400, detail="Bad router request: an external network is a gateway, not an "
                            "interface")
    if network["project_id"] != found["project_id"] and not network["shared"]:
        raise HTTPException(status_code=404, detail="Subnet %s could not be found." % body.subnet_id[:64])
    if not subnet["gateway_ip"]:
        raise HTTPException(status_code=400, detail="Bad router request: subnet %s has no gateway IP" % subnet["id"])
    state = found["_state"]
    if any(i["network"] == network["id"] for i in state["interfaces"]):
        raise HTTPException(status_code=400, detail="Bad router request: router already has a port on network %s "
                            "(one per network)" % network["id"])
    interfaces = _interfaces(state) + [{"network": network["id"], "subnet": subnet["id"]}]
    _change_router(request, db, auth, router_id, found["project_id"], interfaces, _gateway_vars(state), "update")
    return _interface_answer(found, network["id"], subnet["id"])


def _interface_answer(found: dict, network_id: str, subnet_id: str) -> dict:
    return {"id": found["id"], "tenant_id": found["project_id"], "project_id": found["project_id"],
            "network_id": network_id, "subnet_id": subnet_id, "subnet_ids": [subnet_id],
            "port_id": neutron_ports.host_port_id(network_id, "router-" + found["id"])}


@router.put("/v2.0/routers/{router_id}/remove_router_interface")
@policy("member")
def remove_interface(router_id: str, body: InterfaceBody, request: Request, auth=Depends(current_auth),
                     db=Depends(get_db)):
    found = _find_router(request, db, auth, router_id)
    neutron.owned(found, auth, "router")
    state = found["_state"]
    leg = [i for i in state["interfaces"] if (body.subnet_id and i["subnet"] == body.subnet_id)
           or (body.port_id and body.port_id in (i.get("port_id"),
                                                 neutron_ports.host_port_id(i["network"], "router-" + router_id)))]
    if not leg:
        raise HTTPException(status_code=404, detail="Router %s has no interface on %s"
                            % (router_id, (body.subnet_id or body.port_id or "")[:64]))
    network_id = leg[0]["network"]
    used = [f["id"] for f in _floating_ips_of(request, db, auth, router_id) if f["_network"] == network_id]
    if used:
        raise HTTPException(status_code=409, detail="Router interface for subnet %s on router %s cannot be deleted, "
                            "as it is required by one or more floating IPs (%s)."
                            % (leg[0]["subnet"], router_id, ", ".join(used[:5])))
    interfaces = [i for i in _interfaces(state) if i["network"] != network_id]
    _change_router(request, db, auth, router_id, found["project_id"], interfaces, _gateway_vars(state), "update")
    return _interface_answer(found, network_id, leg[0]["subnet"])


@router.delete("/v2.0/routers/{router_id}", status_code=204)
@policy("member")
def delete_router(router_id: str, request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    found = _find_router(request, db, auth, router_id)
    neutron.owned(found, auth, "router")
    if found["_state"]["interfaces"]:
        raise HTTPException(status_code=409, detail="Router %s still has ports: remove its interfaces first"
                            % router_id)
    if _floating_ips_of(request, db, auth, router_id):
        raise HTTPException(status_code=409, detail="Router %s is used by floating IPs: delete them first" % router_id)
    operations.cancel_creates(db, found["project_id"], "router", router_id)
    operations.launch(request, db, auth, "router", router_id, "delete", {"router_id": router_id},
                      {"name": found["name"]}, project_id=found["project_id"],
                      after=operations.in_flight(db, "router", [router_id]))
    return Response(status_code=204)


# --- floating IPs --------------------------------------------------------------------------------

def _fip_states(request: Request, db, auth) -> dict[str, dict]:
    items, read_at = neutron.view_of(request, db, auth, "floating_ips")
    out = {i["name"]: dict(i, status="ACTIVE" if i.get("port_id") else "DOWN") for i in items}
    project = None if auth.is_admin else auth.project_id
    for op in operations.pending(db, project, "floating_ip", read_at):
        fip_id = op.operation.resource_id
        if op.operation.action == "delete":
            if op.in_flight:
                out.pop(fip_id, None)
            continue
        if op.in_flight or (op.failed and op.operation.action == "create" and fip_id not in out):
            held = out.get(fip_id, {})
            shown = op.shown
            out[fip_id] = dict(held, project=op.operation.project_id, router=shown.get("router"),
                               network=shown.get("network"), floating_ip=held.get("floating_ip") or
                               shown.get("floating_ip"), status="DOWN" if op.in_flight else "ERROR",
                               port_id=None, pending_port=shown.get("port"), fixed_ip=shown.get("fixed_ip"))
            out[fip_id]["fault"] = op if op.failed else None
    return out


def floating_ips(request: Request, db, auth) -> list[dict]:
    """Every floating IP the token may see, with ``_network`` (the network of its port) for the checks."""
    records = neutron.records(db, "floating_ip")
    every = neutron_ports.ports(request, db, auth)
    ports = {p["_host_id"]: p for p in every if p["_host_id"]}
    by_id = {p["id"]: p for p in every}
    out = []
    for fip_id, state in sorted(_fip_states(request, db, auth).items()):
        record = records.get(fip_id)
        port = ports.get(state.get("port_id")) if state.get("port_id") else by_id.get(state.get("pending_port") or "")
        description = record.description if record else ""
        if state.get("fault") is not None:
            description = (description + " " if description else "") + "[failed: %s]" % operations.fault(db, state["fault"])
        out.append({
            "id": fip_id, "floating_ip_address": state.get("floating_ip"), "floating_network_id": state.get("network"),
            "router_id": state.get("router"), "port_id": port["id"] if port else None,
            "fixed_ip_address": state.get("fixed_ip") if port else None, "status": state["status"],
            "tenant_id": state.get("project") or "", "project_id": state.get("project") or "",
            "description": description, "tags": [], "revision_number": 0, "dns_domain": "", "dns_name": "",
            "port_details": None, "qos_policy_id": None,
            "created_at": neutron.stamp(record, "created_at"), "updated_at": neutron.stamp(record, "updated_at"),
            "_network": port["network_id"] if port else None})
    return out


def _floating_ips_of(request, db, auth, router_id: str) -> list[dict]:
    return [f for f in floating_ips(request, db, auth) if f["router_id"] == router_id]


def _find_fip(request, db, auth, fip_id: str) -> dict:
    return neutron.one(floating_ips(request, db, auth), fip_id, "Floating IP")


class FloatingIpBody(neutron.Loose):
    floating_network_id: str = Field(max_length=64)
    port_id: str | None = Field(default=None, max_length=64)
    fixed_ip_address: str | None = Field(default=None, max_length=64)
    floating_ip_address: str | None = Field(default=None, max_length=64)
    description: str = Field(default="", max_length=255)
    project_id: str | None = Field(default=None, max_length=64)
    tenant_id: str | None = Field(default=None, max_length=64)


class FloatingIpCreate(neutron.Loose):
    floatingip: FloatingIpBody


class FloatingIpUpdate(neutron.Loose):
    floatingip: dict


def _port_target(request, db, auth, project_id: str, port_id: str, fixed_ip: str | None) -> tuple[dict, dict]:
    """The port a floating IP leads to (the project's) and the runbook's variables for it."""
    port = neutron_ports.find_port(request, db, auth, port_id)
    if port["project_id"] != project_id:
        raise HTTPException(status_code=404, detail="Port %s could not be found." % port_id[:64])
    out = {"floating_ip_port": port["_host_name"], "floating_ip_port_network": port["network_id"]}
    if fixed_ip is not None:
        address = neutron.address(fixed_ip, "fixed_ip_address")
        if address not in [f["ip_address"] for f in port["fixed_ips"]]:
            raise HTTPException(status_code=400, detail="Bad floatingip request: port %s does not have fixed IP %s"
                                % (port["id"], address))
        out["floating_ip_fixed_ip"] = address
    return port, out


def _free_address(request, db, auth, network_id: str) -> str:
    """The address a new floating IP of this external network takes, chosen here so the answer carries it as
    Neutron's does: the highest free one of its subnets' pools (routers' gateways take the lowest ones, so a
    gateway being made at this moment does not take it), past every port of the network, whoever's, and the
    floating IPs being made."""
    views = request.app.state.resources
    items = views.read("ports")[0] if views.available("ports") else []
    taken = {f.get("ip") for i in items if i.get("network") == network_id for f in i.get("fixed_ips") or []}
    taken |= {p.shown.get("floating_ip") for p in operations.pending(db, None, "floating_ip") if p.in_flight}
    for subnet in neutron.subnets(request, db, auth):
        if subnet["network_id"] != network_id or not subnet["cidr"]:
            continue
        cidr = ipaddress.ip_network(subnet["cidr"])
        taken.add(subnet["gateway_ip"])
        pools = subnet["allocation_pools"] or [{"start": str(next(cidr.hosts())), "end": str(cidr.broadcast_address - 1)}]
        for pool in reversed(pools):
            address, first = ipaddress.ip_address(pool["end"]), ipaddress.ip_address(pool["start"])
            while address >= first:
                if str(address) not in taken:
                    return str(address)
                address -= 1
    raise HTTPException(status_code=409, detail="No more IP addresses available on network %s." % network_id)


def _carrier(request, db, auth, project_id: str, network_id: str, port: dict | None) -> str:
    """The project's router that carries a floating IP of this network (and reaches the port)."""
    for router_id, found in routers(request, db, auth).items():
        state = found["_state"]
        if state["project"] != project_id or not state["gateway"] or state["gateway"]["network"] != network_id:
            continue
        if port is None or any(i["network"] == port["network_id"] for i in state["interfaces"]):
            return router_id
    if port is not None:
        raise HTTPException(status_code=404, detail="External network %s is not reachable from subnet of port %s. "
                            "Therefore, cannot associate Port %s with a Floating IP." % (network_id, port["id"], port["id"]))
    raise HTTPException(status_code=409, detail="No router of the project has its gateway on network %s: a "
                        "floating IP is carried by one" % network_id)


@router.get("/v2.0/floatingips")
@policy("authenticated")
def list_floating_ips(request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    return {"floatingips": neutron.listing([neutron_ports.public(f) for f in floating_ips(request, db, auth)], request)}


@router.get("/v2.0/floatingips/{fip_id}")
@policy("authenticated")
def show_floating_ip(fip_id: str, request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    return {"floatingip": neutron.fields([neutron_ports.public(_find_fip(request, db, auth, fip_id))], request)[0]}


@router.post("/v2.0/floatingips", status_code=201)
@policy("member")
def create_floating_ip(body: FloatingIpCreate, request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    f = body.floatingip
    project_id = neutron.target_project(db, auth, f)
    network = _external_network(request, db, auth, f.floating_network_id)
    extra = {}
    if f.floating_ip_address is not None:
        if not auth.is_admin:
            raise HTTPException(status_code=403, detail="Only the cloud admin chooses a floating IP's address")
        address = neutron.address(f.floating_ip_address, "floating_ip_address")
        if not any(s["network_id"] == network["id"] and ipaddress.ip_address(address) in ipaddress.ip_network(s["cidr"])
                   for s in neutron.subnets(request, db, auth)):
            raise HTTPException(status_code=400, detail="Invalid input for floating_ip_address: not in a subnet of %s"
                                % network["id"])
        extra["floating_ip_address"] = address
    port = None
    if f.port_id:
        port, port_vars = _port_target(request, db, auth, project_id, f.port_id, f.fixed_ip_address)
        extra.update(port_vars)
    elif f.fixed_ip_address is not None:
        raise HTTPException(status_code=400, detail="fixed_ip_address needs port_id")
    carrier = _carrier(request, db, auth, project_id, network["id"], port)
    fip_id = str(uuid.uuid4())

    def check():
        used = sum(1 for s in _fip_states(request, db, auth).values()
                   if s.get("project") == project_id and s["status"] != "ERROR")
        _quota(request, db, project_id, "floating_ips", used)
        if "floating_ip_address" not in extra_vars:
            extra_vars["floating_ip_address"] = shown["floating_ip"] = _free_address(request, db, auth, network["id"])
        db.add(Record(kind="floating_ip", id=fip_id, project_id=project_id, name="", description=f.description))

    shown = {"router": carrier, "network": network["id"], "floating_ip": extra.get("floating_ip_address"),
             "port": port["id"] if port else None, "fixed_ip": extra.get("floating_ip_fixed_ip")}
    after = operations.in_flight(db, "router", [carrier]) + (operations.in_flight(db, "port", [port["id"]]) if port else [])
    extra_vars = {"floating_ip_id": fip_id, "floating_ip_router": carrier, **extra}
    # Every project's floating IPs of the network come from one pool: the lock of the network's owner (the
    # cloud admin's project for a network without one) makes two projects' creates choose one after the other,
    # so they never pick the same address.
    pool_owner = network["project_id"] or identity.admin_project_id(db, request.app.state.settings)
    operations.launch(request, db, auth, "floating_ip", fip_id, "create", extra_vars, shown, check=check,
                      project_id=project_id, after=after, also_lock=[pool_owner])
    return {"floatingip": neutron_ports.public(_find_fip(request, db, auth, fip_id))}


@router.put("/v2.0/floatingips/{fip_id}")
@policy("member")
def update_floating_ip(fip_id: str, body: FloatingIpUpdate, request: Request, auth=Depends(current_auth),
                       db=Depends(get_db)):
    found = _find_fip(request, db, auth, fip_id)
    neutron.owned(found, auth, "floating IP")
    given = dict(body.floatingip)
    unsupported = sorted(set(given) - {"port_id", "fixed_ip_address", "description"})
    if unsupported:
        raise HTTPException(status_code=400, detail="Only port_id, fixed_ip_address and description change (not %s)"
                            % ", ".join(k[:32] for k in unsupported))
    if "description" in given:
        neutron.update_record(db, "floating_ip", dict(found, name=""), {"description": given.pop("description")},
                              found["project_id"] or auth.project_id)
    if "port_id" in given or "fixed_ip_address" in given:
        port_id = given.pop("port_id", found["port_id"])
        fixed_ip = given.pop("fixed_ip_address", None)
        if port_id is not None and not isinstance(port_id, str) or fixed_ip is not None and not isinstance(fixed_ip, str):
            raise HTTPException(status_code=400, detail="Invalid input for port_id or fixed_ip_address")
        extra = {"floating_ip_port": ""}
        port = None
        if port_id:
            port, extra = _port_target(request, db, auth, found["project_id"], port_id, fixed_ip)
            state = routers(request, db, auth).get(found["router_id"], {}).get("_state") or {"interfaces": []}
            if not any(i["network"] == port["network_id"] for i in state["interfaces"]):
                raise HTTPException(status_code=404, detail="External network %s is not reachable from subnet of "
                                    "port %s." % (found["floating_network_id"], port["id"]))
        shown = {"router": found["router_id"], "network": found["floating_network_id"],
                 "floating_ip": found["floating_ip_address"], "port": port["id"] if port else None,
                 "fixed_ip": extra.get("floating_ip_fixed_ip")}
        after = operations.in_flight(db, "floating_ip", [fip_id]) + \
            (operations.in_flight(db, "port", [port["id"]]) if port else [])
        operations.launch(request, db, auth, "floating_ip", fip_id, "update",
                          {"floating_ip_id": fip_id, "floating_ip_router": found["router_id"], **extra}, shown,
                          runbook_action="create", project_id=found["project_id"], after=after)
    return {"floatingip": neutron_ports.public(_find_fip(request, db, auth, fip_id))}


@router.delete("/v2.0/floatingips/{fip_id}", status_code=204)
@policy("member")
def delete_floating_ip(fip_id: str, request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    found = _find_fip(request, db, auth, fip_id)
    neutron.owned(found, auth, "floating IP")
    operations.cancel_creates(db, found["project_id"], "floating_ip", fip_id)
    operations.launch(request, db, auth, "floating_ip", fip_id, "delete", {"floating_ip_id": fip_id},
                      {"address": found["floating_ip_address"]}, project_id=found["project_id"],
                      after=operations.in_flight(db, "floating_ip", [fip_id]))
    return Response(status_code=204)
