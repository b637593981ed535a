"""Nova's os-volume_attachments under ``/compute/v2.1/servers/{id}``: attach a volume to a server and detach it,
as jobs of the nimbus.volume_attach and nimbus.volume_detach runbooks.

A server's attachments are its instance's volume disks (the compute host's view, which says the device),
its boot volume (/dev/vda, never detached) among them, with the attaches still in flight on top. Attaching needs the project's server (not being built, not in
error) and its available volume; the answer carries the device asked for, or none when the compute host is
to choose the first free one (it shows once the job is done).
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from nimbus_api.deps import get_db
from nimbus_api.openstack import cinder, nova, operations
from nimbus_api.policy import PolicyRoute, current_auth, policy

router = APIRouter(prefix=nova.PREFIX, tags=["nova"], route_class=PolicyRoute)
DEVICE = re.compile(r"^(/dev/)?(vd[b-z])$")


def _attachment(server_id: str, volume_id: str, device: str | None) -> dict:
    return {"id": volume_id, "serverId": server_id, "volumeId": volume_id, "device": device}


def _attachments(request: Request, db, auth, server_id: str) -> list[dict]:
    item, _creating = nova.find_server(request, db, auth, server_id)
    found = {d["volume_id"]: "/dev/" + d["device"] for d in (item or {}).get("disks") or [] if d.get("volume_id")}
    for pending in operations.pending(db, auth.project_id, "volume"):
        op = pending.operation
        if pending.in_flight and op.action == "attach" and pending.shown.get("server_id") == server_id:
            found.setdefault(op.resource_id, pending.shown.get("device"))
    return [_attachment(server_id, volume_id, device) for volume_id, device in sorted(found.items())]


@router.get("/v2.1/servers/{server_id}/os-volume_attachments")
@policy("reader")
def list_attachments(server_id: str, request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    return {"volumeAttachments": _attachments(request, db, auth, server_id)}


@router.get("/v2.1/servers/{server_id}/os-volume_attachments/{volume_id}")
@policy("reader")
def show_attachment(server_id: str, volume_id: str, request: Request, auth=Depends(current_auth),
                    db=Depends(get_db)):
    for attachment in _attachments(request, db, auth, server_id):
        if attachment["volumeId"] == volume_id:
            return {"volumeAttachment": attachment}
    raise HTTPException(status_code=404, detail="Volume %s is not attached to server %s." % (volume_id[:64], server_id))


class AttachmentBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    volumeId: str = Field(max_length=64)
    device: str | None = Field(default=None, max_length=32)
    tag: str | None = None
    delete_on_termination: bool = False


class AttachmentCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")
    volumeAttachment: AttachmentBody


@router.post("/v2.1/servers/{server_id}/os-volume_attachments")
@policy("member")
def attach_volume(server_id: str, body: AttachmentCreate, request: Request, auth=Depends(current_auth),
                  db=Depends(get_db)):
    given = body.volumeAttachment
    if given.tag is not None or given.delete_on_termination:
        raise HTTPException(status_code=400, detail="Invalid input: tag and delete_on_termination are not supported")
    device = None
    if given.device is not None:
        match = DEVICE.match(given.device)
        if match is None:
            raise HTTPException(status_code=400, detail="Invalid input: device must be /dev/vdb to /dev/vdz")
        device = match.group(2)
    item, creating = nova.find_server(request, db, auth, server_id)
    if item is None:
        raise HTTPException(status_code=409, detail="Cannot 'attach_volume' instance %s while it is in vm_state %s"
                            % (server_id, "building" if creating.in_flight else "error"))
    volume_id = cinder.check_uuid(given.volumeId, "volumeId")
    volume = cinder.find_volume(request, db, auth, volume_id)
    cinder.require_available(volume, "attached")
    used = {d.get("device") for d in item.get("disks") or []}
    if device is not None and device in used:
        raise HTTPException(status_code=400, detail="Invalid input: device /dev/%s of server %s is in use"
                            % (device, server_id))
    extra_vars = {"server_id": server_id, "volume_id": volume_id}
    if device is not None:
        extra_vars["volume_device"] = device
    shown_device = "/dev/" + device if device else None
    operations.launch(request, db, auth, "volume", volume_id, "attach", extra_vars,
                      {"server_id": server_id, "device": shown_device},
                      after=operations.in_flight(db, "volume", [volume_id])
                      + operations.in_flight(db, "server", [server_id]))
    return {"volumeAttachment": _attachment(server_id, volume_id, shown_device)}


@router.delete("/v2.1/servers/{server_id}/os-volume_attachments/{volume_id}", status_code=202)
@policy("member")
def detach_volume(server_id: str, volume_id: str, request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    attached = {a["volumeId"]: a["device"] for a in _attachments(request, db, auth, server_id)}
    volume = cinder.find_volume(request, db, auth, cinder.check_uuid(volume_id, "volume_id"))
    on_server = {a.get("server_id") for a in volume.get("attachments") or []}
    if volume_id not in attached and server_id not in on_server:
        raise HTTPException(status_code=404, detail="Volume %s is not attached to server %s." % (volume_id, server_id))
    if attached.get(volume_id) == "/dev/vda":
        raise HTTPException(status_code=400, detail="Invalid volume: volume %s is the root device of server %s: it "
                            "cannot be detached" % (volume_id, server_id))
    operations.launch(request, db, auth, "volume", volume_id, "detach",
                      {"server_id": server_id, "volume_id": volume_id}, {"server_id": server_id},
                      after=operations.in_flight(db, "volume", [volume_id])
                      + operations.in_flight(db, "server", [server_id]))
    return Response(status_code=202)
