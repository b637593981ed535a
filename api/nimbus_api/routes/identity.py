"""Domains, projects, users, role assignments and application credentials."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from nimbus_api import identity
from nimbus_api.deps import get_db
from nimbus_api.models import RANK, ROLES, ApplicationCredential, Assignment, Domain, Project, User, now
from nimbus_api.policy import PolicyRoute, current_auth, policy
from nimbus_api.schemas import (
    AppCredentialIn, AppCredentialOut, AssignmentOut, DomainIn, DomainOut, DomainPatch, ProjectIn, ProjectOut,
    ProjectPatch, Role, UserIn, UserOut, UserPatch,
)
from nimbus_api.security import hash_secret, new_secret

router = APIRouter(prefix="/v1", tags=["identity"], route_class=PolicyRoute)


def _commit(db, what):
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        raise HTTPException(status_code=409, detail="%s already exists" % what)


def _patch(obj, body):
    for key, value in body.model_dump(exclude_none=True).items():
        setattr(obj, key, value)


# --- domains ------------------------------------------------------------------

@router.get("/domains", response_model=list[DomainOut])
@policy("admin")
def list_domains(db=Depends(get_db)):
    return list(db.scalars(select(Domain).order_by(Domain.name)))


@router.post("/domains", status_code=201, response_model=DomainOut)
@policy("admin")
def create_domain(body: DomainIn, db=Depends(get_db)):
    domain = Domain(**body.model_dump())
    db.add(domain)
    _commit(db, "domain %s" % body.name)
    return domain


@router.get("/domains/{domain_id}", response_model=DomainOut)
@policy("admin")
def show_domain(domain_id: str, db=Depends(get_db)):
    return identity.find_domain(db, domain_id)


@router.patch("/domains/{domain_id}", response_model=DomainOut)
@policy("admin")
def update_domain(domain_id: str, body: DomainPatch, db=Depends(get_db)):
    domain = identity.find_domain(db, domain_id)
    _patch(domain, body)
    db.commit()
    return domain


@router.delete("/domains/{domain_id}", status_code=204)
@policy("admin")
def delete_domain(domain_id: str, db=Depends(get_db)):
    domain = identity.find_domain(db, domain_id)
    if db.scalar(select(Project.id).where(Project.domain_id == domain.id).limit(1)) or \
            db.scalar(select(User.id).where(User.domain_id == domain.id).limit(1)):
        raise HTTPException(status_code=409, detail="domain %s still has projects or users" % domain.name)
    db.delete(domain)
    db.commit()


# --- projects -----------------------------------------------------------------

@router.get("/projects", response_model=list[ProjectOut])
@policy("authenticated")
def list_projects(auth=Depends(current_auth), db=Depends(get_db)):
    """The cloud admin sees every project; anyone else the projects they hold a role on."""
    query = select(Project).order_by(Project.name)
    if not auth.is_admin:
        query = query.join(Assignment, Assignment.project_id == Project.id).where(
            Assignment.user_id == auth.user_id).distinct()
    return list(db.scalars(query))


@router.post("/projects", status_code=201, response_model=ProjectOut)
@policy("admin")
def create_project(body: ProjectIn, db=Depends(get_db)):
    domain = identity.find_domain(db, body.domain)
    project = Project(name=body.name, domain_id=domain.id, description=body.description, enabled=body.enabled)
    db.add(project)
    _commit(db, "project %s" % body.name)
    return project


@router.get("/projects/{project_id}", response_model=ProjectOut)
@policy("reader")
def show_project(project_id: str, db=Depends(get_db)):
    return identity.get_or_404(db, Project, project_id, "project")


@router.patch("/projects/{project_id}", response_model=ProjectOut)
@policy("admin")
def update_project(project_id: str, body: ProjectPatch, db=Depends(get_db)):
    project = show_project(project_id, db)
    _patch(project, body)
    db.commit()
    return project


@router.delete("/projects/{project_id}", status_code=204)
@policy("admin")
def delete_project(project_id: str, db=Depends(get_db)):
    db.delete(show_project(project_id, db))
    db.commit()


# --- users --------------------------------------------------------------------

@router.get("/users", response_model=list[UserOut])
@policy("admin")
def list_users(db=Depends(get_db)):
    return list(db.scalars(select(User).order_by(User.name)))


@router.post("/users", status_code=201, response_model=UserOut)
@policy("admin")
def create_user(body: UserIn, db=Depends(get_db)):
    domain = identity.find_domain(db, body.domain)
    user = User(name=body.name, domain_id=domain.id, password_hash=hash_secret(body.password), enabled=body.enabled)
    db.add(user)
    _commit(db, "user %s" % body.name)
    return user


@router.get("/users/{user_id}", response_model=UserOut)
@policy("self")
def show_user(user_id: str, db=Depends(get_db)):
    return identity.get_or_404(db, User, user_id, "user")


@router.patch("/users/{user_id}", response_model=UserOut)
@policy("self")
def update_user(user_id: str, body: UserPatch, request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    """Users change their own password by giving the original one too (as Keystone's
    ``POST /v3/users/{id}/password``); the cloud admin resets another user's without it, which also unlocks
    the account, as does enabling it."""
    user = show_user(user_id, db)
    if body.enabled is not None and not auth.is_admin:
        raise HTTPException(status_code=403, detail="only the cloud admin may enable or disable users")
    if body.password is not None:
        if auth.restricted:
            raise HTTPException(status_code=403, detail="a token from a restricted application credential "
                                "cannot change passwords")
        if auth.user_id == user.id:
            if body.original_password is None:
                raise HTTPException(status_code=400, detail="give original_password to change your password")
            if not identity.check_password(db, request.app.state.settings, user, body.original_password):
                raise HTTPException(status_code=401, detail="invalid credentials",
                                    headers={"WWW-Authenticate": "Bearer"})
        user.password_hash = hash_secret(body.password)
        # A new password ends every session the old one opened.
        user.tokens_valid_after = now()
        identity.unlock(user)
    if body.enabled is not None:
        user.enabled = body.enabled
        if body.enabled:
            identity.unlock(user)
    db.commit()
    return user


@router.delete("/users/{user_id}", status_code=204)
@policy("admin")
def delete_user(user_id: str, db=Depends(get_db)):
    db.delete(show_user(user_id, db))
    db.commit()


@router.post("/users/{user_id}/revoke-tokens", status_code=204)
@policy("self")
def revoke_user_tokens(user_id: str, db=Depends(get_db)):
    show_user(user_id, db).tokens_valid_after = now()
    db.commit()


# --- roles and assignments ------------------------------------------------------

@router.get("/roles", response_model=list[str])
@policy("authenticated")
def list_roles():
    return list(ROLES)


@router.get("/projects/{project_id}/assignments", response_model=list[AssignmentOut])
@policy("reader")
def list_assignments(project_id: str, db=Depends(get_db)):
    return list(db.scalars(select(Assignment).where(Assignment.project_id == project_id)
                           .order_by(Assignment.user_id, Assignment.role)))


@router.put("/projects/{project_id}/users/{user_id}/roles/{role}", status_code=204)
@policy("admin")
def grant(project_id: str, user_id: str, role: Role, db=Depends(get_db)):
    show_project(project_id, db)
    show_user(user_id, db)
    if identity.role_on(db, user_id, project_id) is None or not db.scalar(
            select(Assignment).where(Assignment.user_id == user_id, Assignment.project_id == project_id,
                                     Assignment.role == role)):
        db.add(Assignment(user_id=user_id, project_id=project_id, role=role))
        db.commit()


@router.delete("/projects/{project_id}/users/{user_id}/roles/{role}", status_code=204)
@policy("admin")
def revoke_role(project_id: str, user_id: str, role: Role, db=Depends(get_db)):
    assignment = db.scalar(select(Assignment).where(Assignment.user_id == user_id, Assignment.project_id == project_id,
                                                    Assignment.role == role))
    if assignment is None:
        raise identity.not_found("assignment", "%s/%s/%s" % (project_id, user_id, role))
    db.delete(assignment)
    # Tokens carry the role they were issued with: take it back now, not at expiry.
    show_user(user_id, db).tokens_valid_after = now()
    db.commit()


# --- application credentials ----------------------------------------------------

@router.get("/users/{user_id}/application_credentials", response_model=list[AppCredentialOut])
@policy("self")
def list_app_credentials(user_id: str, db=Depends(get_db)):
    return list(db.scalars(select(ApplicationCredential).where(ApplicationCredential.user_id == user_id)
                           .order_by(ApplicationCredential.name)))


@router.post("/users/{user_id}/application_credentials", status_code=201, response_model=AppCredentialOut)
@policy("self")
def create_app_credential(user_id: str, body: AppCredentialIn, auth=Depends(current_auth), db=Depends(get_db)):
    if auth.user_id != user_id:
        raise HTTPException(status_code=403, detail="application credentials are made by their own user")
    _unrestricted(auth)
    held = identity.role_on(db, user_id, body.project_id)
    if held is None:
        raise HTTPException(status_code=403, detail="no role on project %s" % body.project_id)
    role = body.role or held
    if RANK[role] > RANK[held]:
        raise HTTPException(status_code=403, detail="role %s is above your role %s on the project" % (role, held))
    secret = new_secret()
    cred = ApplicationCredential(name=body.name, user_id=user_id, project_id=body.project_id,
                                 secret_hash=hash_secret(secret), expires_at=body.expires_at, role=role,
                                 unrestricted=body.unrestricted)
    db.add(cred)
    _commit(db, "application credential %s" % body.name)
    return AppCredentialOut(id=cred.id, name=cred.name, user_id=user_id, project_id=cred.project_id,
                            expires_at=cred.expires_at, role=cred.role, unrestricted=cred.unrestricted,
                            secret=secret)


def _unrestricted(auth):
    if auth.restricted:
        raise HTTPException(status_code=403, detail="a token from a restricted application credential cannot "
                            "make or delete application credentials")


@router.delete("/users/{user_id}/application_credentials/{credential_id}", status_code=204)
@policy("self")
def delete_app_credential(user_id: str, credential_id: str, auth=Depends(current_auth), db=Depends(get_db)):
    _unrestricted(auth)
    cred = db.get(ApplicationCredential, credential_id)
    if cred is None or cred.user_id != user_id:
        raise identity.not_found("application credential", credential_id)
    db.delete(cred)
    db.commit()
