"""Glance v2 under ``/image``, over the image store.

Reads: the images resource view (``image_info source=store`` on the first images host), where each image's
record says its owner, visibility and members; plus the files copied by hand into the hypervisors' image
caches (the cached images view), listed as public images. Every image is filtered here the way Glance does:
the caller's project's own images, public and community ones, and shared ones it is a member of; the cloud
admin sees all.

Changes are jobs of the image runbooks (operations.py), as for every other service:

- ``POST /v2/images`` keeps the new image's attributes (a ``Record``) and answers ``queued``: an image has
  no place on a host until its data exists.
- ``PUT /v2/images/{id}/file`` streams the data to the API's upload directory (never whole in memory; the
  upload limit is ``image_upload_max_bytes``), takes its sha256 on the way, and queues
  ``nimbus.image_create``: the store checks the sha256 and the real format, and the image shows ``saving``,
  then ``active`` (or ``killed`` with the job's fault).
- ``PATCH`` (JSON patch), ``deactivate`` / ``reactivate`` and ``DELETE`` queue ``nimbus.image_update`` /
  ``nimbus.image_delete``.
- ``GET /v2/images/{id}/file`` streams the data from the store's web server (``image_store_url``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from pathlib import Path

import httpx
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy import select

from nimbus_api.deps import get_db
from nimbus_api.models import Record, now
from nimbus_api.openstack import operations
from nimbus_api.policy import PolicyRoute, current_auth, policy

PREFIX = "/image"
router = APIRouter(prefix=PREFIX, tags=["glance"], route_class=PolicyRoute)
VERSION = {"id": "v2.9", "status": "CURRENT"}
MAX_LIMIT = 1000
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# The upload route: the request guard streams its body instead of reading it whole (middleware.py).
UPLOAD_PATH = re.compile(r"^/image/v2/images/[^/]+/file$")
DISK_FORMATS = ("qcow2", "raw")
VISIBILITIES = ("private", "shared", "community", "public")
PROPERTY_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_:.-]{0,254}$")
# The image's own fields: what a create or a patch may set directly; anything else is a property.
SETTABLE = {"name", "visibility", "protected", "min_disk", "min_ram", "disk_format", "container_format", "id",
            "tags"}
READ_ONLY = {"status", "owner", "checksum", "os_hash_algo", "os_hash_value", "size", "virtual_size", "created_at",
             "updated_at", "file", "schema", "self", "locations", "direct_url", "os_hidden"}


def _root(request: Request) -> str:
    return str(request.base_url).rstrip("/") + PREFIX


@router.get("", include_in_schema=False)
@router.get("/")
@router.get("/versions")
@policy("public")
def versions(request: Request):
    return {"versions": [dict(VERSION, links=[{"rel": "self", "href": _root(request) + "/v2/"}])]}


# --- what there is -----------------------------------------------------------------------------------

def image_view(item: dict, status: str | None = None) -> dict:
    """A store record (or a queued image's attributes) as Glance shows it; properties sit at the top level."""
    image_id = str(item.get("id") or "")
    view = {
        "id": image_id, "name": item.get("name"), "status": status or item.get("status") or "active",
        "visibility": item.get("visibility") or "public", "protected": bool(item.get("protected")),
        "os_hidden": False, "disk_format": item.get("disk_format"), "container_format": "bare",
        "size": item.get("size"), "virtual_size": item.get("virtual_size"), "min_disk": item.get("min_disk") or 0,
        "min_ram": item.get("min_ram") or 0, "checksum": item.get("checksum") or None,
        "os_hash_algo": item.get("os_hash_algo") or None, "os_hash_value": item.get("os_hash_value") or None,
        "owner": item.get("project"), "tags": [],
        "created_at": item.get("created_at") or item.get("updated_at"), "updated_at": item.get("updated_at"),
        "self": "/v2/images/" + image_id, "file": "/v2/images/%s/file" % image_id, "schema": "/v2/schemas/image",
    }
    for key, value in (item.get("properties") or {}).items():
        view.setdefault(key, value)
    return view


def visible(item: dict, auth) -> bool:
    """Glance's rule: the owner's, public and community images, shared ones to their members; the admin's all."""
    if auth.is_admin:
        return True
    owner, visibility = item.get("project"), item.get("visibility") or "public"
    return owner == auth.project_id or visibility in ("public", "community") or (
        visibility == "shared" and auth.project_id in (item.get("members") or []))


def _store(request: Request) -> list[dict]:
    views = request.app.state.resources
    return list(views.read("images")[0]) if views.available("images") else []


def _hand_cached(request: Request, known: set) -> list[dict]:
    """Files copied by hand into the hypervisors' caches (a pulled image's file is its store id): public."""
    views = request.app.state.resources
    if not views.available("cached_images"):
        return []
    return [dict(i, visibility="public", project=None) for i in views.read("cached_images")[0]
            if i.get("id") and i["id"] not in known and not UUID.match(str(i.get("file") or ""))]


def _queued(db, known: set) -> list[dict]:
    """Images created through the API whose data is not in the store: queued, saving (its job runs) or killed."""
    found = []
    jobs = {p.operation.resource_id: p for p in operations.pending(db, None, "image")
            if p.operation.action == "create"}
    for record in db.scalars(select(Record).where(Record.kind == "image")):
        if record.id in known:
            continue
        attrs = json.loads(record.attrs or "{}")
        item = dict(attrs, id=record.id, name=record.name, project=record.project_id,
                    created_at=record.created_at.isoformat() if record.created_at else None,
                    updated_at=record.updated_at.isoformat() if record.updated_at else None)
        job = jobs.get(record.id)
        if job is not None and job.in_flight:
            item["status"] = "saving"
        elif job is not None and job.failed:
            item["status"] = "killed"
            item["fault"] = operations.fault(db, job)
        else:
            item["status"] = "queued"
        found.append(item)
    return found


def all_images(request: Request, db, auth) -> list[dict]:
    """Every image the caller may see, as the store and the hypervisors have them (raw items, not views)."""
    store = _store(request)
    known = {i["id"] for i in store if i.get("id")}
    items = [i for i in store + _queued(db, known) + _hand_cached(request, known) if visible(i, auth)]
    return items


def bootable(request: Request, db, auth, ref: str) -> str | None:
    """What the compute runbook takes for an imageRef (an active image the caller may see, by id or name):
    a store image's id, or a hand-copied file's name; None when there is no such image."""
    matches = [i for i in all_images(request, db, auth) if ref in (i.get("id"), i.get("name"))
               and (i.get("status") or "active") == "active"]
    by_id = [i for i in matches if i.get("id") == ref]
    chosen = by_id or matches
    if len(chosen) != 1:
        return None
    image = chosen[0]
    return image["id"] if image.get("checksum") is not None or image.get("os_hash_value") else (
        image.get("file") or image["name"])


def image_ids(request: Request) -> dict:
    """A server's image (store id or cache file name) -> its Glance id."""
    out = {}
    for item in _store(request):
        if item.get("id"):
            out[item["id"]] = out[item.get("file") or item["id"]] = item["id"]
    views = request.app.state.resources
    if views.available("cached_images"):
        out.update({i.get("file") or i.get("name"): i["id"] for i in views.read("cached_images")[0] if i.get("id")})
    return out


def _find(request: Request, db, auth, image_id: str) -> dict:
    for item in all_images(request, db, auth):
        if item.get("id") == image_id:
            return item
    raise HTTPException(status_code=404, detail="No image found with ID %s" % image_id[:64])


def _owned(item: dict, auth, what: str) -> None:
    if not auth.is_admin and item.get("project") != auth.project_id:
        raise HTTPException(status_code=403, detail="You are not permitted to %s this image." % what)
    if item.get("project") is None:
        raise HTTPException(status_code=403, detail="Image %s was copied to the hypervisors by hand: it is not "
                            "the image store's to %s." % (item.get("id"), what))


@router.get("/v2/images")
@policy("authenticated")
def list_images(request: Request, name: str | None = None, status: str | None = None,
                visibility: str | None = None, disk_format: str | None = None, owner: str | None = None,
                limit: int = MAX_LIMIT, marker: str | None = None, auth=Depends(current_auth), db=Depends(get_db)):
    if not 0 < limit <= MAX_LIMIT:
        raise HTTPException(status_code=400, detail="limit must be 1 to %d" % MAX_LIMIT)
    if visibility not in (None, "all") + VISIBILITIES:
        raise HTTPException(status_code=400, detail="Invalid visibility value: %s" % visibility[:32])
    images = [image_view(i) for i in all_images(request, db, auth)]
    # As Glance: community images are listed only when asked for, or the caller's own.
    images = [i for i in images
              if (visibility in ("all", "community") or i["visibility"] != "community" or i["owner"] == auth.project_id)
              and (visibility in (None, "all") or i["visibility"] == visibility)
              and (name is None or i["name"] == name) and (status is None or i["status"] == status)
              and (disk_format is None or i["disk_format"] == disk_format) and (owner is None or i["owner"] == owner)]
    images.sort(key=lambda i: (str(i["created_at"] or ""), i["id"]), reverse=True)
    if marker is not None:
        ids = [i["id"] for i in images]
        if marker not in ids:
            raise HTTPException(status_code=400, detail="marker %s not found" % marker[:64])
        images = images[ids.index(marker) + 1:]
    page = images[:limit]
    out = {"images": page, "first": "/v2/images", "schema": "/v2/schemas/images"}
    if len(images) > limit:
        out["next"] = "/v2/images?marker=%s&limit=%d" % (page[-1]["id"], limit)
    return out


@router.get("/v2/images/{image_id}")
@policy("authenticated")
def show_image(image_id: str, request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    return image_view(_find(request, db, auth, image_id))


# --- create, upload ------------------------------------------------------------------------------------

def _checked_attributes(body: dict, auth, creating: bool) -> dict:
    """The image's fields and properties from a create's body (or a patch's result), refused when malformed."""
    if not isinstance(body, dict):
        raise HTTPException(status_code=400, detail="The request body must be a JSON object")
    attrs, properties = {}, {}
    for key, value in body.items():
        if key in READ_ONLY:
            raise HTTPException(status_code=403, detail="Attribute '%s' is read-only." % key[:64])
        if key in SETTABLE:
            attrs[key] = value
        elif not isinstance(key, str) or not PROPERTY_KEY.match(key):
            raise HTTPException(status_code=400, detail="Invalid property name %r" % str(key)[:64])
        elif not isinstance(value, str) or len(value) > 65535:
            raise HTTPException(status_code=400, detail="Property %s must be a string of at most 65535 characters"
                                % key)
        else:
            properties[key] = value
    if len(properties) > 128:
        raise HTTPException(status_code=413, detail="At most 128 properties per image")
    name = attrs.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip() or len(name) > 255):
        raise HTTPException(status_code=400, detail="name must be 1 to 255 characters")
    if attrs.get("disk_format") not in (None,) + DISK_FORMATS:
        raise HTTPException(status_code=400, detail="Invalid disk format %r: this cloud stores %s"
                            % (str(attrs["disk_format"])[:32], " and ".join(DISK_FORMATS)))
    if attrs.get("container_format") not in (None, "bare"):
        raise HTTPException(status_code=400, detail="Invalid container format %r: only bare"
                            % str(attrs["container_format"])[:32])
    if attrs.get("visibility") not in (None,) + VISIBILITIES:
        raise HTTPException(status_code=400, detail="Invalid visibility value: %s" % str(attrs["visibility"])[:32])
    if attrs.get("visibility") == "public" and not auth.is_admin:
        raise HTTPException(status_code=403, detail="You are not authorized to publicize this image (only the "
                            "cloud admin makes images public).")
    for key in ("min_disk", "min_ram"):
        if key in attrs and (not isinstance(attrs[key], int) or isinstance(attrs[key], bool)
                             or not 0 <= attrs[key] < 2 ** 31):
            raise HTTPException(status_code=400, detail="%s must be a non-negative integer" % key)
    if "protected" in attrs and not isinstance(attrs["protected"], bool):
        raise HTTPException(status_code=400, detail="protected must be true or false")
    if "id" in attrs and (not creating or not isinstance(attrs["id"], str) or not UUID.match(attrs["id"])):
        raise HTTPException(status_code=400, detail="id must be a lowercase UUID, given only at create")
    attrs["properties"] = properties
    return attrs


@router.post("/v2/images", status_code=201)
@policy("member")
async def create_image(request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        raise HTTPException(status_code=400, detail="The request body is not JSON")
    attrs = _checked_attributes(body, auth, creating=True)
    image_id = attrs.pop("id", None) or str(uuid.uuid4())
    if db.get(Record, ("image", image_id)) is not None or image_id in {i.get("id") for i in _store(request)}:
        raise HTTPException(status_code=409, detail="Image with identifier %s already exists!" % image_id)
    stored = {"disk_format": attrs.get("disk_format"), "visibility": attrs.get("visibility") or "shared",
              "protected": attrs.get("protected", False), "min_disk": attrs.get("min_disk", 0),
              "min_ram": attrs.get("min_ram", 0), "properties": attrs["properties"], "members": []}
    record = Record(kind="image", id=image_id, project_id=auth.project_id, name=attrs.get("name") or "",
                    attrs=json.dumps(stored))
    db.add(record)
    db.commit()
    item = dict(stored, id=image_id, name=record.name, project=auth.project_id, status="queued",
                created_at=record.created_at.isoformat(), updated_at=record.updated_at.isoformat())
    return Response(status_code=201, media_type="application/json", content=json.dumps(image_view(item)),
                    headers={"Location": _root(request) + "/v2/images/" + image_id})


def upload_path(settings, project_id: str, image_id: str) -> Path:
    # Both parts are checked (a project id, a UUID): the runbook builds the same path from them.
    return Path(settings.image_uploads_dir) / project_id / image_id


@router.put("/v2/images/{image_id}/file", status_code=204)
@policy("member")
async def upload_image(image_id: str, request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    record = db.get(Record, ("image", image_id)) if UUID.match(image_id) else None
    if record is None or (record.project_id != auth.project_id and not auth.is_admin):
        raise HTTPException(status_code=404, detail="No image found with ID %s" % image_id[:64])
    if image_id in {i.get("id") for i in _store(request)} or operations.in_flight(db, "image", [image_id]):
        raise HTTPException(status_code=409, detail="Image status transition from saving/active to saving is "
                            "not allowed")
    settings = request.app.state.settings
    target = upload_path(settings, record.project_id, image_id)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    digest, size = hashlib.sha256(), 0
    try:
        with open(part, "wb") as out:
            async for chunk in request.stream():
                size += len(chunk)
                if size > settings.image_upload_max_bytes:
                    raise HTTPException(status_code=413, detail="Image storage media is full: the image is larger "
                                        "than %d bytes" % settings.image_upload_max_bytes)
                digest.update(chunk)
                out.write(chunk)
        if size == 0:
            raise HTTPException(status_code=400, detail="The image data is empty")
        os.replace(part, target)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    attrs = json.loads(record.attrs or "{}")
    extra_vars = {"image_id": image_id, "image_name": record.name or image_id,
                  "image_checksum": "sha256:" + digest.hexdigest(), "image_visibility": attrs["visibility"],
                  "image_protected": attrs["protected"], "image_min_disk": attrs["min_disk"],
                  "image_min_ram": attrs["min_ram"], "image_properties": attrs["properties"]}
    if attrs.get("disk_format"):
        extra_vars["image_disk_format"] = attrs["disk_format"]
    try:
        operations.launch(request, db, auth, "image", image_id, "create", extra_vars,
                          {"id": image_id, "name": record.name}, project_id=record.project_id)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return Response(status_code=204)


@router.get("/v2/images/{image_id}/file")
@policy("authenticated")
def download_image(image_id: str, request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    item = _find(request, db, auth, image_id)
    status = item.get("status") or "active"
    if status == "deactivated" and not auth.is_admin:
        raise HTTPException(status_code=403, detail="The requested image has been deactivated. Image data "
                            "download is forbidden.")
    if status not in ("active", "deactivated"):
        return Response(status_code=204)  # Glance's answer for an image without data
    if item.get("project") is None and not item.get("os_hash_value"):
        raise HTTPException(status_code=409, detail="Image %s was copied to the hypervisors by hand: the image "
                            "store has no data for it" % image_id)
    base = request.app.state.settings.image_store_url.rstrip("/")
    if not base:
        raise HTTPException(status_code=503, detail="This cloud's API has no image_store_url to read images from")
    client = httpx.Client(timeout=60)
    upstream = client.send(client.build_request("GET", "%s/%s" % (base, image_id)), stream=True)
    if upstream.status_code != 200:
        upstream.close()
        client.close()
        raise HTTPException(status_code=502, detail="The image store answered %d" % upstream.status_code)

    def body():
        try:
            yield from upstream.iter_bytes(1 << 20)
        finally:
            upstream.close()
            client.close()

    headers = {"Content-MD5": item.get("checksum") or ""}
    if upstream.headers.get("content-length"):
        headers["Content-Length"] = upstream.headers["content-length"]
    return StreamingResponse(body(), media_type="application/octet-stream", headers=headers)


# --- update, deactivate, delete -------------------------------------------------------------------------

PATCH_TYPE = "application/openstack-images-v2.1-json-patch"


def _patched(item: dict, operations_list) -> dict:
    """The image's settable fields and properties after a JSON patch (add, replace, remove of /field)."""
    current = {k: item.get(k) for k in ("name", "visibility", "protected", "min_disk", "min_ram")}
    current.update(item.get("properties") or {})
    if not isinstance(operations_list, list) or len(operations_list) > 128:
        raise HTTPException(status_code=400, detail="A JSON patch is a list of at most 128 operations")
    for op in operations_list:
        if not isinstance(op, dict) or op.get("op") not in ("add", "replace", "remove") \
                or not isinstance(op.get("path"), str) or not op["path"].startswith("/") or op["path"].count("/") != 1:
            raise HTTPException(status_code=400, detail="Unsupported JSON patch operation %s" % str(op)[:100])
        key = op["path"][1:]
        if key in READ_ONLY or key in ("disk_format", "container_format", "id"):
            raise HTTPException(status_code=403, detail="Attribute '%s' is read-only." % key[:64])
        if op["op"] == "remove":
            if key in SETTABLE:
                raise HTTPException(status_code=403, detail="Attribute '%s' cannot be removed." % key[:64])
            current.pop(key, None)
        else:
            if "value" not in op:
                raise HTTPException(status_code=400, detail="Operation %s on %s needs a value" % (op["op"], key))
            current[key] = op["value"]
    return current


@router.patch("/v2/images/{image_id}")
@policy("member")
async def update_image(image_id: str, request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    if PATCH_TYPE not in request.headers.get("content-type", ""):
        raise HTTPException(status_code=415, detail="Content-Type must be %s" % PATCH_TYPE)
    try:
        patch = json.loads(await request.body() or b"[]")
    except ValueError:
        raise HTTPException(status_code=400, detail="The request body is not JSON")
    item = _find(request, db, auth, image_id)
    _owned(item, auth, "modify")
    wanted = _checked_attributes(_patched(item, patch), auth, creating=False)
    if wanted.get("visibility") == "public" and item.get("visibility") != "public" and not auth.is_admin:
        raise HTTPException(status_code=403, detail="You are not authorized to publicize this image.")
    record = db.get(Record, ("image", image_id))
    if item.get("status") in ("queued", "killed"):
        # Not in the store yet: the API's record is all there is.
        attrs = json.loads(record.attrs or "{}")
        attrs.update({k: wanted[k] for k in ("visibility", "protected", "min_disk", "min_ram", "properties")
                      if k in wanted})
        record.name, record.attrs, record.updated_at = wanted.get("name") or record.name, json.dumps(attrs), now()
        db.commit()
        return image_view(dict(item, **attrs, name=record.name))
    if wanted.get("name") not in (None, item.get("name")):
        raise HTTPException(status_code=409, detail="An image in the store keeps its name (its record names it on "
                            "every hypervisor); create a new image to rename it")
    extra_vars = {"image_id": image_id}
    for key in ("visibility", "protected", "min_disk", "min_ram", "properties"):
        if key in wanted and wanted[key] != (item.get(key) if key != "properties" else item.get("properties") or {}):
            extra_vars["image_" + key] = wanted[key]
    if len(extra_vars) > 1:
        operations.launch(request, db, auth, "image", image_id, "update", extra_vars, {"id": image_id},
                          runbook_action="update", project_id=item["project"])
    shown = dict(item, **{k[6:]: v for k, v in extra_vars.items() if k != "image_id"})
    return image_view(shown)


def _set_state(request: Request, db, auth, image_id: str, state: str) -> Response:
    item = _find(request, db, auth, image_id)
    _owned(item, auth, "deactivate" if state == "deactivated" else "reactivate")
    if item.get("status") not in ("active", "deactivated"):
        raise HTTPException(status_code=409, detail="Image %s is %s" % (image_id, item.get("status")))
    if item.get("status") != ("deactivated" if state == "deactivated" else "active"):
        operations.launch(request, db, auth, "image", image_id, "update", {"image_id": image_id, "image_state": state},
                          {"id": image_id}, runbook_action="update", project_id=item["project"])
    return Response(status_code=204)


@router.post("/v2/images/{image_id}/actions/deactivate", status_code=204)
@policy("member")
def deactivate_image(image_id: str, request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    return _set_state(request, db, auth, image_id, "deactivated")


@router.post("/v2/images/{image_id}/actions/reactivate", status_code=204)
@policy("member")
def reactivate_image(image_id: str, request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    return _set_state(request, db, auth, image_id, "present")


@router.delete("/v2/images/{image_id}", status_code=204)
@policy("member")
def delete_image(image_id: str, request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    item = _find(request, db, auth, image_id)
    _owned(item, auth, "delete")
    if item.get("protected"):
        raise HTTPException(status_code=403, detail="Image %s is protected and cannot be deleted." % image_id)
    record = db.get(Record, ("image", image_id))
    if item.get("status") in ("queued", "killed", "saving"):
        operations.cancel_creates(db, item["project"], "image", image_id)
        upload_path(request.app.state.settings, item["project"], image_id).unlink(missing_ok=True)
        if item.get("status") != "saving":
            db.delete(record)
            db.commit()
            return Response(status_code=204)
    operations.launch(request, db, auth, "image", image_id, "delete", {"image_id": image_id}, {"id": image_id},
                      project_id=item["project"])
    if record is not None:
        db.delete(record)
        db.commit()
    return Response(status_code=204)


@router.get("/v2/schemas/image")
@policy("authenticated")
def image_schema():
    # What openstackclient reads to tell the image's own fields from its properties.
    props = {k: {"type": ["null", "string", "integer", "boolean", "array"]} for k in sorted(SETTABLE | READ_ONLY)}
    return {"name": "image", "properties": props, "additionalProperties": {"type": "string"},
            "links": [{"rel": "self", "href": "{self}"}, {"rel": "enclosure", "href": "{file}"},
                      {"rel": "describedby", "href": "{schema}"}]}
