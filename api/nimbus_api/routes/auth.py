"""Tokens and signing keys."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from sqlalchemy import select

from nimbus_api import identity
from nimbus_api.deps import get_db
from nimbus_api.models import RANK, ApplicationCredential, Domain, SigningKey, User, now
from nimbus_api.policy import PolicyRoute, current_auth, policy
from nimbus_api.schemas import KeysOut, TokenOut, TokenRequest
from nimbus_api.security import (Auth, TokenError, active_keys, expired, issue_token, retire_keys, revoke,
                                 rotate_keys, validate_token, verify_nothing, verify_secret)

router = APIRouter(prefix="/v1/auth", tags=["auth"], route_class=PolicyRoute)
DENIED = HTTPException(status_code=401, detail="invalid credentials")


@router.post("/tokens", status_code=201, response_model=TokenOut)
@policy("public")
def create_token(body: TokenRequest, request: Request, db=Depends(get_db)):
    token, out = issue_from(db, request.app.state.settings, body)
    out.token = token
    return out


def issue_from(db, settings, body: TokenRequest) -> tuple[str, TokenOut]:
    """The token and its summary, as the route and the dashboard answer them."""
    token, auth = issue_auth(db, settings, body)
    return token, TokenOut(user_id=auth.user_id, user=auth.user_name, project_id=auth.project_id, role=auth.role,
                           is_admin=auth.is_admin, expires_at=auth.expires_at, method=auth.method)


def issue_auth(db, settings, body: TokenRequest) -> tuple[str, Auth]:
    """Check one of the three auth methods and issue a token: the logic of every login (this API's, the
    dashboard's, Keystone v3's).

    Every refusal of a credential is the same 401, whatever was wrong (an unknown domain or user, a wrong
    password, a locked account, a disabled user or domain), and costs the same Argon2 verification.
    """
    ttl = settings.token_ttl
    cred = None
    if body.auth.password is not None:
        method = "password"
        creds = body.auth.password
        if creds.user_id is not None:
            user = db.get(User, creds.user_id)
            domain = db.get(Domain, user.domain_id) if user is not None else None
        else:
            domain = _domain(db, creds.domain or settings.default_domain)
            user = db.scalar(select(User).where(User.name == creds.user, User.domain_id == domain.id)) \
                if domain is not None else None
        if not identity.check_password(db, settings, user, creds.password) or not user.enabled \
                or not domain.enabled:
            raise DENIED
        project_ref = body.project
    elif body.auth.application_credential is not None:
        method = "application_credential"
        creds = body.auth.application_credential
        cred = db.get(ApplicationCredential, creds.id)
        if cred is None:
            verify_nothing(creds.secret)
            raise DENIED
        if not verify_secret(cred.secret_hash, creds.secret) or expired(cred):
            raise DENIED
        user = db.get(User, cred.user_id)
        if user is None or not user.enabled or not _enabled_domain(db, user.domain_id):
            raise DENIED
        project_ref = cred.project_id
    elif body.auth.token is not None:
        # Rescoping, as Keystone's token method: a valid token buys a token on another of the user's
        # projects, expiring no later than it. An application credential's token cannot be rescoped.
        try:
            held = validate_token(db, settings, body.auth.token.id)
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
        project_domain = user.domain_id
        if body.project_domain and cred is None:
            given = _domain(db, body.project_domain)
            if given is None:
                raise DENIED
            project_domain = given.id
        try:
            project = identity.find_project(db, project_ref, project_domain)
        except HTTPException:
            raise DENIED
        role = identity.role_on(db, user.id, project.id)
        if cred is not None and role is not None:
            # Never above the credential's role, nor above what the user holds now.
            role = min(role, cred.role, key=RANK.get)
        if role is None or not project.enabled or not _enabled_domain(db, project.domain_id):
            raise HTTPException(status_code=403, detail="no role on project %s" % project_ref)
        project_id = project.id
    # The cloud-admin bit comes with a password (or a token rescoped from one), never an application credential.
    is_admin = method == "password" and identity.is_cloud_admin(db, user.id, settings)
    token, auth = issue_token(db, settings, user, project_id, role, is_admin, ttl, method, cred)
    db.commit()
    return token, auth


def _domain(db, ref: str):
    try:
        return identity.find_domain(db, ref)
    except HTTPException:
        return None  # an unknown domain is one more wrong credential, not a hint


def _enabled_domain(db, domain_id: str) -> bool:
    domain = db.get(Domain, domain_id)
    return domain is not None and domain.enabled


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
def rotate(request: Request, db=Depends(get_db)):
    rotate_keys(db, request.app.state.settings)
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
