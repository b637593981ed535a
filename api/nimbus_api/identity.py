"""Identity logic shared by the routes and the bootstrap command."""

from __future__ import annotations

from fastapi import HTTPException
from sqlalchemy import or_, select

from nimbus_api.models import RANK, Assignment, Domain, Project, User, now
from nimbus_api.security import hash_secret, verify_secret


def not_found(kind, ref):
    return HTTPException(status_code=404, detail="%s %s not found" % (kind, ref))


def get_or_404(db, model, ref: str, kind: str):
    found = db.get(model, ref)
    if found is None:
        raise not_found(kind, ref)
    return found


def find_domain(db, ref: str) -> Domain:
    domain = db.scalar(select(Domain).where(or_(Domain.id == ref, Domain.name == ref)))
    if domain is None:
        raise not_found("domain", ref)
    return domain


def find_project(db, ref: str, domain_id: str | None = None) -> Project:
    query = select(Project).where(or_(Project.id == ref, Project.name == ref))
    if domain_id is not None:
        query = query.where(or_(Project.id == ref, Project.domain_id == domain_id))
    found = list(db.scalars(query))
    if len(found) != 1:
        raise not_found("project", ref) if not found else HTTPException(
            status_code=409, detail="project name %s is ambiguous; use its id" % ref)
    return found[0]


def role_on(db, user_id: str, project_id: str) -> str | None:
    roles = db.scalars(select(Assignment.role).where(Assignment.user_id == user_id,
                                                     Assignment.project_id == project_id))
    return max(roles, key=RANK.get, default=None)


def is_cloud_admin(db, user_id: str, admin_project: str) -> bool:
    project = db.scalar(select(Project).where(Project.name == admin_project))
    return project is not None and role_on(db, user_id, project.id) == "admin"


def bootstrap(db, settings, password: str) -> tuple[User, bool]:
    """The default domain, the admin project and the admin user with the admin role there.

    Idempotent: returns the admin and whether anything changed. A password that already verifies is
    left alone, so a re-run neither rehashes it nor ends the admin's tokens.
    """
    changed = False
    domain = db.scalar(select(Domain).where(Domain.name == settings.default_domain))
    if domain is None:
        domain = Domain(name=settings.default_domain, description="The default domain")
        db.add(domain)
        db.flush()
        changed = True
    project = db.scalar(select(Project).where(Project.name == settings.admin_project,
                                              Project.domain_id == domain.id))
    if project is None:
        project = Project(name=settings.admin_project, domain_id=domain.id, description="Cloud administration")
        db.add(project)
        db.flush()
        changed = True
    user = db.scalar(select(User).where(User.name == settings.admin_user, User.domain_id == domain.id))
    if user is None:
        user = User(name=settings.admin_user, domain_id=domain.id, password_hash=hash_secret(password))
        db.add(user)
        db.flush()
        changed = True
    elif not verify_secret(user.password_hash, password):
        user.password_hash = hash_secret(password)
        user.tokens_valid_after = now()
        changed = True
    if role_on(db, user.id, project.id) != "admin":
        db.add(Assignment(user_id=user.id, project_id=project.id, role="admin"))
        changed = True
    db.commit()
    return user, changed
