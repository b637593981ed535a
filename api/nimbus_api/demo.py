"""The all-in-one's self-service seed: a demo project with a member user, and the flavors a newcomer boots.

What ``nimbus-api demo`` makes, idempotently (a re-run changes nothing; a changed password is set again).
"""

from __future__ import annotations

from sqlalchemy import select

from nimbus_api.models import Assignment, Domain, Flavor, Project, User
from nimbus_api.security import hash_secret, verify_secret

# Small enough for software-emulated guests (TCG); disk_gb 1 is the tiny test image's overlay.
FLAVORS = (
    {"id": "1", "name": "m1.nano", "vcpus": 1, "ram_mb": 256, "disk_gb": 1},
    {"id": "2", "name": "m1.micro", "vcpus": 1, "ram_mb": 384, "disk_gb": 1},
    {"id": "3", "name": "m1.small", "vcpus": 1, "ram_mb": 1024, "disk_gb": 5},
)


def seed(db, settings, project_name: str, user_name: str, password: str) -> dict:
    """The demo project, its member user and the flavors; what was made or changed."""
    changed = []
    domain = db.scalar(select(Domain).where(Domain.name == settings.default_domain))
    if domain is None:
        raise ValueError("the default domain does not exist: run nimbus-api bootstrap first")
    project = db.scalar(select(Project).where(Project.domain_id == domain.id, Project.name == project_name))
    if project is None:
        project = Project(name=project_name, domain_id=domain.id, description="Self-service demo project")
        db.add(project)
        db.flush()
        changed.append("project " + project_name)
    user = db.scalar(select(User).where(User.domain_id == domain.id, User.name == user_name))
    if user is None:
        user = User(name=user_name, domain_id=domain.id, password_hash=hash_secret(password))
        db.add(user)
        db.flush()
        changed.append("user " + user_name)
    elif not verify_secret(user.password_hash, password):
        user.password_hash = hash_secret(password)
        changed.append("password of " + user_name)
    if db.scalar(select(Assignment).where(Assignment.user_id == user.id, Assignment.project_id == project.id,
                                          Assignment.role == "member")) is None:
        db.add(Assignment(user_id=user.id, project_id=project.id, role="member"))
        changed.append("member role")
    for spec in FLAVORS:
        if db.scalar(select(Flavor).where(Flavor.name == spec["name"])) is None and db.get(Flavor, spec["id"]) is None:
            db.add(Flavor(**spec))
            changed.append("flavor " + spec["name"])
    db.commit()
    return {"changed": bool(changed), "made": changed, "project_id": project.id, "user_id": user.id}
