"""Glance v2 under ``/image``, read only: the images of the hypervisors' image caches (the images resource view,
``image_info`` on the compute hosts), so that a client's ``--image NAME`` resolves.

Every cached image is public (the caches are the cloud's). An image store with upload, visibility and
properties replaces this with the images-and-volumes work; until then changes are refused (405).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request

from nimbus_api.deps import get_db
from nimbus_api.models import Project
from nimbus_api.policy import PolicyRoute, current_auth, policy

PREFIX = "/image"
router = APIRouter(prefix=PREFIX, tags=["glance"], route_class=PolicyRoute)
VERSION = {"id": "v2.9", "status": "CURRENT"}
MAX_LIMIT = 1000


def _root(request: Request) -> str:
    return str(request.base_url).rstrip("/") + PREFIX


@router.get("", include_in_schema=False)
@router.get("/")
@router.get("/versions")
@policy("public")
def versions(request: Request):
    return {"versions": [dict(VERSION, links=[{"rel": "self", "href": _root(request) + "/v2/"}])]}


def image_view(item: dict) -> dict:
    image_id = str(item.get("id") or "")
    return {
        "id": image_id, "name": item.get("name"), "status": "active", "visibility": "public", "protected": False,
        "os_hidden": False, "disk_format": item.get("disk_format"), "container_format": "bare",
        "size": item.get("size"), "virtual_size": item.get("virtual_size"), "min_disk": 0, "min_ram": 0,
        "checksum": None, "os_hash_algo": None, "os_hash_value": None, "owner": None, "tags": [],
        "created_at": item.get("updated_at"), "updated_at": item.get("updated_at"),
        "self": "/v2/images/" + image_id, "file": "/v2/images/%s/file" % image_id, "schema": "/v2/schemas/image",
    }


def _images(request: Request, db, auth) -> list[dict]:
    views = request.app.state.resources
    if not views.available("images"):
        return []
    if auth.project_id is None:
        items = views.read("images")[0]
    else:
        items = views.for_project("images", db.get(Project, auth.project_id))["items"]
    return [image_view(i) for i in items if i.get("id")]


@router.get("/v2/images")
@policy("authenticated")
def list_images(request: Request, name: str | None = None, status: str | None = None,
                visibility: str | None = None, disk_format: str | None = None, limit: int = MAX_LIMIT,
                marker: str | None = None, auth=Depends(current_auth), db=Depends(get_db)):
    if not 0 < limit <= MAX_LIMIT:
        raise HTTPException(status_code=400, detail="limit must be 1 to %d" % MAX_LIMIT)
    images = [i for i in _images(request, db, auth)
              if (name is None or i["name"] == name) and (status is None or i["status"] == status)
              and (visibility in (None, "all") or i["visibility"] == visibility)
              and (disk_format is None or i["disk_format"] == disk_format)]
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
    for image in _images(request, db, auth):
        if image["id"] == image_id:
            return image
    raise HTTPException(status_code=404, detail="No image found with ID %s" % image_id[:64])
