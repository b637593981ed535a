"""Keystone v3 under ``/identity``: what keystoneauth, openstacksdk, the ``openstack`` command and
keystonemiddleware's ``auth_token`` call.

Tokens are the service's own (``security.py``); the identity records and their rules are the ``/v1`` API's,
whose route functions this module calls, so the two APIs cannot disagree about who may do what. Only the
shapes are Keystone's: request bodies, ``X-Subject-Token``, the token body with its catalog, the error body.

Not here (refused with a clear message): domain- and system-scoped tokens, trusts, federation, groups,
regions other than what endpoints name, multi-factor rules, and role definitions (the three roles are fixed).
"""

from __future__ import annotations

import base64
import uuid
from datetime import datetime

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from nimbus_api import identity
from nimbus_api.deps import get_db
from nimbus_api.models import RANK, ROLES, ApplicationCredential, Assignment, Domain, Endpoint, Project, Service, User
from nimbus_api.policy import PolicyRoute, current_auth, policy
from nimbus_api.routes import identity as v1
from nimbus_api.routes.auth import issue_auth
from nimbus_api.schemas import (AppCredentialAuth, AuthMethods, Name, PasswordAuth, ProjectIn, ProjectPatch,
                                TokenAuth, TokenRequest, UserIn, UserPatch)
from nimbus_api.security import Auth, TokenError, implied_roles, revoke, validate_token

PREFIX = "/identity"
router = APIRouter(prefix=PREFIX, tags=["keystone"], route_class=PolicyRoute)

VERSION_ID = "v3.14"
UPDATED = "2020-04-07T00:00:00Z"
MEDIA_TYPES = [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]
# Role ids are stable names in the uuid5 space: the same on every cloud, never a secret.
_ROLE_NAMESPACE = uuid.UUID("6d2f1f0e-8f0c-5c8e-9a6a-6e696d627573")
ROLE_IDS = {name: uuid.uuid5(_ROLE_NAMESPACE, name).hex for name in ROLES}
UNSUPPORTED = "not supported by this cloud"
NOT_SUPPORTED = UNSUPPORTED + ": scope tokens to a project (or leave them unscoped)"


def _root(request: Request) -> str:
    return str(request.base_url).rstrip("/") + PREFIX


def _version(request: Request) -> dict:
    return {"id": VERSION_ID, "status": "stable", "updated": UPDATED, "media-types": MEDIA_TYPES,
            "links": [{"rel": "self", "href": _root(request) + "/v3/"}]}


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- version discovery ------------------------------------------------------------

@router.get("", include_in_schema=False)
@router.get("/")
@policy("public")
def versions(request: Request):
    # Keystone answers its root with 300 Multiple Choices; keystoneauth reads the list either way.
    return JSONResponse({"versions": {"values": [_version(request)]}}, status_code=300)


@router.get("/v3", include_in_schema=False)
@router.get("/v3/")
@policy("public")
def version(request: Request):
    return {"version": _version(request)}


# --- tokens ---------------------------------------------------------------------

class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class DomainRef(_Loose):
    id: str | None = Field(default=None, max_length=64)
    name: str | None = Field(default=None, max_length=64)


class UserRef(_Loose):
    id: str | None = Field(default=None, max_length=64)
    name: str | None = Field(default=None, max_length=64)
    domain: DomainRef | None = None
    password: str | None = Field(default=None, max_length=4096)


class PasswordMethod(_Loose):
    user: UserRef


class TokenMethod(_Loose):
    id: str = Field(max_length=8192)


class AppCredentialMethod(_Loose):
    id: str | None = Field(default=None, max_length=64)
    name: str | None = Field(default=None, max_length=64)
    user: UserRef | None = None
    secret: str = Field(max_length=4096)


class Identity(_Loose):
    methods: list[str] = Field(min_length=1, max_length=3)
    password: PasswordMethod | None = None
    token: TokenMethod | None = None
    application_credential: AppCredentialMethod | None = None


class ProjectRef(_Loose):
    id: str | None = Field(default=None, max_length=64)
    name: str | None = Field(default=None, max_length=64)
    domain: DomainRef | None = None


class Scope(_Loose):
    project: ProjectRef | None = None
    domain: dict | None = None
    system: dict | None = None
    OS_TRUST__trust: dict | None = Field(default=None, alias="OS-TRUST:trust")


class AuthBody(_Loose):
    identity: Identity
    scope: Scope | str | None = None


class V3TokenRequest(_Loose):
    auth: AuthBody


def _bad(message: str) -> HTTPException:
    return HTTPException(status_code=400, detail=message)


def _domain_ref(ref: DomainRef | None, what: str) -> str:
    if ref is None or (ref.id or ref.name) is None:
        raise _bad("give the domain (id or name) of the %s named by name" % what)
    return ref.id or ref.name


def translate(db, body: V3TokenRequest) -> TokenRequest:
    """The v3 request as the service's own token request (the rules of issue_auth apply unchanged)."""
    ident = body.auth.identity
    if len(ident.methods) != 1:
        raise HTTPException(status_code=401, detail="one authentication method at a time: multi-factor rules "
                            "are " + UNSUPPORTED)
    method = ident.methods[0]
    if method == "password":
        if ident.password is None or ident.password.user.password is None:
            raise _bad("the password method needs auth.identity.password.user with its password")
        user = ident.password.user
        if user.id is not None:
            creds = PasswordAuth(user_id=user.id, password=user.password)
        elif user.name is not None:
            creds = PasswordAuth(user=user.name, domain=_domain_ref(user.domain, "user"), password=user.password)
        else:
            raise _bad("give the user's id, or its name and domain")
        methods = AuthMethods(password=creds)
    elif method == "token":
        if ident.token is None:
            raise _bad("the token method needs auth.identity.token.id")
        methods = AuthMethods(token=TokenAuth(id=ident.token.id))
    elif method == "application_credential":
        cred = ident.application_credential
        if cred is None:
            raise _bad("the application_credential method needs auth.identity.application_credential")
        methods = AuthMethods(application_credential=AppCredentialAuth(
            id=cred.id if cred.id is not None else _app_credential_id(db, cred), secret=cred.secret))
    else:
        raise HTTPException(status_code=401, detail="authentication method %r is %s" % (method[:32], UNSUPPORTED))
    project = project_domain = None
    scope = body.auth.scope
    if isinstance(scope, str):
        if scope != "unscoped":
            raise _bad("scope must be an object or \"unscoped\"")
    elif scope is not None:
        if scope.domain is not None or scope.system is not None or scope.OS_TRUST__trust is not None:
            raise _bad("domain, system and trust scopes are " + NOT_SUPPORTED)
        if scope.project is not None:
            if scope.project.id is not None:
                project = scope.project.id
            elif scope.project.name is not None:
                project = scope.project.name
                project_domain = _domain_ref(scope.project.domain, "project")
            else:
                raise _bad("give the project's id, or its name and domain")
    if method == "application_credential" and project is not None:
        raise _bad("an application credential's tokens are scoped to its own project: give no scope")
    return TokenRequest(auth=methods, project=project, project_domain=project_domain)


def _app_credential_id(db, cred: AppCredentialMethod) -> str:
    """An application credential named by its user: its id, or one that matches nothing (same refusal)."""
    nothing = "0" * 32
    if cred.name is None or cred.user is None:
        raise _bad("give the application credential's id, or its name and user")
    user = None
    if cred.user.id is not None:
        user = db.get(User, cred.user.id)
    elif cred.user.name is not None:
        try:
            domain = identity.find_domain(db, _domain_ref(cred.user.domain, "user"))
        except HTTPException:
            return nothing
        user = db.scalar(select(User).where(User.name == cred.user.name, User.domain_id == domain.id))
    if user is None:
        return nothing
    found = db.scalar(select(ApplicationCredential.id).where(ApplicationCredential.user_id == user.id,
                                                             ApplicationCredential.name == cred.name))
    return found or nothing


def catalog(db, project_id: str | None) -> list[dict]:
    """The catalog a token of this project sees: each URL with its templates filled in (``$(project_id)s``);
    a token without a project gets none of the endpoints that need one."""
    out = []
    for service in db.scalars(select(Service).order_by(Service.type, Service.name)):
        endpoints = []
        for e in db.scalars(select(Endpoint).where(Endpoint.service_id == service.id).order_by(Endpoint.interface)):
            url = identity.endpoint_url(e.url, project_id)
            if url is not None:
                endpoints.append({"id": e.id, "interface": e.interface, "region": e.region, "region_id": e.region,
                                  "url": url})
        out.append({"id": service.id, "type": service.type, "name": service.name, "endpoints": endpoints})
    return out


def _role_refs(role: str | None) -> list[dict]:
    # A role brings the ones below it, as Keystone's implied roles: admin implies member implies reader.
    return [{"id": ROLE_IDS[r], "name": r} for r in implied_roles(role)]


def _domain_view(db, domain_id: str) -> dict:
    domain = db.get(Domain, domain_id)
    return {"id": domain_id, "name": domain.name if domain is not None else ""}


def audit_id(auth: Auth) -> str:
    return base64.urlsafe_b64encode(bytes.fromhex(auth.token_id)).decode().rstrip("=")


def token_body(db, auth: Auth, with_catalog: bool = True) -> dict:
    user = db.get(User, auth.user_id)
    body = {
        "methods": [auth.method],
        "user": {"id": user.id, "name": user.name, "domain": _domain_view(db, user.domain_id),
                 "password_expires_at": None},
        "audit_ids": [audit_id(auth)],
        "expires_at": _when(auth.expires_at),
        "issued_at": _when(auth.issued_at) if auth.issued_at else _when(auth.expires_at),
    }
    if auth.project_id is not None:
        project = db.get(Project, auth.project_id)
        body["project"] = {"id": project.id, "name": project.name, "domain": _domain_view(db, project.domain_id)}
        body["is_domain"] = False
        body["roles"] = _role_refs(auth.role)
        if with_catalog:
            body["catalog"] = catalog(db, auth.project_id)
    if auth.app_credential_id is not None:
        cred = db.get(ApplicationCredential, auth.app_credential_id)
        body["application_credential"] = {"id": cred.id, "name": cred.name, "restricted": not cred.unrestricted}
    return body


def _token_response(db, token: str, auth: Auth, status: int, with_catalog: bool) -> JSONResponse:
    return JSONResponse({"token": token_body(db, auth, with_catalog)}, status_code=status,
                        headers={"X-Subject-Token": token})


@router.post("/v3/auth/tokens", status_code=201)
@policy("public")
def issue(body: V3TokenRequest, request: Request, nocatalog: str | None = None, db=Depends(get_db)):
    settings = request.app.state.settings
    token, auth = issue_auth(db, settings, translate(db, body))
    return _token_response(db, token, auth, 201, nocatalog is None)


def may_validate(db, settings, caller: Auth, subject: Auth) -> bool:
    """Keystone's identity:validate_token: the token's own user, the cloud admin, or a service user (a role on
    the admin project, as keystonemiddleware's service user holds)."""
    if caller.is_admin or caller.user_id == subject.user_id:
        return True
    return caller.project_id is not None and caller.role is not None \
        and caller.project_id == identity.admin_project_id(db, settings)


def _subject(request: Request, db, caller: Auth) -> tuple[str, Auth]:
    token = request.headers.get("x-subject-token")
    if not token:
        raise _bad("give the token to check in X-Subject-Token")
    settings = request.app.state.settings
    try:
        subject = validate_token(db, settings, token)
    except TokenError:
        raise HTTPException(status_code=404, detail="Could not find token")
    if not may_validate(db, settings, caller, subject):
        raise HTTPException(status_code=403, detail="only the token's user, a service user or the cloud admin "
                            "may check a token")
    return token, subject


@router.get("/v3/auth/tokens")
@policy("authenticated")
def validate(request: Request, nocatalog: str | None = None, auth=Depends(current_auth), db=Depends(get_db)):
    token, subject = _subject(request, db, auth)
    return _token_response(db, token, subject, 200, nocatalog is None)


@router.head("/v3/auth/tokens")
@policy("authenticated")
def check(request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    token = _subject(request, db, auth)[0]
    return Response(status_code=200, headers={"X-Subject-Token": token})


@router.delete("/v3/auth/tokens", status_code=204)
@policy("authenticated")
def revoke_token(request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    subject = _subject(request, db, auth)[1]
    revoke(db, subject)
    db.commit()
    return Response(status_code=204)


@router.get("/v3/auth/catalog")
@policy("authenticated")
def auth_catalog(request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    return {"catalog": catalog(db, auth.project_id), "links": _links(request, "/v3/auth/catalog")}


@router.get("/v3/auth/projects")
@policy("authenticated")
def auth_projects(request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    """The projects the caller may scope to (what ``openstack project list --my-projects`` reads)."""
    return {"projects": [_project(request, p) for p in _projects_of(db, auth.user_id)],
            "links": _links(request, "/v3/auth/projects")}


# --- projects, users, domains, roles (the cloud admin's; /v1's rules) --------------

def _links(request: Request, path: str) -> dict:
    return {"self": _root(request) + path, "previous": None, "next": None}


def _project(request: Request, project: Project) -> dict:
    return {"id": project.id, "name": project.name, "domain_id": project.domain_id, "parent_id": project.domain_id,
            "description": project.description, "enabled": project.enabled, "is_domain": False, "tags": [],
            "options": {}, "links": {"self": _root(request) + "/v3/projects/" + project.id}}


def _user(request: Request, user: User) -> dict:
    return {"id": user.id, "name": user.name, "domain_id": user.domain_id, "enabled": user.enabled,
            "password_expires_at": None, "options": {}, "links": {"self": _root(request) + "/v3/users/" + user.id}}


def _domain(request: Request, domain: Domain) -> dict:
    return {"id": domain.id, "name": domain.name, "description": domain.description, "enabled": domain.enabled,
            "tags": [], "options": {}, "links": {"self": _root(request) + "/v3/domains/" + domain.id}}


def _role(request: Request, name: str) -> dict:
    return {"id": ROLE_IDS[name], "name": name, "domain_id": None, "description": "nimbus.cloud's %s role" % name,
            "options": {}, "links": {"self": _root(request) + "/v3/roles/" + ROLE_IDS[name]}}


def _projects_of(db, user_id: str) -> list[Project]:
    return list(db.scalars(select(Project).join(Assignment, Assignment.project_id == Project.id)
                           .where(Assignment.user_id == user_id).distinct().order_by(Project.name)))


def _match(items, name: str | None, key=lambda item: item.name):
    return [i for i in items if name is None or key(i) == name]


class ProjectBody(_Loose):
    name: str = Name
    domain_id: str | None = Field(default=None, max_length=64)
    description: str = Field(default="", max_length=4096)
    enabled: bool = True


class ProjectCreate(_Loose):
    project: ProjectBody


class ProjectUpdateBody(_Loose):
    description: str | None = Field(default=None, max_length=4096)
    enabled: bool | None = None


class ProjectUpdate(_Loose):
    project: ProjectUpdateBody


@router.get("/v3/projects")
@policy("authenticated")
def list_projects(request: Request, name: str | None = None, domain_id: str | None = None,
                  auth=Depends(current_auth), db=Depends(get_db)):
    projects = v1.list_projects(auth, db)
    projects = [p for p in _match(projects, name) if domain_id is None or p.domain_id == domain_id]
    return {"projects": [_project(request, p) for p in projects], "links": _links(request, "/v3/projects")}


@router.post("/v3/projects", status_code=201)
@policy("admin")
def create_project(body: ProjectCreate, request: Request, db=Depends(get_db)):
    p = body.project
    fields = dict(name=p.name, description=p.description, enabled=p.enabled)
    if p.domain_id:
        fields["domain"] = p.domain_id
    project = v1.create_project(ProjectIn(**fields), db)
    return JSONResponse({"project": _project(request, project)}, status_code=201)


@router.get("/v3/projects/{project_id}")
@policy("reader")
def show_project(project_id: str, request: Request, db=Depends(get_db)):
    return {"project": _project(request, v1.show_project(project_id, db))}


@router.patch("/v3/projects/{project_id}")
@policy("admin")
def update_project(project_id: str, body: ProjectUpdate, request: Request, db=Depends(get_db)):
    patch = ProjectPatch(description=body.project.description, enabled=body.project.enabled)
    return {"project": _project(request, v1.update_project(project_id, patch, db))}


@router.delete("/v3/projects/{project_id}", status_code=204)
@policy("admin")
def delete_project(project_id: str, db=Depends(get_db)):
    v1.delete_project(project_id, db)
    return Response(status_code=204)


class UserBody(_Loose):
    name: str = Name
    domain_id: str | None = Field(default=None, max_length=64)
    password: str = Field(min_length=8, max_length=256)
    enabled: bool = True
    default_project_id: str | None = Field(default=None, max_length=64)


class UserCreate(_Loose):
    user: UserBody


class UserUpdateBody(_Loose):
    password: str | None = Field(default=None, min_length=8, max_length=256)
    enabled: bool | None = None


class UserUpdate(_Loose):
    user: UserUpdateBody


class PasswordChangeBody(_Loose):
    password: str = Field(min_length=8, max_length=256)
    original_password: str = Field(max_length=256)


class PasswordChange(_Loose):
    user: PasswordChangeBody


@router.get("/v3/users")
@policy("admin")
def list_users(request: Request, name: str | None = None, domain_id: str | None = None, db=Depends(get_db)):
    users = [u for u in _match(v1.list_users(db), name) if domain_id is None or u.domain_id == domain_id]
    return {"users": [_user(request, u) for u in users], "links": _links(request, "/v3/users")}


@router.post("/v3/users", status_code=201)
@policy("admin")
def create_user(body: UserCreate, request: Request, db=Depends(get_db)):
    u = body.user
    fields = dict(name=u.name, password=u.password, enabled=u.enabled)
    if u.domain_id:
        fields["domain"] = u.domain_id
    user = v1.create_user(UserIn(**fields), db)
    return JSONResponse({"user": _user(request, user)}, status_code=201)


@router.get("/v3/users/{user_id}")
@policy("self")
def show_user(user_id: str, request: Request, db=Depends(get_db)):
    return {"user": _user(request, v1.show_user(user_id, db))}


@router.patch("/v3/users/{user_id}")
@policy("admin")
def update_user(user_id: str, body: UserUpdate, request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    patch = UserPatch(password=body.user.password, enabled=body.user.enabled)
    return {"user": _user(request, v1.update_user(user_id, patch, request, auth, db))}


@router.post("/v3/users/{user_id}/password", status_code=204)
@policy("self")
def change_password(user_id: str, body: PasswordChange, request: Request, auth=Depends(current_auth),
                    db=Depends(get_db)):
    if auth.user_id != user_id:
        raise HTTPException(status_code=403, detail="users change their own password here; the cloud admin "
                            "resets others' with PATCH /v3/users/{user_id}")
    v1.update_user(user_id, UserPatch(password=body.user.password, original_password=body.user.original_password),
                   request, auth, db)
    return Response(status_code=204)


@router.delete("/v3/users/{user_id}", status_code=204)
@policy("admin")
def delete_user(user_id: str, db=Depends(get_db)):
    v1.delete_user(user_id, db)
    return Response(status_code=204)


@router.get("/v3/users/{user_id}/projects")
@policy("self")
def user_projects(user_id: str, request: Request, db=Depends(get_db)):
    v1.show_user(user_id, db)
    return {"projects": [_project(request, p) for p in _projects_of(db, user_id)],
            "links": _links(request, "/v3/users/%s/projects" % user_id)}


@router.get("/v3/domains")
@policy("admin")
def list_domains(request: Request, name: str | None = None, db=Depends(get_db)):
    return {"domains": [_domain(request, d) for d in _match(v1.list_domains(db), name)],
            "links": _links(request, "/v3/domains")}


@router.get("/v3/domains/{domain_id}")
@policy("admin")
def show_domain(domain_id: str, request: Request, db=Depends(get_db)):
    return {"domain": _domain(request, v1.show_domain(domain_id, db))}


@router.get("/v3/roles")
@policy("authenticated")
def list_roles(request: Request, name: str | None = None):
    return {"roles": [_role(request, r) for r in ROLES if name is None or r == name],
            "links": _links(request, "/v3/roles")}


def role_name(ref: str) -> str:
    """A role by id or name; 404 otherwise."""
    for name, role_id in ROLE_IDS.items():
        if ref in (name, role_id):
            return name
    raise identity.not_found("role", ref)


@router.get("/v3/roles/{role_id}")
@policy("authenticated")
def show_role(role_id: str, request: Request):
    return {"role": _role(request, role_name(role_id))}


@router.put("/v3/projects/{project_id}/users/{user_id}/roles/{role_id}", status_code=204)
@policy("admin")
def grant(project_id: str, user_id: str, role_id: str, db=Depends(get_db)):
    v1.grant(project_id, user_id, role_name(role_id), db)
    return Response(status_code=204)


@router.head("/v3/projects/{project_id}/users/{user_id}/roles/{role_id}", status_code=204)
@policy("admin")
def check_grant(project_id: str, user_id: str, role_id: str, db=Depends(get_db)):
    if db.scalar(select(Assignment.id).where(Assignment.project_id == project_id, Assignment.user_id == user_id,
                                             Assignment.role == role_name(role_id))) is None:
        raise identity.not_found("role assignment", "%s/%s/%s" % (project_id, user_id, role_id))
    return Response(status_code=204)


@router.delete("/v3/projects/{project_id}/users/{user_id}/roles/{role_id}", status_code=204)
@policy("admin")
def revoke_grant(project_id: str, user_id: str, role_id: str, db=Depends(get_db)):
    v1.revoke_role(project_id, user_id, role_name(role_id), db)
    return Response(status_code=204)


@router.get("/v3/projects/{project_id}/users/{user_id}/roles")
@policy("admin")
def list_grants(project_id: str, user_id: str, request: Request, db=Depends(get_db)):
    roles = db.scalars(select(Assignment.role).where(Assignment.project_id == project_id,
                                                     Assignment.user_id == user_id))
    return {"roles": [_role(request, r) for r in sorted(set(roles), key=RANK.get, reverse=True)],
            "links": _links(request, "/v3/projects/%s/users/%s/roles" % (project_id, user_id))}


@router.get("/v3/role_assignments")
@policy("authenticated")
def role_assignments(request: Request, auth=Depends(current_auth), db=Depends(get_db),
                     include_names: str | None = None):
    """Filters as Keystone's (``user.id``, ``scope.project.id``, ``role.id``); a user who is not the cloud admin
    sees only their own assignments."""
    params = request.query_params
    query = select(Assignment).order_by(Assignment.project_id, Assignment.user_id, Assignment.role)
    user_id = params.get("user.id")
    if not auth.is_admin:
        if user_id not in (None, auth.user_id):
            raise HTTPException(status_code=403, detail="only the cloud admin may list others' role assignments")
        user_id = auth.user_id
    if user_id is not None:
        query = query.where(Assignment.user_id == user_id)
    if params.get("scope.project.id") is not None:
        query = query.where(Assignment.project_id == params["scope.project.id"])
    if params.get("role.id") is not None:
        query = query.where(Assignment.role == role_name(params["role.id"]))
    names = include_names is not None and include_names.lower() not in ("0", "false", "no")
    out = []
    for a in db.scalars(query):
        entry = {"role": {"id": ROLE_IDS[a.role]}, "user": {"id": a.user_id},
                 "scope": {"project": {"id": a.project_id}},
                 "links": {"assignment": _root(request) + "/v3/projects/%s/users/%s/roles/%s"
                           % (a.project_id, a.user_id, ROLE_IDS[a.role])}}
        if names:
            user, project = db.get(User, a.user_id), db.get(Project, a.project_id)
            entry["role"]["name"] = a.role
            entry["user"].update(name=user.name, domain=_domain_view(db, user.domain_id))
            entry["scope"]["project"].update(name=project.name, domain=_domain_view(db, project.domain_id))
        out.append(entry)
    return {"role_assignments": out, "links": _links(request, "/v3/role_assignments")}


# --- the catalog's records as registered (URL templates unfilled), read-only: roles register them ---

@router.get("/v3/services")
@policy("authenticated")
def list_services(request: Request, type: str | None = None, db=Depends(get_db)):  # noqa: A002 - Keystone's name
    services = db.scalars(select(Service).order_by(Service.type, Service.name))
    return {"services": [{"id": s.id, "type": s.type, "name": s.name, "description": s.description, "enabled": True,
                          "links": {"self": _root(request) + "/v3/services/" + s.id}}
                         for s in services if type is None or s.type == type],
            "links": _links(request, "/v3/services")}


@router.get("/v3/endpoints")
@policy("authenticated")
def list_endpoints(request: Request, interface: str | None = None, service_id: str | None = None,
                   db=Depends(get_db)):
    endpoints = db.scalars(select(Endpoint).order_by(Endpoint.service_id, Endpoint.interface))
    return {"endpoints": [{"id": e.id, "interface": e.interface, "region": e.region, "region_id": e.region,
                           "url": e.url, "service_id": e.service_id, "enabled": True,
                           "links": {"self": _root(request) + "/v3/endpoints/" + e.id}}
                          for e in endpoints if (interface is None or e.interface == interface)
                          and (service_id is None or e.service_id == service_id)],
            "links": _links(request, "/v3/endpoints")}
