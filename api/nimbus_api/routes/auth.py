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
from nimbus_api.security import (TokenError, active_keys, issue_token, retire_keys, revoke, rotate_keys,
                                 validate_token, verify_secret)

router = APIRouter(prefix="/v1/auth", tags=["auth"], route_class=PolicyRoute)
DENIED = HTTPException(status_code=401, detail="invalid credentials")


@router.post("/tokens", status_code=201, response_model=TokenOut)
@policy("public")
def create_token(body: TokenRequest, request: Request, db=Depends(get_db)):
    token, out = issue_from(db, request.app.state.settings, body)
    out.token = token
    return out


def issue_from(db, settings, body: TokenRequest) -> tuple[str, TokenOut]:
    """Check one of the three auth methods and issue a token: the route's logic, shared with the dashboard."""
    ttl = settings.token_ttl
    if body.auth.password is not None:
        method = "password"
        creds = body.auth.password
        try:
            domain = identity.find_domain(db, creds.domain or settings.default_domain)
        except HTTPException:
            raise DENIED  # an unknown domain is one more wrong credential, not a hint
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
    elif body.auth.token is not None:
        # Rescoping, as Keystone's token method: a valid token buys a token on another of the user's
        # projects, expiring no later than it. An application credential's token cannot be rescoped.
        try:
            held = validate_token(db, body.auth.token.id)
        except TokenError:
            raise DENIED
        if held.method == "application_credential":
            raise HTTPException(status_code=403, detail="a token from an application credential cannot be rescoped")
        method, user, project_ref = held.method, db.get(User, held.user_id), body.project
        ttl = min(ttl, int((held.expires_at - now()).total_seconds()))
        if ttl <= 0:
            raise DENIED
    else:
        raise HTTPException(status_code=422, detail="give a password, an application_credential or a token")
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
    token, auth = issue_token(db, user, project_id, role, is_admin, ttl, method)
    db.commit()
    return token, TokenOut(user_id=user.id, user=user.name, project_id=project_id, role=role, is_admin=is_admin,
                           expires_at=auth.expires_at, method=method)


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
