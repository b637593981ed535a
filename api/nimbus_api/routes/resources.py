"""Read-only views of a project's cloud resources."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from nimbus_api import identity
from nimbus_api.deps import get_db
from nimbus_api.models import Project
from nimbus_api.policy import PolicyRoute, policy

router = APIRouter(prefix="/v1", tags=["resources"], route_class=PolicyRoute)


class HostError(BaseModel):
    host: str | None
    msg: str


class ResourceList(BaseModel):
    kind: str
    # False where the collection has no _info module for this kind yet, or no inventory is configured.
    available: bool
    items: list[dict]
    errors: list[HostError]
    read_at: float | None = None


@router.get("/projects/{project_id}/resources/{kind}", response_model=ResourceList)
@policy("reader")
def list_resources(project_id: str, kind: Literal["instances", "networks", "volumes", "images"],
                   request: Request, db=Depends(get_db)):
    # A plain def: FastAPI runs it in a thread, so neither the database read nor the ansible run of the
    # views blocks the event loop (streams and other requests go on meanwhile).
    project = identity.get_or_404(db, Project, project_id, "project")
    return request.app.state.resources.for_project(kind, project)
