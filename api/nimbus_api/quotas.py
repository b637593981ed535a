"""Per-project quotas: the cloud's defaults, a project's own limits, and the checks before a job is queued.

Limits are Nova's and Neutron's resources under one name each. A project's limit is its own row where the
cloud admin set one, else the default from the settings (``quota_defaults``), else the built-in default.
-1 means unlimited, as in OpenStack.
"""

from __future__ import annotations

from sqlalchemy import delete, select

from nimbus_api.models import Quota

# Nova's (instances, cores, ram in MiB, key_pairs per user, server groups), Neutron's and Cinder's names.
DEFAULTS = {
    "instances": 10, "cores": 20, "ram": 51200, "key_pairs": 100, "server_groups": 10,
    "server_group_members": 10, "metadata_items": 128,
    "networks": 100, "subnets": 100, "ports": 500, "routers": 10, "floating_ips": 50, "security_groups": 10,
    "security_group_rules": 100,
    # Cinder's: gigabytes counts volumes' and snapshots' sizes.
    "volumes": 10, "gigabytes": 1000, "snapshots": 10, "backups": 10, "backup_gigabytes": 1000,
}
UNLIMITED = -1
# The most a limit may be: far above any real cloud, and within a 32-bit column.
MAXIMUM = 2 ** 31 - 1


class QuotaError(ValueError):
    """A limit that names no known resource or is out of range."""


def check_limits(values: dict) -> None:
    for name, limit in values.items():
        if name not in DEFAULTS:
            raise QuotaError("%s is not a quota (known: %s)" % (name, ", ".join(sorted(DEFAULTS))))
        if isinstance(limit, bool) or not isinstance(limit, int) or not UNLIMITED <= limit <= MAXIMUM:
            raise QuotaError("the %s quota must be an integer from -1 (unlimited) to %d" % (name, MAXIMUM))


def defaults(settings) -> dict[str, int]:
    return dict(DEFAULTS, **settings.quota_defaults)


def limits(db, settings, project_id: str) -> dict[str, int]:
    """The project's limit for every resource."""
    own = {q.resource: q.hard_limit for q in db.scalars(select(Quota).where(Quota.project_id == project_id))}
    return dict(defaults(settings), **{k: v for k, v in own.items() if k in DEFAULTS})


def set_limits(db, project_id: str, values: dict[str, int]) -> None:
    """Record the project's own limits (checked first: nothing is written for a bad one)."""
    check_limits(values)
    rows = {q.resource: q for q in db.scalars(select(Quota).where(Quota.project_id == project_id,
                                                                  Quota.resource.in_(list(values))))}
    for name, limit in values.items():
        if name in rows:
            rows[name].hard_limit = limit
        else:
            db.add(Quota(project_id=project_id, resource=name, hard_limit=limit))


def reset(db, project_id: str, resources=None) -> None:
    """Back to the defaults (for these resources only, when given: one service's quota set)."""
    query = delete(Quota).where(Quota.project_id == project_id)
    if resources is not None:
        query = query.where(Quota.resource.in_(list(resources)))
    db.execute(query)


def allows(limit: int, in_use: int, wanted: int) -> bool:
    return limit == UNLIMITED or in_use + wanted <= limit
