"""Cinder v3 under ``/volume``: volumes, snapshots, backups, volume types, quota sets and limits.

Reads: the storage host's records (``volume_info`` through the volumes, snapshots, backups and volume types
resource views), with each volume's attachments (the storage host records the server; the compute host's
instance view says the device). Every route answers both with and without the project id in the path
(``/v3/{project_id}/volumes`` and ``/v3/volumes``, as Cinder does since 3.67); the catalog names the second.

Changes are jobs of the volume runbooks (operations.py), as for every other service: a volume, snapshot or
backup shows ``creating``, ``deleting``, ``extending``, ``attaching``, ``detaching``, ``backing-up`` or
``restoring`` while its job runs, and ``error`` (with the job's fault) when a create failed, until deleted.
Volumes and gigabytes (volumes' and snapshots'), snapshots, backups and backup gigabytes are counted against
the project's quotas under its lock, with what is still being made.

Microversion: only 3.0 (the base); a client asking for more gets 406.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from nimbus_api import identity, quotas
from nimbus_api.deps import get_db
from nimbus_api.models import Project, now
from nimbus_api.openstack import glance, operations
from nimbus_api.policy import PolicyRoute, current_auth, policy

PREFIX = "/volume"
router = APIRouter(prefix=PREFIX, tags=["cinder"], route_class=PolicyRoute)
VERSION = "3.0"
UPDATED = "2025-01-01T00:00:00Z"
# What app.py gives nova.Microversions for this API.
MICROVERSIONS = {"service": "volume", "prefix": PREFIX + "/v3", "version": VERSION, "also": (),
                 "legacy_header": None}
MAX_LIMIT = 1000
MAX_SIZE = 16384  # GiB, the volume module's limit
TYPE_NAMESPACE = uuid.UUID("7f9c0b5e-2f4e-5a8b-9c3d-1e6f4a2b8c0d")
# The status a resource shows while a job of this action runs on it.
BUSY = {"volume": {"delete": "deleting", "update": "extending", "attach": "attaching", "detach": "detaching"},
        "snapshot": {"delete": "deleting"}, "backup": {"delete": "deleting"}}
QUOTAS = ("volumes", "gigabytes", "snapshots", "backups", "backup_gigabytes")


def route(method: str, path: str, **kwargs):
    """Register an endpoint under /v3/{project_id}PATH and /v3PATH (the policy guard checks a path's project
    against the token's)."""
    def register(endpoint):
        getattr(router, method)("/v3" + path, **kwargs)(endpoint)
        getattr(router, method)("/v3/{project_id}" + path, include_in_schema=False, **kwargs)(endpoint)
        return endpoint
    return register


def _root(request: Request) -> str:
    return str(request.base_url).rstrip("/") + PREFIX


def _version(request: Request) -> dict:
    return {"id": "v3.0", "status": "CURRENT", "version": VERSION, "min_version": VERSION, "updated": UPDATED,
            "links": [{"rel": "self", "href": _root(request) + "/v3/"}],
            "media-types": [{"base": "application/json", "type": "application/vnd.openstack.volume+json;version=3"}]}


@router.get("", include_in_schema=False)
@router.get("/")
@policy("public")
def versions(request: Request):
    return {"versions": [_version(request)]}


@router.get("/v3", include_in_schema=False)
@router.get("/v3/")
@policy("public")
def version(request: Request):
    return {"version": _version(request)}


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


def _metadata(given) -> dict:
    if given is None:
        return {}
    if not isinstance(given, dict) or len(given) > 128:
        raise HTTPException(status_code=400, detail="Invalid input: metadata must be an object of at most 128 keys")
    for key, value in given.items():
        if not isinstance(key, str) or not 0 < len(key) <= 255:
            raise HTTPException(status_code=400, detail="Invalid input: metadata keys must be 1 to 255 characters")
        if not isinstance(value, str) or len(value) > 255:
            raise HTTPException(status_code=400, detail="Invalid input: metadata %s must be a string of at most 255 "
                                "characters" % key[:64])
    return dict(given)


def check_uuid(value, what: str) -> str | None:
    if value is None:
        return None
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise HTTPException(status_code=400, detail="Invalid input: %s must be a UUID" % what)


def _stamp() -> str:
    return now().strftime("%Y-%m-%dT%H:%M:%S.000000")


# --- reading -------------------------------------------------------------------------------------------

def _read(request: Request, auth, kind: str, all_projects: bool) -> tuple[list, float]:
    """The view's items of the caller's project (every project's for the admin's all_tenants), read after the
    last job that changed them ended, and when the read began."""
    views = request.app.state.resources
    if not views.available(kind):
        return [], 0
    project = None if all_projects else auth.project_id
    items, _errors, read_at = views.read(kind)
    return [dict(i) for i in items if project is None or i.get("project") == project], read_at


def _merged(request: Request, db, auth, kind: str, resource: str, all_projects: bool = False) -> list[dict]:
    """What the hosts show, with what the jobs in flight (or failed creates) say on top."""
    items, read_at = _read(request, auth, kind, all_projects)
    by_id = {i.get("id"): i for i in items}
    for pending in operations.pending(db, None if all_projects else auth.project_id, resource, read_at):
        op = pending.operation
        item = by_id.get(op.resource_id)
        if op.action == "create" and item is None and (pending.in_flight or pending.failed):
            made = dict(pending.shown, id=op.resource_id, project=op.project_id,
                        status="creating" if pending.in_flight else "error")
            if pending.failed:
                made["fault"] = operations.fault(db, pending)
            items.append(made)
            by_id[op.resource_id] = made
        elif item is not None and pending.in_flight and op.action in BUSY.get(resource, {}):
            item["status"] = BUSY[resource][op.action]
    return items


def _page(items: list[dict], limit: int | None, marker: str | None) -> list[dict]:
    items.sort(key=lambda i: (str(i.get("created_at") or ""), str(i.get("id"))), reverse=True)
    if marker is not None:
        ids = [i.get("id") for i in items]
        if marker not in ids:
            raise HTTPException(status_code=400, detail="marker %s not found" % marker[:64])
        items = items[ids.index(marker) + 1:]
    if limit is not None:
        if not 0 < limit <= MAX_LIMIT:
            raise HTTPException(status_code=400, detail="limit must be 1 to %d" % MAX_LIMIT)
        items = items[:limit]
    return items


def _filtered(items: list[dict], name: str | None, status: str | None, volume_id: str | None = None) -> list[dict]:
    return [i for i in items if (name is None or i.get("name") == name) and (status is None or i.get("status") == status)
            and (volume_id is None or i.get("volume_id") == volume_id)]


def _all_tenants(auth, value: str | None) -> bool:
    return bool(auth.is_admin and value not in (None, "", "0", "false", "False"))


def _links(request: Request, collection: str, ident: str) -> list[dict]:
    href = "%s/v3/%s/%s" % (_root(request), collection, ident)
    return [{"rel": "self", "href": href}, {"rel": "bookmark", "href": href}]


# --- volume types --------------------------------------------------------------------------------------

def type_id(name: str) -> str:
    return str(uuid.uuid5(TYPE_NAMESPACE, name))


def _types(request: Request) -> list[dict]:
    views = request.app.state.resources
    return list(views.read("volume_types")[0]) if views.available("volume_types") else []


def _type_view(item: dict, default: str | None) -> dict:
    return {"id": type_id(item["name"]), "name": item["name"], "description": item.get("description"),
            "is_public": True, "os-volume-type-access:is_public": True, "qos_specs_id": None,
            "extra_specs": {"volume_backend_name": item.get("backend"), "nimbus:format": item.get("format")},
            "is_default": item["name"] == default}


def _default_type(request: Request) -> str | None:
    found = [t["name"] for t in _types(request) if t.get("default")]
    return found[0] if found else None


def _find_type(request: Request, ref: str) -> dict:
    for item in _types(request):
        if ref in (item["name"], type_id(item["name"])):
            return item
    raise HTTPException(status_code=404, detail="Volume type %s could not be found." % ref[:64])


@route("get", "/types")
@policy("authenticated")
def list_types(request: Request):
    default = _default_type(request)
    return {"volume_types": [_type_view(t, default) for t in _types(request)]}


@route("get", "/types/default")
@policy("authenticated")
def show_default_type(request: Request):
    default = _default_type(request)
    if default is None:
        raise HTTPException(status_code=404, detail="Default volume type can not be found.")
    return {"volume_type": _type_view(_find_type(request, default), default)}


@route("get", "/types/{type_ref}")
@policy("authenticated")
def show_type(type_ref: str, request: Request):
    return {"volume_type": _type_view(_find_type(request, type_ref), _default_type(request))}


@route("get", "/types/{type_ref}/extra_specs")
@policy("authenticated")
def show_type_extra_specs(type_ref: str, request: Request):
    return {"extra_specs": _type_view(_find_type(request, type_ref), None)["extra_specs"]}


# --- volumes -------------------------------------------------------------------------------------------

def _devices(request: Request) -> dict:
    """(server id, volume id) -> the device the compute host attached the volume as."""
    views = request.app.state.resources
    if not views.available("instances"):
        return {}
    return {(i.get("uuid") or i.get("name"), d.get("volume_id")): "/dev/" + d["device"]
            for i in views.read("instances")[0] for d in i.get("disks") or [] if d.get("volume_id")}


def volume_view(request: Request, item: dict, auth, devices: dict | None = None) -> dict:
    volume_id = str(item.get("id"))
    devices = devices if devices is not None else {}
    attachments = [{"id": volume_id, "attachment_id": volume_id, "volume_id": volume_id,
                    "server_id": a.get("server_id"), "host_name": a.get("host"),
                    "device": devices.get((a.get("server_id"), volume_id)), "attached_at": a.get("attached_at")}
                   for a in item.get("attachments") or []]
    name = item.get("name")
    source = item.get("source") or ""
    kind, _sep, source_id = source.partition(":")
    view = {
        "id": volume_id, "name": None if name == volume_id else name, "status": item.get("status") or "available",
        "size": item.get("size"), "volume_type": item.get("volume_type"), "description": item.get("description") or None,
        "metadata": dict(item.get("metadata") or {}), "bootable": "true" if item.get("bootable") else "false",
        "availability_zone": "nova", "encrypted": False, "multiattach": False, "replication_status": None,
        "consistencygroup_id": None, "attachments": attachments, "user_id": item.get("user_id"),
        "snapshot_id": item.get("snapshot_id") or (source_id if kind == "snapshot" else None),
        "source_volid": item.get("source_volid") or (source_id if kind == "volume" else None),
        "created_at": item.get("created_at"), "updated_at": item.get("updated_at"),
        "os-vol-tenant-attr:tenant_id": item.get("project"), "links": _links(request, "volumes", volume_id),
        "volume_image_metadata": {"image_id": source_id} if kind == "image" else None,
    }
    if view["volume_image_metadata"] is None:
        del view["volume_image_metadata"]
    if item.get("fault"):
        view["fault"] = item["fault"]
    if auth.is_admin:
        view["os-vol-host-attr:host"] = item.get("host")
    return view


def _volumes(request: Request, db, auth, all_projects: bool = False) -> list[dict]:
    items = _merged(request, db, auth, "volumes", "volume", all_projects)
    # A volume with a snapshot or backup job running says so (Cinder's backing-up; a restore's source).
    for pending in operations.pending(db, None if all_projects else auth.project_id, "backup"):
        if pending.in_flight and pending.operation.action == "create":
            for item in items:
                if item.get("id") == pending.shown.get("volume_id") and item.get("status") == "available":
                    item["status"] = "backing-up"
    return items


def _find(items: list[dict], ident: str, what: str) -> dict:
    for item in items:
        if item.get("id") == ident:
            return item
    raise HTTPException(status_code=404, detail="%s %s could not be found." % (what, str(ident)[:64]))


def find_volume(request: Request, db, auth, volume_id: str) -> dict:
    return _find(_volumes(request, db, auth, auth.is_admin), volume_id, "Volume")


def require_available(volume: dict, what: str) -> None:
    """400 unless the volume is available and attached to nothing (to be attached, or booted from)."""
    if volume.get("status") != "available" or volume.get("attachments"):
        raise HTTPException(status_code=400, detail="Invalid volume: volume %s is %s; only an available volume can "
                            "be %s" % (volume.get("id"), volume.get("status"), what))


@route("get", "/volumes")
@policy("reader")
def list_volumes(request: Request, name: str | None = None, status: str | None = None,
                 all_tenants: str | None = None, limit: int | None = None, marker: str | None = None,
                 auth=Depends(current_auth), db=Depends(get_db)):
    items = _page(_filtered(_volumes(request, db, auth, _all_tenants(auth, all_tenants)), name, status), limit,
                  marker)
    return {"volumes": [{"id": i["id"], "name": volume_view(request, i, auth)["name"],
                         "links": _links(request, "volumes", i["id"])} for i in items]}


@route("get", "/volumes/detail")
@policy("reader")
def list_volumes_detail(request: Request, name: str | None = None, status: str | None = None,
                        all_tenants: str | None = None, limit: int | None = None, marker: str | None = None,
                        auth=Depends(current_auth), db=Depends(get_db)):
    items = _page(_filtered(_volumes(request, db, auth, _all_tenants(auth, all_tenants)), name, status), limit,
                  marker)
    devices = _devices(request) if any(i.get("attachments") for i in items) else {}
    return {"volumes": [volume_view(request, i, auth, devices) for i in items]}


@route("get", "/volumes/{volume_id}")
@policy("reader")
def show_volume(volume_id: str, request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    item = find_volume(request, db, auth, volume_id)
    return {"volume": volume_view(request, item, auth, _devices(request) if item.get("attachments") else {})}


class VolumeBody(_Loose):
    size: int | None = Field(default=None, ge=1, le=MAX_SIZE)
    name: str | None = Field(default=None, max_length=255)
    description: str | None = Field(default=None, max_length=255)
    volume_type: str | None = Field(default=None, max_length=255)
    metadata: dict | None = None
    snapshot_id: str | None = None
    source_volid: str | None = None
    imageRef: str | None = Field(default=None, max_length=255)
    backup_id: str | None = None
    availability_zone: str | None = None
    multiattach: bool = False


class VolumeCreate(_Loose):
    volume: VolumeBody


USAGE_KINDS = (("volumes", "volume", "volumes", "gigabytes"), ("volume_snapshots", "snapshot", "snapshots", "gigabytes"),
               ("volume_backups", "backup", "backups", "backup_gigabytes"))


def _usage_views(request: Request, project_id: str) -> dict:
    """What the storage host shows of the project, per kind: (items, when the read began). Read before the
    project's lock is taken: a view read may run a module on the hosts."""
    views = request.app.state.resources
    seen = {}
    for kind, _resource, _count, _gigabytes in USAGE_KINDS:
        if views.available(kind):
            items, _errors, read_at = views.read(kind)
            seen[kind] = ([i for i in items if i.get("project") == project_id], read_at)
    return seen


def _usage(db, project_id: str, seen: dict) -> dict:
    """What the project uses: what the storage host shows (``seen``) and what is still being made (or grown)."""
    used = dict.fromkeys(QUOTAS, 0)
    for kind, resource, count, gigabytes in USAGE_KINDS:
        items, read_at = seen.get(kind, ([], 0))
        known = {i.get("id") for i in items}
        used[count] += len(items)
        used[gigabytes] += sum(int(i.get("size") or 0) for i in items)
        for pending in operations.pending(db, project_id, resource, read_at):
            op = pending.operation
            if op.action == "create" and not pending.failed and op.resource_id not in known:
                used[count] += 1
                used[gigabytes] += int(pending.shown.get("size") or 0)
            elif op.action == "update" and pending.in_flight:
                used[gigabytes] += int(pending.shown.get("grows_by") or 0)
    return used


def _quota_check(request: Request, db, project_id: str, wanted: dict, seen: dict):
    """A check for operations.launch: 413 when what is wanted would pass one of the project's limits, counted
    under its lock from ``seen`` (_usage_views, read before) and the jobs in flight."""
    def check():
        limits_now = quotas.limits(db, request.app.state.settings, project_id)
        used = _usage(db, project_id, seen)
        over = [k for k, n in wanted.items() if n and not quotas.allows(limits_now[k], used[k], n)]
        if over:
            raise HTTPException(status_code=413, detail="VolumeLimitExceeded: Maximum number of %s exceeded: "
                                "requested %s, already used %s of %s"
                                % (", ".join(over), ", ".join(str(wanted[k]) for k in over),
                                   ", ".join(str(used[k]) for k in over), ", ".join(str(limits_now[k]) for k in over)))
    return check


def _source(request: Request, db, auth, body: VolumeBody) -> tuple[dict, int | None]:
    """The runbook's source variable and the source's size (GiB; None for an image)."""
    given = [k for k in ("snapshot_id", "source_volid", "imageRef", "backup_id") if getattr(body, k) is not None]
    if len(given) > 1:
        raise HTTPException(status_code=400, detail="Invalid input: give one of snapshot_id, source_volid, imageRef "
                            "and backup_id, not %s" % " and ".join(given))
    if body.snapshot_id is not None:
        snap = _find_snapshot(request, db, auth, check_uuid(body.snapshot_id, "snapshot_id"))
        if snap.get("status") != "available":
            raise HTTPException(status_code=400, detail="Invalid snapshot: snapshot %s is %s, not available"
                                % (snap["id"], snap.get("status")))
        return {"volume_snapshot_id": snap["id"]}, int(snap.get("size") or 0)
    if body.source_volid is not None:
        vol = find_volume(request, db, auth, check_uuid(body.source_volid, "source_volid"))
        if vol.get("status") != "available":
            raise HTTPException(status_code=400, detail="Invalid volume: volume %s is %s; a copy is made of an "
                                "available (detached) volume" % (vol["id"], vol.get("status")))
        return {"volume_source_id": vol["id"]}, int(vol.get("size") or 0)
    if body.backup_id is not None:
        backup = _find_backup(request, db, auth, check_uuid(body.backup_id, "backup_id"))
        if backup.get("status") != "available":
            raise HTTPException(status_code=400, detail="Invalid backup: backup %s is %s, not available"
                                % (backup["id"], backup.get("status")))
        return {"volume_backup_id": backup["id"]}, int(backup.get("size") or 0)
    if body.imageRef is not None:
        image = glance.bootable(request, db, auth, body.imageRef)
        if image is None or not glance.UUID.match(image):
            raise HTTPException(status_code=400, detail="Invalid image: %s is not an active image of the image "
                                "store this project may use" % body.imageRef[:64])
        return {"volume_image": image}, None
    return {}, None


def _storage(request: Request) -> None:
    """503 when the cloud has no storage host to make a volume, snapshot or backup on."""
    if not request.app.state.resources.available("volumes"):
        raise HTTPException(status_code=503, detail="This cloud has no storage host (the inventory's storage "
                            "group is empty): volumes cannot be made.")


def _launch_volume_create(request: Request, db, auth, volume_id: str, name: str | None, size: int | None,
                          type_name: str | None, description: str | None, metadata: dict, source: dict,
                          source_size: int | None, shown_extra: dict | None = None) -> dict:
    _storage(request)
    if size is None:
        size = source_size
    if size is None:
        raise HTTPException(status_code=400, detail="Invalid input: size is required for a blank volume or one "
                            "made from an image")
    if source_size is not None and size < source_size:
        raise HTTPException(status_code=400, detail="Invalid input: size %d GiB is smaller than the source's %d GiB"
                            % (size, source_size))
    extra_vars = dict(source, volume_id=volume_id, volume_name=name or volume_id, volume_size=size,
                      volume_metadata=metadata)
    if type_name is not None:
        extra_vars["volume_type"] = type_name
    if description:
        extra_vars["volume_description"] = description
    created = _stamp()
    shown = dict(shown_extra or {}, name=name or volume_id, size=size, volume_type=type_name or _default_type(request),
                 description=description, metadata=metadata, created_at=created, updated_at=created,
                 user_id=auth.user_id, bootable="volume_image" in source,
                 snapshot_id=source.get("volume_snapshot_id"), source_volid=source.get("volume_source_id"))
    after = []
    for resource, key in (("snapshot", "volume_snapshot_id"), ("volume", "volume_source_id"),
                          ("backup", "volume_backup_id")):
        if key in source:
            after += operations.in_flight(db, resource, [source[key]])
    operations.launch(request, db, auth, "volume", volume_id, "create", extra_vars, shown,
                      check=_quota_check(request, db, auth.project_id, {"volumes": 1, "gigabytes": size},
                                         _usage_views(request, auth.project_id)),
                      after=after)
    return dict(shown, id=volume_id, project=auth.project_id, status="creating")


@route("post", "/volumes", status_code=202)
@policy("member")
def create_volume(body: VolumeCreate, request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    v = body.volume
    if v.multiattach:
        raise HTTPException(status_code=400, detail="Invalid input: multiattach volumes are not supported")
    if v.availability_zone not in (None, "nova"):
        raise HTTPException(status_code=400, detail="Invalid input: availability zone %s does not exist (only nova)"
                            % v.availability_zone[:64])
    type_name = _find_type(request, v.volume_type)["name"] if v.volume_type else None
    source, source_size = _source(request, db, auth, v)
    made = _launch_volume_create(request, db, auth, str(uuid.uuid4()), v.name, v.size, type_name, v.description,
                                 _metadata(v.metadata), source, source_size)
    return {"volume": volume_view(request, made, auth)}


def _snapshots_of(request: Request, db, auth, volume_id: str) -> list[dict]:
    return [s for s in _snapshots(request, db, auth, auth.is_admin) if s.get("volume_id") == volume_id]


@route("delete", "/volumes/{volume_id}", status_code=202)
@policy("member")
def delete_volume(volume_id: str, request: Request, cascade: str | None = None, auth=Depends(current_auth),
                  db=Depends(get_db)):
    item = find_volume(request, db, auth, volume_id)
    cascading = str(cascade).lower() in ("true", "1", "yes")
    if item.get("status") in ("in-use", "attaching", "detaching") or item.get("attachments"):
        raise HTTPException(status_code=400, detail="Invalid volume: Volume %s is attached; detach it first "
                            "(status %s)." % (volume_id, item.get("status")))
    if not cascading and _snapshots_of(request, db, auth, volume_id):
        raise HTTPException(status_code=400, detail="Invalid volume: Volume %s still has dependent snapshots "
                            "(delete them, or ask for cascade)." % volume_id)
    _launch_delete(request, db, auth, "volume", item, {"volume_cascade": cascading})
    return Response(status_code=202)


class VolumeUpdateBody(_Loose):
    name: str | None = Field(default=None, max_length=255)
    description: str | None = Field(default=None, max_length=255)
    metadata: dict | None = None


class VolumeUpdate(_Loose):
    volume: VolumeUpdateBody


def _launch_update(request: Request, db, auth, item: dict, changes: dict, shown: dict, check=None) -> None:
    """Queue nimbus.volume_update for these runbook variables, after the volume's own jobs in flight."""
    volume_id = item["id"]
    if item.get("status") in ("creating", "error", "deleting"):
        raise HTTPException(status_code=400, detail="Invalid volume: Volume %s is %s." % (volume_id, item.get("status")))
    operations.launch(request, db, auth, "volume", volume_id, "update", dict(changes, volume_id=volume_id), shown,
                      check=check, project_id=item.get("project") or auth.project_id,
                      after=operations.in_flight(db, "volume", [volume_id]))


@route("put", "/volumes/{volume_id}")
@policy("member")
def update_volume(volume_id: str, body: VolumeUpdate, request: Request, auth=Depends(current_auth),
                  db=Depends(get_db)):
    item = find_volume(request, db, auth, volume_id)
    given = body.volume
    changes = {}
    if given.name is not None:
        if not given.name.strip():
            raise HTTPException(status_code=400, detail="Invalid input: name must not be blank")
        changes["volume_name"] = given.name
    if given.description is not None:
        changes["volume_description"] = given.description
    if given.metadata is not None:
        changes["volume_metadata"] = _metadata(given.metadata)
    if changes:
        _launch_update(request, db, auth, item, changes, {"name": item.get("name")})
    shown = dict(item, name=given.name if given.name is not None else item.get("name"),
                 description=given.description if given.description is not None else item.get("description"),
                 metadata=changes.get("volume_metadata", item.get("metadata")))
    return {"volume": volume_view(request, shown, auth)}


@route("get", "/volumes/{volume_id}/metadata")
@policy("reader")
def show_volume_metadata(volume_id: str, request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    return {"metadata": dict(find_volume(request, db, auth, volume_id).get("metadata") or {})}


class MetadataBody(_Loose):
    metadata: dict


def _set_metadata(request: Request, db, auth, volume_id: str, metadata: dict) -> dict:
    item = find_volume(request, db, auth, volume_id)
    metadata = _metadata(metadata)
    _launch_update(request, db, auth, item, {"volume_metadata": metadata}, {"name": item.get("name")})
    return {"metadata": metadata}


@route("post", "/volumes/{volume_id}/metadata")
@policy("member")
def add_volume_metadata(volume_id: str, body: MetadataBody, request: Request, auth=Depends(current_auth),
                        db=Depends(get_db)):
    current = dict(find_volume(request, db, auth, volume_id).get("metadata") or {})
    return _set_metadata(request, db, auth, volume_id, dict(current, **_metadata(body.metadata)))


@route("put", "/volumes/{volume_id}/metadata")
@policy("member")
def replace_volume_metadata(volume_id: str, body: MetadataBody, request: Request, auth=Depends(current_auth),
                            db=Depends(get_db)):
    return _set_metadata(request, db, auth, volume_id, body.metadata)


@route("delete", "/volumes/{volume_id}/metadata/{key}")
@policy("member")
def delete_volume_metadata(volume_id: str, key: str, request: Request, auth=Depends(current_auth),
                           db=Depends(get_db)):
    current = dict(find_volume(request, db, auth, volume_id).get("metadata") or {})
    if key not in current:
        raise HTTPException(status_code=404, detail="Metadata item %s was not found." % key[:64])
    del current[key]
    _set_metadata(request, db, auth, volume_id, current)
    return Response(status_code=200)


class VolumeAction(_Loose):
    model_config = ConfigDict(extra="allow")


@route("post", "/volumes/{volume_id}/action", status_code=202)
@policy("member")
def volume_action(volume_id: str, body: VolumeAction, request: Request, auth=Depends(current_auth),
                  db=Depends(get_db)):
    given = dict(body.model_extra or {})
    if list(given) != ["os-extend"]:
        raise HTTPException(status_code=400, detail="Invalid action: give os-extend (other volume actions are not "
                            "supported; attach through Nova's os-volume_attachments)")
    options = given["os-extend"]
    new_size = options.get("new_size") if isinstance(options, dict) else None
    if isinstance(new_size, str) and new_size.isdigit():
        new_size = int(new_size)
    if isinstance(new_size, bool) or not isinstance(new_size, int) or not 0 < new_size <= MAX_SIZE:
        raise HTTPException(status_code=400, detail="Invalid input: new_size must be an integer of 1 to %d" % MAX_SIZE)
    item = find_volume(request, db, auth, volume_id)
    if item.get("status") != "available":
        raise HTTPException(status_code=400, detail="Invalid volume: Volume %s status must be available to extend, "
                            "but current status is: %s." % (volume_id, item.get("status")))
    size = int(item.get("size") or 0)
    if new_size <= size:
        raise HTTPException(status_code=400, detail="Invalid input: New size for extend must be greater than current "
                            "size. (current: %d, extended: %d)." % (size, new_size))
    project_id = item.get("project") or auth.project_id
    _launch_update(request, db, auth, item, {"volume_size": new_size},
                   {"name": item.get("name"), "grows_by": new_size - size},
                   check=_quota_check(request, db, project_id, {"gigabytes": new_size - size},
                                      _usage_views(request, project_id)))
    return Response(status_code=202)


def _launch_of_volume(request: Request, db, auth, resource: str, volume_ref: str, name: str | None,
                      description: str | None, extra: dict, counted: dict) -> dict:
    """Queue a snapshot's or a backup's create (``resource``) of an available volume of the caller's project,
    counted against its quotas (``counted``, plus the volume's size in gigabytes, or backup_gigabytes for a
    backup); returns what it shows until the job is done."""
    _storage(request)
    volume = find_volume(request, db, auth, check_uuid(volume_ref, "volume_id"))
    if volume.get("status") != "available":
        raise HTTPException(status_code=400, detail="Invalid volume: Volume %s is %s; %ss are taken of an "
                            "available (detached) volume." % (volume["id"], volume.get("status"), resource))
    ident = str(uuid.uuid4())
    name = name if name and name.strip() else ident
    size = int(volume.get("size") or 0)
    created = _stamp()
    extra_vars = dict(extra, volume_id=volume["id"], **{resource + "_id": ident, resource + "_name": name})
    if description:
        extra_vars[resource + "_description"] = description
    shown = {"name": name, "description": description, "volume_id": volume["id"], "size": size,
             "metadata": extra.get("snapshot_metadata", {}), "created_at": created, "updated_at": created}
    wanted = dict(counted, **{"backup_gigabytes" if resource == "backup" else "gigabytes": size})
    operations.launch(request, db, auth, resource, ident, "create", extra_vars, shown,
                      check=_quota_check(request, db, auth.project_id, wanted,
                                         _usage_views(request, auth.project_id)),
                      after=operations.in_flight(db, "volume", [volume["id"]]))
    return dict(shown, id=ident, project=auth.project_id, status="creating")


def _launch_delete(request: Request, db, auth, resource: str, item: dict, extra_vars: dict) -> None:
    """Queue the deletion of the volume, snapshot or backup ``item`` for its project, after its jobs in flight;
    its create still in flight (or failed) is canceled first."""
    ident = item["id"]
    project_id = item.get("project") or auth.project_id
    operations.cancel_creates(db, project_id, resource, ident)
    operations.launch(request, db, auth, resource, ident, "delete", dict(extra_vars, **{resource + "_id": ident}),
                      {"name": item.get("name")}, project_id=project_id,
                      after=operations.in_flight(db, resource, [ident]))


# --- snapshots -----------------------------------------------------------------------------------------

def _snapshots(request: Request, db, auth, all_projects: bool = False) -> list[dict]:
    return _merged(request, db, auth, "volume_snapshots", "snapshot", all_projects)


def _find_snapshot(request: Request, db, auth, snapshot_id: str) -> dict:
    return _find(_snapshots(request, db, auth, auth.is_admin), snapshot_id, "Snapshot")


def snapshot_view(request: Request, item: dict, auth) -> dict:
    view = {"id": item.get("id"), "name": item.get("name"), "description": item.get("description") or None,
            "status": item.get("status") or "available", "size": item.get("size"), "volume_id": item.get("volume_id"),
            "metadata": dict(item.get("metadata") or {}), "created_at": item.get("created_at"),
            "updated_at": item.get("updated_at"), "os-extended-snapshot-attributes:project_id": item.get("project"),
            "os-extended-snapshot-attributes:progress": "100%" if item.get("status") == "available" else "0%",
            "links": _links(request, "snapshots", str(item.get("id")))}
    if item.get("fault"):
        view["fault"] = item["fault"]
    return view


@route("get", "/snapshots")
@route("get", "/snapshots/detail")
@policy("reader")
def list_snapshots(request: Request, name: str | None = None, status: str | None = None,
                   all_tenants: str | None = None, volume_id: str | None = None, limit: int | None = None,
                   marker: str | None = None, auth=Depends(current_auth), db=Depends(get_db)):
    items = _filtered(_snapshots(request, db, auth, _all_tenants(auth, all_tenants)), name, status, volume_id)
    return {"snapshots": [snapshot_view(request, i, auth) for i in _page(items, limit, marker)]}


@route("get", "/snapshots/{snapshot_id}")
@policy("reader")
def show_snapshot(snapshot_id: str, request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    return {"snapshot": snapshot_view(request, _find_snapshot(request, db, auth, snapshot_id), auth)}


class SnapshotBody(_Loose):
    volume_id: str
    name: str | None = Field(default=None, max_length=255)
    description: str | None = Field(default=None, max_length=255)
    metadata: dict | None = None
    force: bool | str = False


class SnapshotCreate(_Loose):
    snapshot: SnapshotBody


@route("post", "/snapshots", status_code=202)
@policy("member")
def create_snapshot(body: SnapshotCreate, request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    s = body.snapshot
    made = _launch_of_volume(request, db, auth, "snapshot", s.volume_id, s.name, s.description,
                             {"snapshot_metadata": _metadata(s.metadata)}, {"snapshots": 1})
    return {"snapshot": snapshot_view(request, made, auth)}


@route("delete", "/snapshots/{snapshot_id}", status_code=202)
@policy("member")
def delete_snapshot(snapshot_id: str, request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    _launch_delete(request, db, auth, "snapshot", _find_snapshot(request, db, auth, snapshot_id), {})
    return Response(status_code=202)


# --- backups -------------------------------------------------------------------------------------------

def _backups(request: Request, db, auth, all_projects: bool = False) -> list[dict]:
    items = _merged(request, db, auth, "volume_backups", "backup", all_projects)
    restoring = {p.shown.get("backup_id") for p in operations.pending(db, None if all_projects else auth.project_id,
                                                                      "volume")
                 if p.in_flight and p.operation.action == "create" and p.shown.get("backup_id")}
    for item in items:
        if item.get("id") in restoring and item.get("status") == "available":
            item["status"] = "restoring"
    return items


def _find_backup(request: Request, db, auth, backup_id: str) -> dict:
    return _find(_backups(request, db, auth, auth.is_admin), backup_id, "Backup")


def backup_view(request: Request, item: dict, auth) -> dict:
    view = {"id": item.get("id"), "name": item.get("name"), "description": item.get("description") or None,
            "status": item.get("status") or "available", "size": item.get("size"), "volume_id": item.get("volume_id"),
            "availability_zone": "nova", "container": None, "object_count": 0, "is_incremental": False,
            "has_dependent_backups": False, "snapshot_id": None, "fail_reason": item.get("fault"),
            "created_at": item.get("created_at"), "updated_at": item.get("updated_at"),
            "data_timestamp": item.get("created_at"), "os-backup-project-attr:project_id": item.get("project"),
            "links": _links(request, "backups", str(item.get("id")))}
    return view


@route("get", "/backups")
@route("get", "/backups/detail")
@policy("reader")
def list_backups(request: Request, name: str | None = None, status: str | None = None,
                 all_tenants: str | None = None, volume_id: str | None = None, limit: int | None = None,
                 marker: str | None = None, auth=Depends(current_auth), db=Depends(get_db)):
    items = _filtered(_backups(request, db, auth, _all_tenants(auth, all_tenants)), name, status, volume_id)
    return {"backups": [backup_view(request, i, auth) for i in _page(items, limit, marker)]}


@route("get", "/backups/{backup_id}")
@policy("reader")
def show_backup(backup_id: str, request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    return {"backup": backup_view(request, _find_backup(request, db, auth, backup_id), auth)}


class BackupBody(_Loose):
    volume_id: str
    name: str | None = Field(default=None, max_length=255)
    description: str | None = Field(default=None, max_length=255)
    container: str | None = None
    incremental: bool = False
    force: bool = False
    snapshot_id: str | None = None


class BackupCreate(_Loose):
    backup: BackupBody


@route("post", "/backups", status_code=202)
@policy("member")
def create_backup(body: BackupCreate, request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    b = body.backup
    if b.incremental or b.snapshot_id or b.container:
        raise HTTPException(status_code=400, detail="Invalid input: incremental backups, backups of a snapshot and "
                            "backup containers are not supported (each backup is a full copy on the storage host)")
    made = _launch_of_volume(request, db, auth, "backup", b.volume_id, b.name, b.description, {},
                             {"backups": 1})
    return {"backup": {"id": made["id"], "name": made["name"], "links": _links(request, "backups", made["id"])}}


@route("delete", "/backups/{backup_id}", status_code=202)
@policy("member")
def delete_backup(backup_id: str, request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    item = _find_backup(request, db, auth, backup_id)
    if item.get("status") == "restoring":
        raise HTTPException(status_code=400, detail="Invalid backup: Backup %s is being restored." % backup_id)
    _launch_delete(request, db, auth, "backup", item, {})
    return Response(status_code=202)


class RestoreBody(_Loose):
    volume_id: str | None = None
    name: str | None = Field(default=None, max_length=255)


class BackupRestore(_Loose):
    restore: RestoreBody


@route("post", "/backups/{backup_id}/restore", status_code=202)
@policy("member")
def restore_backup(backup_id: str, body: BackupRestore, request: Request, auth=Depends(current_auth),
                   db=Depends(get_db)):
    if body.restore.volume_id is not None:
        raise HTTPException(status_code=400, detail="Invalid input: a backup is restored into a new volume only "
                            "(leave volume_id out)")
    backup = _find_backup(request, db, auth, backup_id)
    if backup.get("status") != "available":
        raise HTTPException(status_code=400, detail="Invalid backup: Backup %s is %s, not available"
                            % (backup_id, backup.get("status")))
    volume_id = str(uuid.uuid4())
    name = body.restore.name or "restore_backup_%s" % backup_id
    _launch_volume_create(request, db, auth, volume_id, name, None, None, None, {},
                          {"volume_backup_id": backup_id}, int(backup.get("size") or 0),
                          shown_extra={"backup_id": backup_id})
    return {"restore": {"backup_id": backup_id, "volume_id": volume_id, "volume_name": name}}


# --- quota sets and limits -----------------------------------------------------------------------------

class QuotaSetBody(_Loose):
    model_config = ConfigDict(extra="allow")


class QuotaSetUpdate(_Loose):
    quota_set: QuotaSetBody


def _quota_set(project_id: str, values: dict, used: dict | None = None) -> dict:
    out = {key: values[key] for key in QUOTAS}
    out["per_volume_gigabytes"] = -1
    out["groups"] = 0
    if used is not None:
        out = {key: {"limit": limit, "in_use": (used or {}).get(key, 0), "reserved": 0, "allocated": 0}
               for key, limit in out.items()}
    return {"quota_set": dict(out, id=project_id)}


@route("get", "/os-quota-sets/{target_project}")
@policy("authenticated")
def show_quotas(target_project: str, request: Request, usage: str | None = None, auth=Depends(current_auth),
                db=Depends(get_db)):
    if not auth.is_admin and target_project != auth.project_id:
        raise HTTPException(status_code=403, detail="Policy doesn't allow reading another project's quotas.")
    identity.get_or_404(db, Project, target_project, "project")
    values = quotas.limits(db, request.app.state.settings, target_project)
    used = _usage(db, target_project, _usage_views(request, target_project)) \
        if str(usage).lower() in ("true", "1") else None
    return _quota_set(target_project, values, used)


@route("get", "/os-quota-sets/{target_project}/defaults")
@policy("authenticated")
def default_quotas(target_project: str, request: Request):
    return _quota_set(target_project, quotas.defaults(request.app.state.settings))


@route("put", "/os-quota-sets/{target_project}")
@policy("admin")
def update_quotas(target_project: str, body: QuotaSetUpdate, request: Request, db=Depends(get_db)):
    identity.get_or_404(db, Project, target_project, "project")
    given = dict(body.quota_set.model_extra or {})
    unknown = sorted(k for k in given if k not in QUOTAS)
    if unknown:
        raise HTTPException(status_code=400, detail="Bad key(s) %s in quota_set" % ", ".join(u[:32] for u in unknown))
    values = {}
    for key, value in given.items():
        if isinstance(value, str) and value.lstrip("-").isdigit():
            value = int(value)
        values[key] = value
    try:
        quotas.set_limits(db, target_project, values)
    except quotas.QuotaError as e:
        raise HTTPException(status_code=400, detail=str(e))
    db.commit()
    return _quota_set(target_project, quotas.limits(db, request.app.state.settings, target_project))


@route("delete", "/os-quota-sets/{target_project}", status_code=200)
@policy("admin")
def reset_quotas(target_project: str, db=Depends(get_db)):
    identity.get_or_404(db, Project, target_project, "project")
    quotas.reset(db, target_project, QUOTAS)
    db.commit()
    return Response(status_code=200)


@route("get", "/limits")
@policy("authenticated")
def limits(request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    settings = request.app.state.settings
    values = quotas.limits(db, settings, auth.project_id) if auth.project_id else quotas.defaults(settings)
    used = _usage(db, auth.project_id, _usage_views(request, auth.project_id)) if auth.project_id \
        else dict.fromkeys(QUOTAS, 0)
    return {"limits": {"rate": [], "absolute": {
        "maxTotalVolumes": values["volumes"], "maxTotalSnapshots": values["snapshots"],
        "maxTotalVolumeGigabytes": values["gigabytes"], "maxTotalBackups": values["backups"],
        "maxTotalBackupGigabytes": values["backup_gigabytes"],
        "totalVolumesUsed": used["volumes"], "totalGigabytesUsed": used["gigabytes"],
        "totalSnapshotsUsed": used["snapshots"], "totalBackupsUsed": used["backups"],
        "totalBackupGigabytesUsed": used["backup_gigabytes"]}}}
