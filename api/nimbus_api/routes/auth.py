"""Tokens and signing keys."""

from __future__ import annotations

from datetime import timezone

from fastapi import APIRouter, Depends, HTTPException, Request
from sqlalchemy import select

from nimbus_api import identity
from nimbus_api.deps import get_db
from nimbus_api.models import ApplicationCredential, SigningKey, User, now
from nimbus_api.policy import PolicyRoute, current_auth, policy
from nimbus_api.schemas import KeysOut, TokenOut, TokenRequest
from nimbus_api.security import issue_token, retire_keys, revoke, rotate_keys, verify_secret, active_keys

router = APIRouter(prefix="/v1/auth", tags=["auth"], route_class=PolicyRoute)
DENIED = HTTPException(status_code=401, detail="invalid credentials")


@router.post("/tokens", status_code=201, response_model=TokenOut)
@policy("public")
def create_token(body: TokenRequest, request: Request, db=Depends(get_db)):
    settings = request.app.state.settings
    method = "password"
    if body.auth.password is not None:
        creds = body.auth.password
        domain = identity.find_domain(db, creds.domain) if creds.domain else None
        user = db.scalar(select(User).where(User.name == creds.user, User.domain_id == domain.id))
        if user is None or not user.enabled or not verify_secret(user.password_hash, creds.password):
            raise DENIED
        project_ref = body.project
    elif body.auth.application_credential is not None:
        method = "application_credential"
        creds = body.auth.application_credential
        cred = db.get(ApplicationCredential, creds.id)
        if cred is None or not verify_secret(cred.secret_hash, creds.secret):
            raise DENIED
        expires = cred.expires_at
        if expires is not None and (expires if expires.tzinfo else expires.replace(tzinfo=timezone.utc)) < now():
            raise DENIED
        user = db.get(User, cred.user_id)
        if user is None or not user.enabled:
            raise DENIED
        project_ref = cred.project_id
    else:
        raise HTTPException(status_code=422, detail="give a password or an application_credential")
    project_id = role = None
    if project_ref:
        try:
            project = identity.find_project(db, project_ref, user.domain_id)
        except HTTPException:
            raise DENIED
        role = identity.role_on(db, user.id, project.id)
        if role is None or not project.enabled:
            raise HTTPException(status_code=403, detail="no role on project %s" % project_ref)
        project_id = project.id
    is_admin = identity.is_cloud_admin(db, user.id, settings.admin_project) and method == "password"
    token, auth = issue_token(db, user, project_id, role, is_admin, settings.token_ttl, method)
    db.commit()
    return TokenOut(token=token, user_id=user.id, user=user.name, project_id=project_id, role=role,
                    is_admin=is_admin, expires_at=auth.expires_at, method=method)


@router.get("/tokens", response_model=TokenOut)
@policy("authenticated")
def show_token(auth=Depends(current_auth)):
    return TokenOut(user_id=auth.user_id, user=auth.user_name, project_id=auth.project_id, role=auth.role,
                    is_admin=auth.is_admin, expires_at=auth.expires_at, method=auth.method)


@router.delete("/tokens", status_code=204)
@policy("authenticated")
def revoke_token(auth=Depends(current_auth), db=Depends(get_db)):
    revoke(db, auth)
    db.commit()


def _keys(db):
    return [k.id for k in active_keys(db)]


@router.get("/keys", response_model=KeysOut)
@policy("admin")
def list_keys(db=Depends(get_db)):
    retired = [k.id for k in db.scalars(select(SigningKey).where(SigningKey.retired_at.is_not(None)))]
    return KeysOut(active=_keys(db), retired=retired)


@router.post("/keys/rotate", response_model=KeysOut)
@policy("admin")
def rotate(db=Depends(get_db)):
    rotate_keys(db)
    db.commit()
    return KeysOut(active=_keys(db))


@router.post("/keys/retire", response_model=KeysOut)
@policy("admin")
def retire(keep: int = 1, db=Depends(get_db)):
    if keep < 1:
        raise HTTPException(status_code=422, detail="keep at least one key")
    retired = retire_keys(db, keep)
    db.commit()
    return KeysOut(active=_keys(db), retired=retired)
