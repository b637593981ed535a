"""Identity logic shared by the routes and the bootstrap command."""

from __future__ import annotations

from fastapi import HTTPException
from datetime import timedelta

from sqlalchemy import select, update

from nimbus_api.models import RANK, Assignment, Domain, Endpoint, Project, Service, User, now
from nimbus_api.security import aware, hash_secret, verify_nothing, verify_secret


def not_found(kind, ref):
    return HTTPException(status_code=404, detail="%s %s not found" % (kind, ref))


def get_or_404(db, model, ref: str, kind: str):
    found = db.get(model, ref)
    if found is None:
        raise not_found(kind, ref)
    return found


def find_domain(db, ref: str) -> Domain:
    domain = db.get(Domain, ref) or db.scalar(select(Domain).where(Domain.name == ref))
    if domain is None:
        raise not_found("domain", ref)
    return domain


def find_project(db, ref: str, domain_id: str | None = None) -> Project:
    """A project by id, or by name within ``domain_id``: names are unique only within a domain, so a name
    without a domain finds nothing."""
    project = db.get(Project, ref)
    if project is None and domain_id is not None:
        project = db.scalar(select(Project).where(Project.name == ref, Project.domain_id == domain_id))
    if project is None:
        raise not_found("project", ref)
    return project


def role_on(db, user_id: str, project_id: str) -> str | None:
    roles = db.scalars(select(Assignment.role).where(Assignment.user_id == user_id,
                                                     Assignment.project_id == project_id))
    return max(roles, key=RANK.get, default=None)


def admin_project_id(db, settings) -> str | None:
    """The admin project: the one of that name in the default domain, never a namesake elsewhere."""
    return db.scalar(select(Project.id).join(Domain, Domain.id == Project.domain_id).where(
        Project.name == settings.admin_project, Domain.name == settings.default_domain))


def is_cloud_admin(db, user_id: str, settings) -> bool:
    project_id = admin_project_id(db, settings)
    return project_id is not None and role_on(db, user_id, project_id) == "admin"


def locked(user: User) -> bool:
    return user.locked_until is not None and aware(user.locked_until) > now()


def unlock(user: User) -> None:
    user.failed_logins, user.locked_until = 0, None


def check_password(db, settings, user: User | None, password: str) -> bool:
    """A password as a login checks it (Keystone's lockout): the same Argon2 work whether the user exists,
    is locked or not; a wrong one counts, and ``lockout_failure_attempts`` of them in a row lock the account
    for ``lockout_duration`` seconds, during which even the right password is refused. A failure is committed
    at once (the caller's refusal rolls back anything else); a success resets the count for the caller to
    commit."""
    if user is None:
        return verify_nothing(password)
    good = verify_secret(user.password_hash, password)
    if locked(user):
        return False
    if good:
        if user.failed_logins or user.locked_until is not None:
            unlock(user)
        return True
    # Counted in SQL, so that parallel guesses cannot overwrite each other's count.
    db.execute(update(User).where(User.id == user.id).values(failed_logins=User.failed_logins + 1))
    db.refresh(user)
    if settings.lockout_failure_attempts and user.failed_logins >= settings.lockout_failure_attempts:
        user.locked_until = now() + timedelta(seconds=settings.lockout_duration)
        user.failed_logins = 0
    db.commit()
    return False


def register_endpoint(db, name: str, type_: str, description: str, interface: str, url: str,
                      region: str = "RegionOne", replaces: str | None = None) -> bool:
    """Register a service and its endpoint for an interface and region, as keystone-manage bootstrap does.

    Idempotent: returns whether anything changed; a moved URL updates the endpoint in place. ``replaces``
    names an older record of the same service, renamed rather than left beside the new one.
    """
    changed = False
    service = db.scalar(select(Service).where(Service.name == name))
    if service is None and replaces is not None:
        service = db.scalar(select(Service).where(Service.name == replaces, Service.type == type_))
        if service is not None:
            service.name = name
            changed = True
    if service is None:
        service = Service(name=name, type=type_, description=description)
        db.add(service)
        db.flush()
        changed = True
    elif (service.type, service.description) != (type_, description):
        service.type, service.description = type_, description
        changed = True
    changed |= set_endpoint(db, service.id, interface, url, region)
    db.commit()
    return changed


def set_endpoint(db, service_id: str, interface: str, url: str, region: str = "RegionOne") -> bool:
    """Add the service's endpoint for an interface and region, or move it to ``url``; whether it changed.
    The caller commits."""
    endpoint = db.scalar(select(Endpoint).where(Endpoint.service_id == service_id, Endpoint.interface == interface,
                                                Endpoint.region == region))
    if endpoint is None:
        db.add(Endpoint(service_id=service_id, interface=interface, url=url, region=region))
        return True
    if endpoint.url == url:
        return False
    endpoint.url = url
    return True


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
        unlock(user)
        changed = True
    if locked(user):
        # The operator's way back in when the admin account is locked out.
        unlock(user)
        changed = True
    if role_on(db, user.id, project.id) != "admin":
        db.add(Assignment(user_id=user.id, project_id=project.id, role="admin"))
        changed = True
    db.commit()
    return user, changed
