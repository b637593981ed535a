"""Nova v2.1 under ``/compute``: version documents and microversions, flavors, keypairs, quota sets and limits.

These are records of the API itself (Nova keeps them in its API database too): flavors are what the cloud
admin offers, keypairs belong to users, quotas to projects. Servers, which live on the hypervisors, are
created and changed by runbook playbooks; they come on top of this.

Microversion: only 2.1 (the base). A client asking for more gets 406, as Nova answers an unsupported one;
``latest`` is 2.1.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from starlette.datastructures import Headers

from nimbus_api import identity, quotas
from nimbus_api.deps import get_db
from nimbus_api.models import Flavor, FlavorAccess, Job, Keypair, Operation, Project, Record, User, new_id, now
from nimbus_api.openstack import cinder, glance, neutron, neutron_ports, neutron_security, operations
from nimbus_api.policy import PolicyRoute, current_auth, policy

PREFIX = "/compute"
router = APIRouter(prefix=PREFIX, tags=["nova"], route_class=PolicyRoute)

MIN_VERSION = MAX_VERSION = "2.1"
UPDATED = "2013-07-23T11:33:21Z"
SERVICE = "compute"
# Flavor ids and keypair names as Nova's schemas allow, minus the characters that need quoting anywhere.
NAME = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"
FLAVOR_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
MAX_PUBLIC_KEY = 16384


# --- versions and microversions -------------------------------------------------------

def _root(request: Request) -> str:
    return str(request.base_url).rstrip("/") + PREFIX


def _version(request: Request) -> dict:
    return {"id": "v2.1", "status": "CURRENT", "version": MAX_VERSION, "min_version": MIN_VERSION,
            "updated": UPDATED, "links": [{"rel": "self", "href": _root(request) + "/v2.1/"}],
            "media-types": [{"base": "application/json", "type": "application/vnd.openstack.compute+json;version=2.1"}]}


@router.get("", include_in_schema=False)
@router.get("/")
@policy("public")
def versions(request: Request):
    return {"versions": [_version(request)]}


@router.get("/v2.1", include_in_schema=False)
@router.get("/v2.1/")
@policy("public")
def version(request: Request):
    return {"version": _version(request)}


def requested_version(headers, service: str = SERVICE, legacy_header: str | None = "x-openstack-nova-api-version"):
    """The microversion a request asks for (None: none asked), from OpenStack-API-Version (the part for
    ``service``) or the service's legacy header."""
    value = headers.get("openstack-api-version")
    if value:
        for part in value.split(","):
            words = part.split()
            if len(words) == 2 and words[0].lower() == service:
                return words[1]
        return None
    return headers.get(legacy_header) if legacy_header else None


class Microversions:
    """Refuse microversions other than the one an API speaks and say which one answered, on every response
    under its prefix (Nova's /compute/v2.1 by default; Cinder's passes its own).

    Plain ASGI, like the service's other middleware: any other path passes straight through (the job
    event streams included), with no per-request wrapping.
    """

    def __init__(self, app, service: str = SERVICE, prefix: str = PREFIX + "/v2.1", version: str = MAX_VERSION,
                 also: tuple = ("2.0",), legacy_header: str | None = "X-OpenStack-Nova-API-Version"):
        self.app = app
        self.service, self.prefix, self.version = service, prefix, version
        self.accepted = {version, "latest", *also}
        self.legacy_header = legacy_header
        self.headers = [(b"openstack-api-version", ("%s %s" % (service, version)).encode())]
        if legacy_header:
            self.headers.append((legacy_header.lower().encode(), version.encode()))
        self.headers.append((b"vary", ", ".join(["OpenStack-API-Version"] + ([legacy_header] if legacy_header else []))
                             .encode()))

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            return await self.app(scope, receive, send)
        asked = requested_version(Headers(scope=scope), self.service, self.legacy_header)
        if asked is not None and asked.strip().lower() not in self.accepted:
            refusal = JSONResponse({"computeFault": {
                "code": 406, "message": "Version %s is not supported by the API. Minimum is %s and maximum is %s."
                % (asked[:16], self.version, self.version)}}, status_code=406)
            return await refusal(scope, receive, self._with_version_headers(send))
        return await self.app(scope, receive, self._with_version_headers(send))

    def _with_version_headers(self, send):
        async def sender(message):
            if message["type"] == "http.response.start":
                message = dict(message, headers=list(message.get("headers", [])) + self.headers)
            await send(message)
        return sender


# --- flavors -----------------------------------------------------------------------

class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class FlavorBody(_Loose):
    name: str = Field(pattern=NAME)
    id: str | None = Field(default=None, pattern=FLAVOR_ID + "|^auto$")
    vcpus: int = Field(ge=1, le=1024)
    ram: int = Field(ge=1, le=16 * 1024 * 1024)
    disk: int = Field(ge=0, le=1024 * 1024)
    ephemeral: int = Field(default=0, ge=0, le=1024 * 1024, alias="OS-FLV-EXT-DATA:ephemeral")
    swap: int | str = Field(default=0)
    is_public: bool = Field(default=True, alias="os-flavor-access:is_public")
    description: str | None = Field(default=None, max_length=65535)


class FlavorCreate(_Loose):
    flavor: FlavorBody


def _flavor(request: Request, flavor: Flavor) -> dict:
    link = _root(request) + "/v2.1/flavors/" + flavor.id
    return {"id": flavor.id, "name": flavor.name, "ram": flavor.ram_mb, "disk": flavor.disk_gb,
            "vcpus": flavor.vcpus, "OS-FLV-EXT-DATA:ephemeral": flavor.ephemeral_gb,
            "OS-FLV-DISABLED:disabled": False, "swap": flavor.swap_mb or "", "rxtx_factor": 1.0,
            "os-flavor-access:is_public": flavor.is_public,
            "links": [{"rel": "self", "href": link}, {"rel": "bookmark", "href": link}]}


def _truthy(value: str) -> bool | None:
    value = value.strip().lower()
    if value == "none":
        return None
    return value in ("1", "t", "true", "on", "y", "yes")


def visible_flavors(db, auth, is_public: str | None = None):
    """Nova's rule: everyone sees public flavors and the private ones their project was given; the cloud admin
    chooses with ``is_public`` (true by default, ``none`` for both)."""
    query = select(Flavor).order_by(Flavor.ram_mb, Flavor.name)
    if auth.is_admin:
        wanted = True if is_public is None else _truthy(is_public)
        if wanted is not None:
            query = query.where(Flavor.is_public == wanted)
        return list(db.scalars(query))
    granted = select(FlavorAccess.flavor_id).where(FlavorAccess.project_id == auth.project_id)
    return list(db.scalars(query.where(or_(Flavor.is_public.is_(True), Flavor.id.in_(granted)))))


def find_flavor(db, auth, ref: str) -> Flavor:
    flavor = db.get(Flavor, ref)
    if flavor is None or not (flavor.is_public or auth.is_admin or db.scalar(
            select(FlavorAccess.id).where(FlavorAccess.flavor_id == flavor.id,
                                          FlavorAccess.project_id == auth.project_id))):
        raise HTTPException(status_code=404, detail="Flavor %s could not be found." % ref[:64])
    return flavor


@router.get("/v2.1/flavors")
@policy("authenticated")
def list_flavors(request: Request, is_public: str | None = None, minRam: int = 0, minDisk: int = 0,  # noqa: N803
                 auth=Depends(current_auth), db=Depends(get_db)):
    flavors = [f for f in visible_flavors(db, auth, is_public) if f.ram_mb >= minRam and f.disk_gb >= minDisk]
    return {"flavors": [{k: v for k, v in _flavor(request, f).items() if k in ("id", "name", "links")}
                        for f in flavors]}


@router.get("/v2.1/flavors/detail")
@policy("authenticated")
def list_flavors_detail(request: Request, is_public: str | None = None, minRam: int = 0,  # noqa: N803
                        minDisk: int = 0, auth=Depends(current_auth), db=Depends(get_db)):  # noqa: N803
    flavors = [f for f in visible_flavors(db, auth, is_public) if f.ram_mb >= minRam and f.disk_gb >= minDisk]
    return {"flavors": [_flavor(request, f) for f in flavors]}


@router.get("/v2.1/flavors/{flavor_id}")
@policy("authenticated")
def show_flavor(flavor_id: str, request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    return {"flavor": _flavor(request, find_flavor(db, auth, flavor_id))}


@router.post("/v2.1/flavors")
@policy("admin")
def create_flavor(body: FlavorCreate, request: Request, db=Depends(get_db)):
    f = body.flavor
    swap = f.swap if isinstance(f.swap, int) else (0 if f.swap == "" else _int(f.swap, "swap"))
    if not 0 <= swap <= 1024 * 1024:
        raise HTTPException(status_code=400, detail="swap must be 0 to %d MiB" % (1024 * 1024))
    flavor = Flavor(id=new_id() if f.id in (None, "auto") else f.id, name=f.name, vcpus=f.vcpus, ram_mb=f.ram,
                    disk_gb=f.disk, ephemeral_gb=f.ephemeral, swap_mb=swap, is_public=f.is_public,
                    description=f.description or "")
    db.add(flavor)
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        raise HTTPException(status_code=409, detail="Flavor with name %s or id %s already exists." % (f.name, f.id))
    return {"flavor": _flavor(request, flavor)}


def _int(value: str, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise HTTPException(status_code=400, detail="%s must be an integer" % what)


@router.delete("/v2.1/flavors/{flavor_id}", status_code=202)
@policy("admin")
def delete_flavor(flavor_id: str, auth=Depends(current_auth), db=Depends(get_db)):
    db.delete(find_flavor(db, auth, flavor_id))
    db.commit()
    return Response(status_code=202)


class FlavorAccessAction(_Loose):
    add_tenant_access: dict | None = Field(default=None, alias="addTenantAccess")
    remove_tenant_access: dict | None = Field(default=None, alias="removeTenantAccess")


def _access_list(db, flavor: Flavor) -> dict:
    return {"flavor_access": [{"flavor_id": flavor.id, "tenant_id": a.project_id} for a in db.scalars(
        select(FlavorAccess).where(FlavorAccess.flavor_id == flavor.id).order_by(FlavorAccess.project_id))]}


@router.get("/v2.1/flavors/{flavor_id}/os-flavor-access")
@policy("admin")
def list_flavor_access(flavor_id: str, auth=Depends(current_auth), db=Depends(get_db)):
    flavor = find_flavor(db, auth, flavor_id)
    if flavor.is_public:
        raise HTTPException(status_code=404, detail="Access list not available for public flavors.")
    return _access_list(db, flavor)


@router.post("/v2.1/flavors/{flavor_id}/action")
@policy("admin")
def flavor_action(flavor_id: str, body: FlavorAccessAction, auth=Depends(current_auth), db=Depends(get_db)):
    flavor = find_flavor(db, auth, flavor_id)
    if flavor.is_public:
        raise HTTPException(status_code=409, detail="Can not add access to a public flavor.")
    action = body.add_tenant_access or body.remove_tenant_access
    if not isinstance(action, dict) or not isinstance(action.get("tenant"), str):
        raise HTTPException(status_code=400, detail="give addTenantAccess or removeTenantAccess with a tenant")
    project = identity.get_or_404(db, Project, action["tenant"], "project")
    found = db.scalar(select(FlavorAccess).where(FlavorAccess.flavor_id == flavor.id,
                                                 FlavorAccess.project_id == project.id))
    if body.add_tenant_access is not None:
        if found is not None:
            raise HTTPException(status_code=409, detail="Flavor access already exists for flavor %s and project "
                                "%s combination." % (flavor.id, project.id))
        db.add(FlavorAccess(flavor_id=flavor.id, project_id=project.id))
    else:
        if found is None:
            raise HTTPException(status_code=404, detail="Flavor access not found for %s / %s combination."
                                % (flavor.id, project.id))
        db.delete(found)
    db.commit()
    return _access_list(db, flavor)


# --- keypairs -----------------------------------------------------------------------

KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521")


class KeypairBody(_Loose):
    name: str = Field(pattern=NAME)
    public_key: str | None = Field(default=None, max_length=MAX_PUBLIC_KEY)
    type: str | None = Field(default=None, pattern=r"^ssh$")


class KeypairCreate(_Loose):
    keypair: KeypairBody


def check_public_key(text: str) -> str:
    """One OpenSSH public key line (type, base64 key, optional comment) that parses: what cloud-init will
    write into authorized_keys, so nothing else (no options, no second line) gets through."""
    line = text.strip()
    if "\n" in line or "\r" in line or any(ord(c) < 32 for c in line):
        raise HTTPException(status_code=400, detail="Keypair data is invalid: one line, no control characters")
    parts = line.split(None, 2)
    if len(parts) < 2 or parts[0] not in KEY_TYPES:
        raise HTTPException(status_code=400, detail="Keypair data is invalid: not an OpenSSH public key of type "
                            + ", ".join(KEY_TYPES))
    try:
        serialization.load_ssh_public_key(" ".join(parts[:2]).encode())
    except (ValueError, TypeError):
        raise HTTPException(status_code=400, detail="Keypair data is invalid: the key does not parse")
    return line


def fingerprint(public_key: str) -> str:
    """Nova's fingerprint: MD5 of the key blob, as colon-separated hex."""
    digest = hashlib.md5(base64.b64decode(public_key.split()[1]), usedforsecurity=False).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def _keypair(kp: Keypair, full: bool = False) -> dict:
    out = {"name": kp.name, "public_key": kp.public_key, "fingerprint": kp.fingerprint}
    if full:
        out.update(user_id=kp.user_id, id=kp.id, deleted=False, created_at=kp.created_at.isoformat(),
                   updated_at=None, deleted_at=None)
    return out


def _find_keypair(db, user_id: str, name: str) -> Keypair:
    kp = db.scalar(select(Keypair).where(Keypair.user_id == user_id, Keypair.name == name))
    if kp is None:
        raise HTTPException(status_code=404, detail="Keypair %s not found for user %s" % (name[:64], user_id))
    return kp


@router.get("/v2.1/os-keypairs")
@policy("authenticated")
def list_keypairs(auth=Depends(current_auth), db=Depends(get_db)):
    return {"keypairs": [{"keypair": _keypair(kp)} for kp in db.scalars(
        select(Keypair).where(Keypair.user_id == auth.user_id).order_by(Keypair.name))]}


@router.post("/v2.1/os-keypairs")
@policy("authenticated")
def create_keypair(body: KeypairCreate, request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    k = body.keypair
    private = None
    if k.public_key is None:
        # Nova before 2.92 makes the key pair and returns the private key once; it is not kept.
        key = ed25519.Ed25519PrivateKey.generate()
        private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                    serialization.NoEncryption()).decode()
        public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                               serialization.PublicFormat.OpenSSH).decode()
    else:
        public = check_public_key(k.public_key)
    limit = _keypair_limit(db, request, auth)
    operations.lock(db, User, auth.user_id)  # two key pairs made at once are counted one after the other
    held = db.scalar(select(func.count(Keypair.id)).where(Keypair.user_id == auth.user_id))
    if not quotas.allows(limit, held, 1):
        db.rollback()
        raise HTTPException(status_code=403, detail="Quota exceeded, too many key pairs.")
    kp = Keypair(name=k.name, user_id=auth.user_id, public_key=public, fingerprint=fingerprint(public))
    db.add(kp)
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        raise HTTPException(status_code=409, detail="Key pair '%s' already exists." % k.name)
    out = _keypair(kp, full=False)
    out["user_id"] = auth.user_id
    if private is not None:
        out["private_key"] = private
    return {"keypair": out}


def _keypair_limit(db, request: Request, auth) -> int:
    # key_pairs is per user in Nova; it is read from the project the token is scoped to.
    if auth.project_id is None:
        return quotas.defaults(request.app.state.settings)["key_pairs"]
    return quotas.limits(db, request.app.state.settings, auth.project_id)["key_pairs"]


@router.get("/v2.1/os-keypairs/{name}")
@policy("authenticated")
def show_keypair(name: str, auth=Depends(current_auth), db=Depends(get_db)):
    return {"keypair": _keypair(_find_keypair(db, auth.user_id, name), full=True)}


@router.delete("/v2.1/os-keypairs/{name}", status_code=202)
@policy("authenticated")
def delete_keypair(name: str, auth=Depends(current_auth), db=Depends(get_db)):
    db.delete(_find_keypair(db, auth.user_id, name))
    db.commit()
    return Response(status_code=202)


# --- quotas and limits ----------------------------------------------------------------

# Nova's quota-set keys and the collection's names for them.
NOVA_QUOTAS = {"instances": "instances", "cores": "cores", "ram": "ram", "key_pairs": "key_pairs",
               "metadata_items": "metadata_items", "server_groups": "server_groups",
               "server_group_members": "server_group_members", "floating_ips": "floating_ips",
               "security_groups": "security_groups", "security_group_rules": "security_group_rules"}


class QuotaSetBody(_Loose):
    model_config = ConfigDict(extra="allow")
    force: bool | None = None


class QuotaSetUpdate(_Loose):
    quota_set: QuotaSetBody


def _quota_set(project_id: str, values: dict) -> dict:
    return {"quota_set": dict({key: values[name] for key, name in NOVA_QUOTAS.items()}, id=project_id)}


@router.get("/v2.1/os-quota-sets/{project_id}")
@policy("reader")
def show_quotas(project_id: str, request: Request, db=Depends(get_db)):
    identity.get_or_404(db, Project, project_id, "project")
    return _quota_set(project_id, quotas.limits(db, request.app.state.settings, project_id))


@router.get("/v2.1/os-quota-sets/{project_id}/defaults")
@policy("reader")
def default_quotas(project_id: str, request: Request):
    return _quota_set(project_id, quotas.defaults(request.app.state.settings))


@router.put("/v2.1/os-quota-sets/{project_id}")
@policy("admin")
def update_quotas(project_id: str, body: QuotaSetUpdate, request: Request, db=Depends(get_db)):
    identity.get_or_404(db, Project, project_id, "project")
    given = dict(body.quota_set.model_extra or {})
    unknown = sorted(k for k in given if k not in NOVA_QUOTAS)
    if unknown:
        raise HTTPException(status_code=400, detail="Bad key(s) %s in quota_set" % ", ".join(u[:32] for u in unknown))
    values = {NOVA_QUOTAS[k]: v for k, v in given.items()}
    try:
        quotas.set_limits(db, project_id, {k: _int(v, k) if isinstance(v, str) else v for k, v in values.items()})
    except quotas.QuotaError as e:
        raise HTTPException(status_code=400, detail=str(e))
    db.commit()
    return _quota_set(project_id, quotas.limits(db, request.app.state.settings, project_id))


@router.delete("/v2.1/os-quota-sets/{project_id}", status_code=202)
@policy("admin")
def reset_quotas(project_id: str, db=Depends(get_db)):
    identity.get_or_404(db, Project, project_id, "project")
    quotas.reset(db, project_id, set(NOVA_QUOTAS.values()))
    db.commit()
    return Response(status_code=202)


@router.get("/v2.1/limits")
@policy("authenticated")
def limits(request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    settings = request.app.state.settings
    values = quotas.limits(db, settings, auth.project_id) if auth.project_id else quotas.defaults(settings)
    used = usage(request, db, auth)
    return {"limits": {"rate": [], "absolute": {
        "maxTotalInstances": values["instances"], "maxTotalCores": values["cores"],
        "maxTotalRAMSize": values["ram"], "maxTotalKeypairs": values["key_pairs"],
        "maxServerMeta": values["metadata_items"], "maxServerGroups": values["server_groups"],
        "maxServerGroupMembers": values["server_group_members"], "maxTotalFloatingIps": values["floating_ips"],
        "maxSecurityGroups": values["security_groups"], "maxSecurityGroupRules": values["security_group_rules"],
        "maxImageMeta": values["metadata_items"], "maxPersonality": 0, "maxPersonalitySize": 0,
        "totalInstancesUsed": used["instances"], "totalCoresUsed": used["cores"], "totalRAMUsed": used["ram"],
        "totalServerGroupsUsed": 0, "totalFloatingIpsUsed": 0, "totalSecurityGroupsUsed": 0}}}


def usage(request: Request, db, auth) -> dict:
    """What the project's servers use: those the hypervisors show (the instances resource view) and those
    still being made."""
    if auth.project_id is None:
        return {"instances": 0, "cores": 0, "ram": 0}
    return _used(db, auth, *_project_view(request, db, auth))


def _used(db, auth, view_items: list, since: float) -> dict:
    seen = {i.get("uuid") for i in view_items}
    used = {"instances": len(view_items), "cores": sum(int(i.get("vcpus") or 0) for i in view_items),
            "ram": sum(int(i.get("ram_mb") or 0) for i in view_items)}
    for item in operations.pending(db, auth.project_id, "server", since):
        if item.operation.action != "create" or item.failed or item.operation.resource_id in seen:
            continue
        used["instances"] += 1
        used["cores"] += int(item.shown.get("vcpus") or 0)
        used["ram"] += int(item.shown.get("ram_mb") or 0)
    return used


# --- servers (read from the hypervisors: the instances resource view) ---------------------

# libvirt's domain states as Nova's server status, vm_state and power_state.
STATUS = {"running": ("ACTIVE", "active", 1), "blocked": ("ACTIVE", "active", 1), "idle": ("ACTIVE", "active", 1),
          "paused": ("PAUSED", "paused", 3), "shutdown": ("ACTIVE", "active", 4),
          "shutoff": ("SHUTOFF", "stopped", 4), "crashed": ("ERROR", "error", 6),
          "pmsuspended": ("SUSPENDED", "suspended", 7)}
UNKNOWN = ("UNKNOWN", "error", 0)


def _addresses(item: dict, display_names: dict | None = None, floating: dict | None = None) -> dict:
    """Nova's addresses: per network, the port's fixed IPs with the NIC's MAC (a bare bridge NIC has none), each
    followed by the floating IP that leads to it (``floating``: (host port id, fixed IP) -> floating IP)."""
    out: dict[str, list] = {}
    floating = floating or {}
    for nic in item.get("nics") or []:
        port = nic.get("port") or {}
        network = port.get("network") or nic.get("bridge") or "unknown"
        # Nova labels addresses with the network's name: the one given through the networking API, if any.
        network = (display_names or {}).get(network, network)
        for fixed in port.get("fixed_ips") or []:
            if fixed.get("ip"):
                out.setdefault(network, []).append({
                    "version": 6 if ":" in fixed["ip"] else 4, "addr": fixed["ip"], "OS-EXT-IPS:type": "fixed",
                    "OS-EXT-IPS-MAC:mac_addr": nic.get("mac")})
                address = floating.get((port.get("id"), fixed["ip"]))
                if address:
                    out[network].append({"version": 4, "addr": address, "OS-EXT-IPS:type": "floating",
                                         "OS-EXT-IPS-MAC:mac_addr": nic.get("mac")})
    return out


def display_name(item: dict) -> str:
    """A server's name: the one it was given through the API (kept in its metadata), else its instance's."""
    return str((item.get("metadata") or {}).get("display_name") or item.get("name") or "")


def server_view(request: Request, item: dict, auth, flavors_by_name: dict, detail: bool = True,
                image_ids: dict | None = None, display_names: dict | None = None,
                floating: dict | None = None) -> dict:
    """Nova's view of a server. ``image_ids``: image file -> Glance id, to name the image as Glance does;
    ``display_names``: network and security group id -> its name, for the addresses' labels and the groups."""
    image_ids = image_ids or {}
    server_id = item.get("uuid") or ""
    link = _root(request) + "/v2.1/servers/" + server_id
    links = [{"rel": "self", "href": link}, {"rel": "bookmark", "href": link}]
    if not detail:
        return {"id": server_id, "name": display_name(item), "links": links}
    status, vm_state, power = item.get("status") or STATUS.get(item.get("state") or "", UNKNOWN)
    flavor = item.get("flavor") or {}
    known = flavors_by_name.get(flavor.get("name"))
    own = {str(k): str(v) for k, v in (item.get("metadata") or {}).items()}
    metadata = {k: v for k, v in own.items() if k not in OWN_METADATA}
    flavor_id = str(known.id if known else (item.get("flavor_id") or flavor.get("name") or ""))
    project = item.get("project") or ""
    # The inventory host the view read it on; libvirt's own name for the hypervisor may differ.
    host = item.get("host") or item.get("hypervisor") or ""
    view = {
        "id": server_id, "name": display_name(item), "status": status, "tenant_id": project,
        "user_id": own.get("user_id", ""), "metadata": metadata, "links": links,
        "flavor": {"id": flavor_id, "links": [{"rel": "bookmark", "href": _root(request) + "/v2.1/flavors/"
                                               + flavor_id}]},
        "image": {"id": image_ids.get(item["image"], item["image"]), "links": []} if item.get("image") else "",
        "addresses": _addresses(item, display_names, floating), "key_name": own.get("key_name"),
        "hostId": hashlib.sha224((project + host).encode()).hexdigest() if host else "",
        "accessIPv4": "", "accessIPv6": "", "progress": 0, "config_drive": "",
        "created": own.get("created_at"), "updated": own.get("created_at"),
        "OS-DCF:diskConfig": "MANUAL", "OS-EXT-AZ:availability_zone": own.get("availability_zone", "nova"),
        "OS-EXT-STS:vm_state": vm_state, "OS-EXT-STS:power_state": power,
        "OS-EXT-STS:task_state": item.get("task_state"),
        "OS-SRV-USG:launched_at": own.get("created_at") if status != "BUILD" else None,
        "OS-SRV-USG:terminated_at": None,
        "os-extended-volumes:volumes_attached": [{"id": d["volume_id"], "delete_on_termination": False}
                                                 for d in item.get("disks") or [] if d.get("volume_id")],
        "security_groups": [
            {"name": name} for name in sorted({(display_names or {}).get(g, g) for nic in item.get("nics") or []
                                               for g in ((nic.get("port") or {}).get("security_groups") or [])})],
    }
    if item.get("fault"):
        view["fault"] = {"code": 500, "message": item["fault"], "created": own.get("created_at")}
    if item.get("security_group_names") is not None:
        view["security_groups"] = [{"name": name} for name in item["security_group_names"]]
    if auth.is_admin:
        view.update({"OS-EXT-SRV-ATTR:host": host,
                     "OS-EXT-SRV-ATTR:hypervisor_hostname": item.get("hypervisor") or host,
                     "OS-EXT-SRV-ATTR:instance_name": item.get("name")})
    return view


# What a change in flight shows as Nova's task_state; a reboot also shows as the status REBOOT.
TASK_STATES = {"delete": "deleting", "start": "powering-on", "stop": "powering-off", "reboot": "rebooting",
               "resize": "resize_prep", "revert": "resize_reverting"}
# Nova's status while a change is in flight, for the changes that have one.
IN_FLIGHT_STATUS = {"reboot": ("REBOOT", "active", 1), "resize": ("RESIZE", "stopped", 4),
                    "revert": ("REVERT_RESIZE", "resized", 4)}


def _unconfirmed_resizes(db, project_id: str | None) -> dict:
    """Resizes that are done and wait for confirmResize or revertResize, by server id (Nova's VERIFY_RESIZE)."""
    query = (select(Operation).join(Job, Operation.job_id == Job.id)
             .where(Operation.resource == "server", Operation.action == "resize", Operation.dismissed.is_(False),
                    Job.status == "successful").order_by(Operation.id))
    if project_id is not None:
        query = query.where(Operation.project_id == project_id)
    return {op.resource_id: op for op in db.scalars(query)}


def _servers(request: Request, db, auth, all_tenants: bool) -> list[dict]:
    """The instances of the token's project (all of them for the cloud admin with all_tenants), with the
    changes the API has queued for them, and the servers still being built or whose build failed."""
    views = request.app.state.resources
    project_id = None if (auth.is_admin and all_tenants) else auth.project_id
    if project_id is None and not (auth.is_admin and all_tenants):
        raise HTTPException(status_code=403, detail="Servers are listed with a project-scoped token.")
    items, read_at = [], 0
    if views.available("instances"):
        if project_id is None:
            items, _errors, read_at = views.read("instances")
        else:
            view = views.for_project("instances", db.get(Project, project_id))
            items, read_at = view["items"], view.get("read_at", 0)
    servers = {i["uuid"]: dict(i) for i in items if i.get("uuid") and i.get("managed", True)}
    for pending in operations.pending(db, project_id, "server", read_at):
        op, server = pending.operation, servers.get(pending.operation.resource_id)
        if server is not None and pending.in_flight and op.action == "create":
            # On the hypervisor before its job is done (the guest may still be starting, its ports' security
            # groups not yet filled): Nova's BUILD until the spawn is over.
            server.update(status=("BUILD", "building", 0), task_state="spawning")
        elif server is not None and pending.in_flight and op.action in TASK_STATES:
            server["task_state"] = TASK_STATES[op.action]
            if op.action in IN_FLIGHT_STATUS:
                server["status"] = IN_FLIGHT_STATUS[op.action]
        elif server is None and op.action == "create" and (pending.in_flight or pending.failed):
            servers[op.resource_id] = _not_yet(db, pending)
    for server_id in _unconfirmed_resizes(db, project_id):
        server = servers.get(server_id)
        if server is not None and not server.get("task_state"):
            server["status"] = ("VERIFY_RESIZE", "resized", 4)
    return list(servers.values())


def _not_yet(db, pending) -> dict:
    """A server the hypervisors do not show: being built, or its build failed."""
    shown = pending.shown
    item = {"uuid": pending.operation.resource_id, "name": shown.get("name"), "project": pending.operation.project_id,
            "image": shown.get("image"), "flavor": {"name": None}, "flavor_id": shown.get("flavor"),
            "metadata": dict(shown.get("metadata") or {}, display_name=shown.get("name"),
                             user_id=shown.get("user_id"), created_at=shown.get("created"),
                             **({"key_name": shown["key_name"]} if shown.get("key_name") else {})),
            "security_group_names": shown.get("security_groups") or [], "state": None}
    if pending.in_flight:
        item.update(status=("BUILD", "building", 0), task_state="scheduling" if pending.status == "pending"
                    else "spawning")
    else:
        item.update(status=("ERROR", "error", 0), fault=operations.fault(db, pending))
    return item


# Nova takes the name filter as a regular expression; a tenant's pattern run by Python's backtracking engine
# could take the API's thread for ever ((a+)+$), so only what clients send in practice is taken: name
# characters, anchored at either end or not, matched as a substring.
NAME_FILTER = re.compile(r"^(\^?)([A-Za-z0-9_.@ -]{0,64})(\$?)$")


def _filtered(items: list[dict], name: str | None, status: str | None) -> list[dict]:
    if name is not None:
        match = NAME_FILTER.match(name)
        if match is None:
            raise HTTPException(status_code=400, detail="Invalid name filter: give name characters, optionally "
                                "anchored with ^ and $ (other regular expressions are not supported)")
        start, text, end = match.groups()
        items = [i for i in items if _name_matches(display_name(i), text, bool(start), bool(end))]
    if status is not None:
        items = [i for i in items if STATUS.get(i.get("state") or "", UNKNOWN)[0] == status.upper()]
    return items


def _name_matches(name: str, text: str, at_start: bool, at_end: bool) -> bool:
    if at_start and at_end:
        return name == text
    if at_start:
        return name.startswith(text)
    if at_end:
        return name.endswith(text)
    return text in name


def _image_ids(request: Request) -> dict:
    """A server's image (a store image's id, or a file in the hypervisors' caches) -> its Glance id."""
    return glance.image_ids(request)


def _floating(request: Request, db, auth) -> dict:
    """(host port id, fixed IP) -> floating IP, for the addresses of the servers the token may see."""
    items, _read_at = neutron.view_of(request, db, auth, "floating_ips")
    return {(i.get("port_id"), i.get("fixed_ip")): i.get("floating_ip") for i in items if i.get("port_id")}


def _display_names(db) -> dict:
    named = select(Record.id, Record.name).where(Record.kind.in_(("network", "security_group")), Record.name != "")
    return dict(db.execute(named).all())


def _flavors_by_name(db) -> dict:
    return {f.name: f for f in db.scalars(select(Flavor))}


@router.get("/v2.1/servers")
@policy("authenticated")
def list_servers(request: Request, name: str | None = None, status: str | None = None, all_tenants: str | None = None,
                 auth=Depends(current_auth), db=Depends(get_db)):
    items = _filtered(_servers(request, db, auth, all_tenants is not None), name, status)
    return {"servers": [server_view(request, i, auth, {}, detail=False) for i in items]}


@router.get("/v2.1/servers/detail")
@policy("authenticated")
def list_servers_detail(request: Request, name: str | None = None, status: str | None = None,
                        all_tenants: str | None = None, auth=Depends(current_auth), db=Depends(get_db)):
    items = _filtered(_servers(request, db, auth, all_tenants is not None), name, status)
    flavors = _flavors_by_name(db)
    images, names, floating = _image_ids(request), _display_names(db), _floating(request, db, auth)
    return {"servers": [server_view(request, i, auth, flavors, image_ids=images, display_names=names,
                                    floating=floating) for i in items]}


@router.get("/v2.1/servers/{server_id}")
@policy("authenticated")
def show_server(server_id: str, request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    for item in _servers(request, db, auth, all_tenants=auth.is_admin):
        if item.get("uuid") == server_id:
            return {"server": server_view(request, item, auth, _flavors_by_name(db), image_ids=_image_ids(request),
                                          display_names=_display_names(db), floating=_floating(request, db, auth))}
    raise HTTPException(status_code=404, detail="Instance %s could not be found." % server_id[:64])


# --- server changes: jobs of the runbooks (operations.py) ---------------------------------

# Keys the API keeps in an instance's metadata for itself; a user's metadata may not use them.
OWN_METADATA = ("display_name", "user_id", "key_name", "created_at", "availability_zone")
MAX_USER_DATA = 65535  # base64 characters, as Nova
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# An image in the hypervisors' image cache, by file name (the instance module refuses any other).
IMAGE_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")
NETWORK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


class ServerNetwork(_Loose):
    uuid: str | None = Field(default=None, max_length=64)
    port: str | None = Field(default=None, max_length=64)
    fixed_ip: str | None = Field(default=None, max_length=64)


class SecurityGroupRef(_Loose):
    name: str = Field(min_length=1, max_length=255)  # a group's name or id


class BlockDevice(_Loose):
    boot_index: int | str | None = None
    uuid: str | None = Field(default=None, max_length=64)
    source_type: str | None = Field(default=None, max_length=32)
    destination_type: str | None = Field(default=None, max_length=32)
    delete_on_termination: bool = False
    device_name: str | None = Field(default=None, max_length=64)


class ServerBody(_Loose):
    name: str = Field(min_length=1, max_length=255)
    flavorRef: str = Field(min_length=1, max_length=255)  # noqa: N815
    imageRef: str = Field(default="", max_length=255)  # noqa: N815
    networks: list[ServerNetwork] | str | None = None
    key_name: str | None = Field(default=None, pattern=NAME)
    user_data: str | None = Field(default=None, max_length=MAX_USER_DATA)
    security_groups: list[SecurityGroupRef] | None = Field(default=None, max_length=10)
    metadata: dict[str, str] = Field(default={}, max_length=128)
    min_count: int = Field(default=1, ge=1, le=1)
    max_count: int = Field(default=1, ge=1, le=1)
    availability_zone: str | None = Field(default=None, pattern=NETWORK_NAME.pattern)
    block_device_mapping_v2: list[BlockDevice] | None = Field(default=None, max_length=8)


class ServerCreate(_Loose):
    server: ServerBody


def _ref(value: str) -> str:
    """A flavorRef or imageRef is an id, or the resource's link, whose last part is its id."""
    if value.startswith(("http://", "https://")):
        return value.rstrip("/").rsplit("/", 1)[-1]
    return value


def _image(request: Request, db, auth, ref: str) -> str:
    """What the runbook boots for a request's imageRef: an active image the caller may use, by id or name (a
    store image's id, which the hypervisor pulls, or a file copied by hand into the hypervisors' caches)."""
    if not ref:
        raise HTTPException(status_code=400, detail="Missing imageRef attribute (boot from volume comes with "
                            "the volume service)")
    views = request.app.state.resources
    if views.available("images") or views.available("cached_images"):
        found = glance.bootable(request, db, auth, ref)
        if found is None:
            raise HTTPException(status_code=400, detail="Image %s could not be found." % ref[:64])
        return found
    if not IMAGE_FILE.match(ref):
        raise HTTPException(status_code=400, detail="Image %s could not be found." % ref[:64])
    return ref


def _boot_source(request: Request, db, auth, s: ServerBody) -> tuple[str | None, str]:
    """What a request boots the server from: (the volume, None) for block_device_mapping_v2 with one volume at
    boot_index 0, an available volume of the caller's project; else (None, the image reference). A mapping of
    the image to a local disk at boot_index 0 (what ``openstack server create --image`` sends beside imageRef)
    is the image boot itself."""
    mappings = s.block_device_mapping_v2 or []
    invalid = "Block Device Mapping is Invalid: "
    image_ref = _ref(s.imageRef)
    if len(mappings) == 1 and mappings[0].source_type == "image" and str(mappings[0].boot_index) == "0" \
            and (mappings[0].destination_type or "local") == "local":
        if image_ref and mappings[0].uuid and image_ref != mappings[0].uuid:
            raise HTTPException(status_code=400, detail=invalid + "the image mapped at boot_index 0 is not imageRef")
        return None, image_ref or mappings[0].uuid or ""
    if not mappings:
        return None, image_ref
    if len(mappings) != 1 or str(mappings[0].boot_index) != "0":
        raise HTTPException(status_code=400, detail=invalid + "only the boot volume (boot_index 0) is supported; "
                            "attach other volumes once the server is up")
    given = mappings[0]
    if given.source_type != "volume" or (given.destination_type or "volume") != "volume":
        raise HTTPException(status_code=400, detail=invalid + "only an existing volume (source_type and "
                            "destination_type volume) is supported; make the volume from the image first "
                            "(POST /volumes with imageRef)")
    if given.delete_on_termination:
        raise HTTPException(status_code=400, detail=invalid + "delete_on_termination is not supported; delete the "
                            "volume once the server is gone")
    if given.device_name not in (None, "", "vda", "/dev/vda"):
        raise HTTPException(status_code=400, detail=invalid + "the boot volume is /dev/vda")
    if s.imageRef:
        raise HTTPException(status_code=400, detail=invalid + "give imageRef or a boot volume, not both")
    volume_id = cinder.check_uuid(given.uuid or "", "block_device_mapping_v2 uuid")
    try:
        volume = cinder.find_volume(request, db, auth, volume_id)
    except HTTPException as e:
        if e.status_code != 404:
            raise
        volume = None
    if volume is None or volume.get("project") != auth.project_id:
        raise HTTPException(status_code=400, detail=invalid + "failed to get volume %s." % volume_id)
    cinder.require_available(volume, "booted from")
    return volume_id, ""


def _networks(request: Request, db, auth, asked) -> list:
    """The server's NICs, in order, as the runbook takes them: the name on the hosts of a network to make a
    port on (the project's own, shared and external networks, by id or by name), or ``{network, port}`` for a
    free port of the project the request names."""
    if asked is None or asked in ("auto", "none"):
        return []
    if isinstance(asked, str):
        raise HTTPException(status_code=400, detail="networks must be a list, 'auto' or 'none'")
    if len(asked) > 8:
        raise HTTPException(status_code=400, detail="At most 8 networks per server")
    known = request.app.state.resources.for_project("networks", db.get(Project, auth.project_id))["items"]
    nics = []
    for n, net in enumerate(asked):
        if net.fixed_ip:
            raise HTTPException(status_code=400, detail="networks[%d]: a fixed IP comes with a port: create the "
                                "port with it and give the port" % n)
        if net.port:
            try:
                port = neutron_ports.find_port(request, db, auth, net.port)
            except HTTPException as e:
                if e.status_code != 404:
                    raise
                # Nova answers a server create naming an unknown (or invisible) port with 400, not 404.
                raise HTTPException(status_code=400, detail="Port id %s could not be found." % net.port[:64]) from None
            if port["project_id"] != auth.project_id or port["device_id"] or port["status"] == "ERROR":
                raise HTTPException(status_code=409, detail="Port %s is in use, failed or not this project's"
                                    % net.port[:64])
            if net.uuid and net.uuid != port["network_id"]:
                raise HTTPException(status_code=400, detail="networks[%d]: port %s is not on network %s"
                                    % (n, net.port[:64], net.uuid[:64]))
            nics.append({"network": port["network_id"], "port": port["_host_name"]})
            continue
        found = [i for i in known if net.uuid and net.uuid in (i.get("id"), i.get("name"))]
        if not found:
            raise HTTPException(status_code=400, detail="Network %s could not be found." % (net.uuid or "")[:64])
        nics.append(found[0]["name"])
    if len({nic["port"] for nic in nics if isinstance(nic, dict)}) < sum(isinstance(nic, dict) for nic in nics):
        raise HTTPException(status_code=400, detail="A port is given twice")
    return nics


def _user_data(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        return base64.b64decode(text, validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise HTTPException(status_code=400, detail="Invalid input: user_data is not base64-encoded UTF-8 text")


def _metadata(given: dict) -> dict:
    for key, value in given.items():
        if not 1 <= len(key) <= 255 or len(value) > 255 or "\x00" in key + value:
            raise HTTPException(status_code=400, detail="Invalid input: metadata keys are 1 to 255 characters, "
                                "values at most 255, no NUL")
        if key in OWN_METADATA:
            raise HTTPException(status_code=400, detail="Invalid input: metadata key %s is the service's own" % key)
    return given


def _quota_check(request: Request, db, auth, flavor: Flavor, view_items: list, since: float, new_ports: int = 0):
    """Raise 403 when one more server of this flavor would pass the project's instances, cores or RAM limit,
    or its new ports the ports limit, counting what the hosts show and what is still being made."""
    limits_now = quotas.limits(db, request.app.state.settings, auth.project_id)
    used = _used(db, auth, view_items, since)
    wanted = {"instances": 1, "cores": flavor.vcpus, "ram": flavor.ram_mb}
    over = [k for k in ("instances", "cores", "ram") if not quotas.allows(limits_now[k], used[k], wanted[k])]
    if over:
        raise HTTPException(status_code=403, detail="Quota exceeded for %s: Requested %s, but already used %s of "
                            "%s" % (", ".join(over), ", ".join(str(wanted[k]) for k in over),
                                    ", ".join(str(used[k]) for k in over),
                                    ", ".join(str(limits_now[k]) for k in over)))
    refused = neutron_ports.check_quota(request, db, auth, auth.project_id, new_ports) if new_ports else None
    if refused:
        raise HTTPException(status_code=403, detail=refused)


def _project_view(request: Request, db, auth) -> tuple[list, float]:
    """The project's instances, read after the last job that changed servers ended, and when the read began."""
    views = request.app.state.resources
    if not views.available("instances"):
        return [], 0
    view = views.for_project("instances", db.get(Project, auth.project_id))
    return [i for i in view["items"] if i.get("uuid")], view.get("read_at", 0)


@router.post("/v2.1/servers", status_code=202)
@policy("member")
def create_server(body: ServerCreate, request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    s = body.server
    flavor = find_flavor(db, auth, _ref(s.flavorRef))
    boot_volume, image_ref = _boot_source(request, db, auth, s)
    image = "" if boot_volume else _image(request, db, auth, image_ref)
    networks = _networks(request, db, auth, s.networks)
    new_ports = sum(1 for nic in networks if isinstance(nic, str))
    # The groups of the ports the server makes: those named, else the project's default group.
    refs = None if s.security_groups is None else [g.name for g in s.security_groups]
    groups = neutron_security.group_names(request, db, auth, auth.project_id, refs) if new_ports or refs else []
    group_names = [g.name for g in s.security_groups] if s.security_groups else (["default"] if groups else [])
    key = _find_keypair(db, auth.user_id, s.key_name).public_key if s.key_name else None
    user_data = _user_data(s.user_data)
    metadata = _metadata(s.metadata)
    server_id = str(uuid.uuid4())
    created = now().strftime("%Y-%m-%dT%H:%M:%SZ")
    own = {"display_name": s.name, "user_id": auth.user_id, "created_at": created}
    if s.key_name:
        own["key_name"] = s.key_name
    if s.availability_zone:
        own["availability_zone"] = s.availability_zone
    extra_vars = {
        "server_id": server_id, "server_name": s.name,
        "server_flavor": {"name": flavor.name, "vcpus": flavor.vcpus, "ram_mb": flavor.ram_mb,
                          "disk_gb": flavor.disk_gb},
        "server_networks": networks, "server_security_groups": groups,
        "server_metadata": dict(metadata, **own), "server_keys": [key] if key else [],
    }
    if boot_volume:
        extra_vars["server_boot_volume"] = boot_volume
    else:
        extra_vars["server_image"] = image
    if user_data is not None:
        extra_vars["server_user_data"] = user_data
    shown = {"name": s.name, "flavor": flavor.id, "vcpus": flavor.vcpus, "ram_mb": flavor.ram_mb, "image": image,
             "key_name": s.key_name, "metadata": metadata, "user_id": auth.user_id, "created": created,
             "security_groups": group_names, "boot_volume": boot_volume}
    items, read_at = _project_view(request, db, auth)
    # The boot volume is attached by the same job: the volume shows it, and changes to it wait for it.
    attaches = [("volume", boot_volume, "attach", {"server_id": server_id, "device": "/dev/vda"})] if boot_volume else []
    operations.launch(request, db, auth, "server", server_id, "create", extra_vars, shown,
                      check=lambda: _quota_check(request, db, auth, flavor, items, read_at, new_ports),
                      after=operations.network_work(db, [n["network"] if isinstance(n, dict) else n for n in networks])
                      + operations.in_flight(db, "port", [n["port"] for n in networks if isinstance(n, dict)])
                      + operations.in_flight(db, "security_group", groups)
                      + operations.in_flight(db, "volume", [boot_volume] if boot_volume else []),
                      also=attaches)
    link = _root(request) + "/v2.1/servers/" + server_id
    return {"server": {"id": server_id, "links": [{"rel": "self", "href": link}, {"rel": "bookmark", "href": link}],
                       "OS-DCF:diskConfig": "MANUAL",
                       "security_groups": [{"name": name} for name in group_names]}}


def find_server(request: Request, db, auth, server_id: str):
    """The project's server: (its view item or None, its create operation or None); 404 when neither."""
    items, read_at = _project_view(request, db, auth)
    for item in items:
        if item.get("uuid") == server_id:
            return item, None
    for pending in operations.pending(db, auth.project_id, "server", read_at):
        if pending.operation.resource_id == server_id and pending.operation.action == "create" \
                and (pending.in_flight or pending.failed):
            return None, pending
    raise HTTPException(status_code=404, detail="Instance %s could not be found." % server_id[:64])


def _busy(db, auth, server_id: str):
    for pending in operations.pending(db, auth.project_id, "server"):
        if pending.operation.resource_id == server_id and pending.in_flight:
            return pending
    return None


@router.delete("/v2.1/servers/{server_id}", status_code=204)
@policy("member")
def delete_server(server_id: str, request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    item, creating = find_server(request, db, auth, server_id)
    if creating is not None:
        operations.cancel_create(db, creating)
    name = (item or {}).get("metadata", {}).get("display_name") if item else creating.shown.get("name")
    operations.launch(request, db, auth, "server", server_id, "delete", {"server_id": server_id},
                      {"name": name or server_id}, after=operations.in_flight(db, "server", [server_id]))
    return Response(status_code=204)


class ServerAction(_Loose):
    model_config = ConfigDict(extra="allow")


# Nova's action, the state it needs (libvirt's), and the runbook's action.
ACTIONS = {"os-start": ("start", ("shutoff",)), "os-stop": ("stop", ("running", "blocked", "idle", "paused")),
           "reboot": ("reboot", ("running", "blocked", "idle"))}


@router.post("/v2.1/servers/{server_id}/action", status_code=202)
@policy("member")
def server_action(server_id: str, body: ServerAction, request: Request, auth=Depends(current_auth),
                  db=Depends(get_db)):
    given = dict(body.model_extra or {})
    known = sorted(set(ACTIONS) | set(RESIZE_ACTIONS))
    if len(given) != 1 or next(iter(given)) not in known:
        raise HTTPException(status_code=400, detail="Invalid action: give one of %s (others are not supported)"
                            % ", ".join(known))
    name, options = next(iter(given.items()))
    if name in RESIZE_ACTIONS:
        return RESIZE_ACTIONS[name](request, db, auth, server_id, options)
    action, states = ACTIONS[name]
    reboot_type = "soft"
    if name == "reboot":
        reboot_type = str((options or {}).get("type", "SOFT") if isinstance(options, dict) else "").lower()
        if reboot_type not in ("soft", "hard"):
            raise HTTPException(status_code=400, detail="Invalid input: reboot type is SOFT or HARD")
    item, creating = find_server(request, db, auth, server_id)
    if item is None or _busy(db, auth, server_id) is not None or item.get("state") not in states:
        state = item.get("state") if item else ("building" if creating.in_flight else "error")
        raise HTTPException(status_code=409, detail="Cannot '%s' instance %s while it is in state %s"
                            % (action, server_id, state))
    operations.launch(request, db, auth, "server", server_id, action,
                      {"server_id": server_id, "server_action": action, "server_reboot_type": reboot_type},
                      {"name": (item.get("metadata") or {}).get("display_name")}, runbook_action="action")
    return Response(status_code=202)


# --- resize: a stopped server takes another flavor on its hypervisor, then the user confirms or reverts ---------

def _flavor_of(db, item: dict) -> Flavor | None:
    return db.scalar(select(Flavor).where(Flavor.name == (item.get("flavor") or {}).get("name")))


def _resize_quota(request: Request, db, auth, old: dict, new: Flavor):
    """Raise 403 when what the new flavor adds passes the project's cores or RAM limit."""
    items, read_at = _project_view(request, db, auth)
    limits_now = quotas.limits(db, request.app.state.settings, auth.project_id)
    used = _used(db, auth, items, read_at)
    wanted = {"cores": new.vcpus - int(old.get("vcpus") or 0), "ram": new.ram_mb - int(old.get("ram_mb") or 0)}
    over = [k for k in ("cores", "ram") if wanted[k] > 0 and not quotas.allows(limits_now[k], used[k], wanted[k])]
    if over:
        raise HTTPException(status_code=403, detail="Quota exceeded for %s: Requested %s, but already used %s of %s"
                            % (", ".join(over), ", ".join(str(wanted[k]) for k in over),
                               ", ".join(str(used[k]) for k in over), ", ".join(str(limits_now[k]) for k in over)))


def _launch_resize(request, db, auth, server_id: str, item: dict, flavor: Flavor, action: str, shown: dict):
    size = {"name": flavor.name, "vcpus": flavor.vcpus, "ram_mb": flavor.ram_mb, "disk_gb": flavor.disk_gb}
    extra_vars = {"server_id": server_id, "server_flavor": size}
    operations.launch(request, db, auth, "server", server_id, action, extra_vars,
                      dict(shown, name=(item.get("metadata") or {}).get("display_name")), runbook_action="resize",
                      check=lambda: _resize_quota(request, db, auth, item.get("flavor") or {}, flavor),
                      after=operations.in_flight(db, "server", [server_id]))


def _resize(request: Request, db, auth, server_id: str, options):
    flavor_ref = options.get("flavorRef") if isinstance(options, dict) else None
    if not isinstance(flavor_ref, str) or not flavor_ref:
        raise HTTPException(status_code=400, detail="Invalid input: resize needs flavorRef")
    flavor = find_flavor(db, auth, _ref(flavor_ref))
    item, _creating = find_server(request, db, auth, server_id)
    if item is None or _busy(db, auth, server_id) is not None or server_id in _unconfirmed_resizes(db, auth.project_id) \
            or item.get("state") != "shutoff":
        state = item.get("state") if item else "building"
        raise HTTPException(status_code=409, detail="Cannot 'resize' instance %s while it is in state %s (this "
                            "cloud resizes stopped servers: stop it first, and confirm a resize before the next)"
                            % (server_id, state))
    old = item.get("flavor") or {}
    if old.get("name") == flavor.name:
        raise HTTPException(status_code=400, detail="When resizing, instances must change flavor!")
    if flavor.disk_gb < int(old.get("disk_gb") or 0):
        raise HTTPException(status_code=400, detail="Resize to a flavor with a smaller disk is not allowed.")
    previous = _flavor_of(db, item)
    _launch_resize(request, db, auth, server_id, item, flavor, "resize",
                   {"flavor": flavor.id, "old_flavor": previous.id if previous else None})
    return Response(status_code=202)


def _unconfirmed(request, db, auth, server_id: str, action: str):
    item, _creating = find_server(request, db, auth, server_id)
    resize = _unconfirmed_resizes(db, auth.project_id).get(server_id)
    if item is None or resize is None or _busy(db, auth, server_id) is not None:
        raise HTTPException(status_code=409, detail="Cannot '%s' instance %s: it has no resize to confirm or "
                            "revert" % (action, server_id))
    return item, resize


def _confirm_resize(request: Request, db, auth, server_id: str, options):
    _item, resize = _unconfirmed(request, db, auth, server_id, "confirmResize")
    resize.dismissed = True
    db.commit()
    return Response(status_code=204)


def _revert_resize(request: Request, db, auth, server_id: str, options):
    item, resize = _unconfirmed(request, db, auth, server_id, "revertResize")
    previous = db.get(Flavor, json.loads(resize.shown or "{}").get("old_flavor") or "")
    if previous is None:
        raise HTTPException(status_code=409, detail="Cannot 'revertResize' instance %s: its old flavor is gone"
                            % server_id)
    resize.dismissed = True
    _launch_resize(request, db, auth, server_id, item, previous, "revert", {"flavor": previous.id})
    return Response(status_code=202)


RESIZE_ACTIONS = {"resize": _resize, "confirmResize": _confirm_resize, "revertResize": _revert_resize}
