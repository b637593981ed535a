"""The service catalog: which services the cloud offers and where (roles register theirs)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from nimbus_api import identity
from nimbus_api.deps import get_db
from nimbus_api.models import Endpoint, Service
from nimbus_api.policy import PolicyRoute, policy
from nimbus_api.routes.identity import _commit
from nimbus_api.schemas import EndpointIn, EndpointOut, ServiceIn, ServiceOut

router = APIRouter(prefix="/v1", tags=["catalog"], route_class=PolicyRoute)


def _view(db, service):
    endpoints = db.scalars(select(Endpoint).where(Endpoint.service_id == service.id).order_by(Endpoint.interface))
    return ServiceOut(id=service.id, name=service.name, type=service.type, description=service.description,
                      endpoints=[EndpointOut.model_validate(e) for e in endpoints])


@router.get("/catalog", response_model=list[ServiceOut])
@policy("authenticated")
def catalog(db=Depends(get_db)):
    return [_view(db, s) for s in db.scalars(select(Service).order_by(Service.name))]


@router.post("/services", status_code=201, response_model=ServiceOut)
@policy("admin")
def create_service(body: ServiceIn, db=Depends(get_db)):
    service = Service(**body.model_dump())
    db.add(service)
    _commit(db, "service %s" % body.name)
    return _view(db, service)


@router.delete("/services/{service_id}", status_code=204)
@policy("admin")
def delete_service(service_id: str, db=Depends(get_db)):
    service = identity.get_or_404(db, Service, service_id, "service")
    db.delete(service)
    db.commit()


@router.put("/services/{service_id}/endpoints", response_model=ServiceOut)
@policy("admin")
def put_endpoint(service_id: str, body: EndpointIn, db=Depends(get_db)):
    """Register (or move) the service's endpoint for an interface and region; idempotent."""
    service = identity.get_or_404(db, Service, service_id, "service")
    identity.set_endpoint(db, service_id, body.interface, body.url, body.region)
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        raise
    return _view(db, service)
