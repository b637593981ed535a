"""Credential types (the cloud admin's) and credentials (a project's values for a type's fields)."""

from __future__ import annotations

import json

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field
from sqlalchemy import select

from nimbus_api import identity
from nimbus_api.credentials import CredentialError, check_inputs, check_type
from nimbus_api.deps import get_db
from nimbus_api.models import Credential, CredentialType
from nimbus_api.policy import PolicyRoute, policy
from nimbus_api.routes.identity import _commit
from nimbus_api.schemas import Name
from nimbus_api.sealing import seal

router = APIRouter(prefix="/v1", tags=["credentials"], route_class=PolicyRoute)


class FieldIn(BaseModel):
    id: str = Field(min_length=1, max_length=64)
    label: str = Field(default="", max_length=128)
    secret: bool = True
    required: bool = True
    help_text: str = Field(default="", max_length=512)


class Injectors(BaseModel):
    # Environment variable -> field id; extra variable -> field id. Names only, never templates.
    env: dict[str, str] = {}
    extra_vars: dict[str, str] = {}


class CredentialTypeIn(BaseModel):
    name: str = Name
    description: str = Field(default="", max_length=1024)
    fields: list[FieldIn] = Field(min_length=1, max_length=32)
    injectors: Injectors


class CredentialTypeOut(CredentialTypeIn):
    id: str


class CredentialIn(BaseModel):
    name: str = Name
    # The credential type, by id or name.
    credential_type: str = Field(min_length=1, max_length=64)
    # Field id -> value.
    inputs: dict[str, str]


class CredentialOut(BaseModel):
    id: str
    name: str
    project_id: str
    credential_type_id: str
    # The field ids that hold a value; values are never shown again.
    variables: list[str]


def _type_out(kind: CredentialType) -> CredentialTypeOut:
    return CredentialTypeOut(id=kind.id, name=kind.name, description=kind.description,
                             fields=json.loads(kind.fields), injectors=json.loads(kind.injectors))


def _credential_out(cred: Credential) -> CredentialOut:
    return CredentialOut(id=cred.id, name=cred.name, project_id=cred.project_id,
                         credential_type_id=cred.credential_type_id, variables=[v for v in cred.variables.split(",") if v])


def find_type(db, ref: str) -> CredentialType:
    kind = db.get(CredentialType, ref) or db.scalar(select(CredentialType).where(CredentialType.name == ref))
    if kind is None:
        raise identity.not_found("credential type", ref)
    return kind


def _invalid(error: CredentialError):
    return HTTPException(status_code=422, detail=str(error))


# --- credential types -------------------------------------------------------------

@router.post("/credential_types", status_code=201, response_model=CredentialTypeOut)
@policy("admin")
def create_credential_type(body: CredentialTypeIn, db=Depends(get_db)):
    try:
        fields, injectors = check_type([f.model_dump() for f in body.fields], body.injectors.model_dump())
    except CredentialError as e:
        raise _invalid(e)
    kind = CredentialType(name=body.name, description=body.description, fields=json.dumps(fields),
                          injectors=json.dumps(injectors))
    db.add(kind)
    _commit(db, "credential type %s" % body.name)
    return _type_out(kind)


@router.get("/credential_types", response_model=list[CredentialTypeOut])
@policy("authenticated")
def list_credential_types(db=Depends(get_db)):
    return [_type_out(k) for k in db.scalars(select(CredentialType).order_by(CredentialType.name))]


@router.get("/credential_types/{type_id}", response_model=CredentialTypeOut)
@policy("authenticated")
def show_credential_type(type_id: str, db=Depends(get_db)):
    return _type_out(find_type(db, type_id))


@router.delete("/credential_types/{type_id}", status_code=204)
@policy("admin")
def delete_credential_type(type_id: str, db=Depends(get_db)):
    kind = find_type(db, type_id)
    if db.scalar(select(Credential.id).where(Credential.credential_type_id == kind.id).limit(1)):
        raise HTTPException(status_code=409, detail="credential type %s has credentials" % kind.name)
    db.delete(kind)
    db.commit()


# --- a project's credentials ----------------------------------------------------------

@router.post("/projects/{project_id}/credentials", status_code=201, response_model=CredentialOut)
@policy("member")
def create_credential(project_id: str, body: CredentialIn, request: Request, db=Depends(get_db)):
    kind = find_type(db, body.credential_type)
    try:
        inputs = check_inputs(json.loads(kind.fields), body.inputs)
    except CredentialError as e:
        raise _invalid(e)
    cred = Credential(name=body.name, project_id=project_id, credential_type_id=kind.id,
                      sealed=seal(request.app.state.settings, inputs), variables=",".join(sorted(inputs)))
    db.add(cred)
    _commit(db, "credential %s" % body.name)
    return _credential_out(cred)


@router.get("/projects/{project_id}/credentials", response_model=list[CredentialOut])
@policy("reader")
def list_credentials(project_id: str, db=Depends(get_db)):
    return [_credential_out(c) for c in db.scalars(select(Credential).where(Credential.project_id == project_id)
                                                   .order_by(Credential.name))]


@router.delete("/projects/{project_id}/credentials/{credential_id}", status_code=204)
@policy("member")
def delete_credential(project_id: str, credential_id: str, db=Depends(get_db)):
    cred = db.get(Credential, credential_id)
    if cred is None or cred.project_id != project_id:
        raise identity.not_found("credential", credential_id)
    db.delete(cred)
    db.commit()
