"""Identity logic shared by the routes and the bootstrap command."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlsplit

from fastapi import HTTPException
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
    service, changed = _service(db, name, type_, description, replaces)
    changed |= set_endpoint(db, service.id, interface, url, region)
    db.commit()
    return changed


def register_service(db, name: str, type_: str, description: str | None, urls: dict[str, str],
                     region: str = "RegionOne") -> tuple[Service, bool]:
    """A service with exactly these endpoints (interface -> URL) in the region, as a role declares its own
    (``nimbus-api service``): made, or moved to these URLs, and its endpoints there for other interfaces
    removed; other regions' are left alone. A description of None leaves the registered one as it is.

    Idempotent: returns the service and whether anything changed. A name registered with another type is
    refused (ValueError) before anything changes: a role's typo must not retype another service, such as
    the identity service every client starts from. The caller commits.
    """
    registered = db.scalar(select(Service).where(Service.name == name))
    if registered is not None and registered.type != type_:
        raise ValueError("service %s is registered with type %s, not %s" % (name, registered.type, type_))
    service, changed = _service(db, name, type_, description)
    for interface, url in urls.items():
        changed |= set_endpoint(db, service.id, interface, url, region)
    for stale in db.scalars(select(Endpoint).where(Endpoint.service_id == service.id, Endpoint.region == region,
                                                   Endpoint.interface.not_in(urls))):
        db.delete(stale)
        changed = True
    return service, changed


def _service(db, name: str, type_: str, description: str | None,
             replaces: str | None = None) -> tuple[Service, bool]:
    """The service of that name (or the record it ``replaces``, renamed), made or given this type and
    description (None keeps the one it has); whether it changed."""
    changed = False
    service = db.scalar(select(Service).where(Service.name == name))
    if service is None and replaces is not None:
        service = db.scalar(select(Service).where(Service.name == replaces, Service.type == type_))
        if service is not None:
            service.name = name
            changed = True
    if service is None:
        service = Service(name=name, type=type_, description=description or "")
        db.add(service)
        db.flush()
        return service, True
    wanted = (type_, service.description if description is None else description)
    if (service.type, service.description) != wanted:
        service.type, service.description = wanted
        changed = True
    return service, changed


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


# Keystone's endpoint URL templates: where a URL says $(project_id)s, or in the older spellings $(tenant_id)s,
# %(project_id)s and %(tenant_id)s, a token's catalog shows the token's project id (Swift's AUTH_<project id>
# accounts). Nothing else is ever filled in, so a template cannot reach a setting or a secret.
URL_TEMPLATE = re.compile(r"[$%]\((\w*)\)s")
URL_TEMPLATE_NAMES = ("project_id", "tenant_id")
# What a URL cannot hold unencoded (RFC 3986); it also keeps Jinja's braces and shell quoting out of catalogs.
URL_UNSAFE = re.compile(r"[\s\x00-\x1f\x7f{}<>\"\\^`|]")


def check_endpoint_url(url: str) -> str:
    """The URL, if an endpoint may be registered at it: http(s) with a host, with no template but the project
    id's (Keystone's check_endpoint_url); ValueError otherwise."""
    if URL_UNSAFE.search(url):
        raise ValueError("an endpoint URL holds no white space, control characters or any of {}<>\"\\^`|")
    try:
        parts = urlsplit(url)
        web = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # a malformed [IPv6] host
        web = False
    if not web:
        raise ValueError("an endpoint URL is http:// or https:// with a host")
    unknown = sorted(set(URL_TEMPLATE.findall(url)) - set(URL_TEMPLATE_NAMES))
    if unknown:
        raise ValueError("an endpoint URL's templates fill in project_id or tenant_id only, not %s"
                         % ", ".join(unknown))
    if re.search(r"[$%]\(", URL_TEMPLATE.sub("", url)):
        raise ValueError("an endpoint URL's template is written $(project_id)s")
    return url


def endpoint_url(url: str, project_id: str | None) -> str | None:
    """An endpoint's URL as a token's catalog shows it: its templates filled in with the token's project. None
    (the endpoint is left out, as Keystone leaves it) when it needs a project and the token has none, or holds a
    template never allowed (a row written past the API)."""
    names = set(URL_TEMPLATE.findall(url))
    if not names:
        return url
    if project_id is None or not names <= set(URL_TEMPLATE_NAMES):
        return None
    return URL_TEMPLATE.sub(lambda _: project_id, url)


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
    user, made = user_with_password(db, domain.id, settings.admin_user, password)
    changed |= made
    if locked(user):
        # The operator's way back in when the admin account is locked out.
        unlock(user)
        changed = True
    changed |= hold_role(db, user.id, project.id, "admin")
    db.commit()
    return user, changed


# What a service user holds on the admin project: a role there is what may_validate (keystone.py) asks of
# keystonemiddleware's user. reader, the least there is: admin would make it the cloud admin, and member would
# let whoever holds a proxy's settings launch jobs and change resources in the admin project.
SERVICE_ROLE = "reader"


def service_user(db, settings, name: str, password: str) -> tuple[User, bool]:
    """A service's own user (the one its keystonemiddleware validates its callers' tokens with): in the default
    domain, with the reader role on the admin project and never the admin role.

    Idempotent: returns the user and whether anything changed; the password is checked against the stored
    hash, so the same one changes nothing and another is set (ending the user's tokens). Refused (ValueError)
    before anything changes: the cloud admin's name, and an existing user with any other role (a cloud admin,
    a project's member), whose account this must not take over. The caller commits.
    """
    project_id = admin_project_id(db, settings)
    if project_id is None:
        raise ValueError("the admin project does not exist: run nimbus-api bootstrap first")
    if name == settings.admin_user:
        raise ValueError("%s is the cloud admin: a service needs a user of its own" % name)
    domain_id = db.scalar(select(Project.domain_id).where(Project.id == project_id))
    existing = db.scalar(select(User).where(User.name == name, User.domain_id == domain_id))
    if existing is not None and db.scalar(select(Assignment.id).where(
            Assignment.user_id == existing.id,
            (Assignment.project_id != project_id) | (Assignment.role == "admin"))) is not None:
        raise ValueError("user %s holds roles a service user does not (a role on another project, or admin): "
                         "give the service a user of its own" % name)
    user, changed = user_with_password(db, domain_id, name, password)
    changed |= hold_role(db, user.id, project_id, SERVICE_ROLE)
    return user, changed


def user_with_password(db, domain_id: str, name: str, password: str) -> tuple[User, bool]:
    """The user of that name in the domain, made with this password, or given it if it has another (which ends
    the user's tokens and lifts a lockout); whether it changed. A password that already verifies is left
    alone, so a re-run neither rehashes it nor ends the user's tokens."""
    user = db.scalar(select(User).where(User.name == name, User.domain_id == domain_id))
    if user is None:
        user = User(name=name, domain_id=domain_id, password_hash=hash_secret(password))
        db.add(user)
        db.flush()
        return user, True
    if verify_secret(user.password_hash, password):
        return user, False
    user.password_hash = hash_secret(password)
    user.tokens_valid_after = now()
    unlock(user)
    return user, True


def hold_role(db, user_id: str, project_id: str, role: str) -> bool:
    """Give the user the role on the project unless it holds that one or a higher one there; whether it
    changed."""
    if RANK.get(role_on(db, user_id, project_id), 0) >= RANK[role]:
        return False
    db.add(Assignment(user_id=user_id, project_id=project_id, role=role))
    return True
