"""The service's records: identity (domains, projects, users, roles, assignments, application credentials),
token signing keys and revocations, and the service catalog.

Resources (instances, networks, ...) are not here: the hosts hold them, the collection's _info modules read
them.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

ROLES = ("admin", "member", "reader")
# Each role includes the ones below it.
RANK = {"reader": 1, "member": 2, "admin": 3}


# MariaDB's DATETIME keeps whole seconds unless told otherwise, and moments here are compared to the
# microsecond: a job's end with when a resource view's read began (ResourceViews.read), a token's
# issue with its user's tokens_valid_after. SQLite keeps the fractions as they are.
Moment = DateTime(timezone=True).with_variant(mysql.DATETIME(timezone=True, fsp=6), "mysql", "mariadb")


def new_id() -> str:
    return uuid.uuid4().hex


def now() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class Domain(Base):
    __tablename__ = "domains"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class Project(Base):
    __tablename__ = "projects"
    __table_args__ = (UniqueConstraint("domain_id", "name"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(64))
    domain_id: Mapped[str] = mapped_column(ForeignKey("domains.id"))
    description: Mapped[str] = mapped_column(Text, default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    domain: Mapped[Domain] = relationship()


class User(Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("domain_id", "name"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(64))
    domain_id: Mapped[str] = mapped_column(ForeignKey("domains.id"))
    password_hash: Mapped[str] = mapped_column(String(255))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Tokens issued before this moment are refused (a password change or "revoke all").
    tokens_valid_after: Mapped[datetime] = mapped_column(Moment, default=now)
    # Keystone's lockout: consecutive failed password logins, and until when the account refuses logins.
    failed_logins: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column(Moment, nullable=True)
    domain: Mapped[Domain] = relationship()


class Assignment(Base):
    """A user holds a role on a project."""

    __tablename__ = "assignments"
    __table_args__ = (UniqueConstraint("user_id", "project_id", "role"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))


class ApplicationCredential(Base):
    """A secret a user made for automation, bound to one project and at most the user's role there."""

    __tablename__ = "application_credentials"
    __table_args__ = (UniqueConstraint("user_id", "name"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    secret_hash: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[datetime | None] = mapped_column(Moment, nullable=True)
    created_at: Mapped[datetime] = mapped_column(Moment, default=now)
    # The highest role its tokens carry (never above the user's own role at the time of use).
    role: Mapped[str] = mapped_column(String(16), default="member", server_default="member")
    # Keystone's "unrestricted": only then may its tokens make application credentials or change passwords.
    unrestricted: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")


class SigningKey(Base):
    """Token signing keys: the newest active one signs; every active one validates."""

    __tablename__ = "signing_keys"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    # The HMAC secret, sealed under the service's secret key (sealing.py): the database alone forges nothing.
    sealed: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Moment, default=now)
    retired_at: Mapped[datetime | None] = mapped_column(Moment, nullable=True)


class RevokedToken(Base):
    __tablename__ = "revoked_tokens"
    jti: Mapped[str] = mapped_column(String(32), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(Moment)


class Service(Base):
    __tablename__ = "services"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    type: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, default="")


class Endpoint(Base):
    __tablename__ = "endpoints"
    __table_args__ = (UniqueConstraint("service_id", "interface", "region"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    service_id: Mapped[str] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"))
    interface: Mapped[str] = mapped_column(String(16))
    region: Mapped[str] = mapped_column(String(64), default="RegionOne")
    url: Mapped[str] = mapped_column(String(255))


# --- compute and quotas (what Nova keeps in its API database) ------------------------

class Flavor(Base):
    """A size of server the cloud admin offers: what the scheduler places and the instance module boots."""

    __tablename__ = "flavors"
    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    vcpus: Mapped[int] = mapped_column(Integer)
    ram_mb: Mapped[int] = mapped_column(Integer)
    disk_gb: Mapped[int] = mapped_column(Integer)
    ephemeral_gb: Mapped[int] = mapped_column(Integer, default=0)
    swap_mb: Mapped[int] = mapped_column(Integer, default=0)
    is_public: Mapped[bool] = mapped_column(Boolean, default=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(Moment, default=now)


class FlavorAccess(Base):
    """A project that may use a private flavor."""

    __tablename__ = "flavor_access"
    __table_args__ = (UniqueConstraint("flavor_id", "project_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    flavor_id: Mapped[str] = mapped_column(ForeignKey("flavors.id", ondelete="CASCADE"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))


class Keypair(Base):
    """A user's SSH public key, by name (Nova's keypairs belong to users, not projects)."""

    __tablename__ = "keypairs"
    __table_args__ = (UniqueConstraint("user_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    public_key: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(Moment, default=now)


class Quota(Base):
    """A project's limit for one resource, where it differs from the cloud's default."""

    __tablename__ = "quotas"
    __table_args__ = (UniqueConstraint("project_id", "resource"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    resource: Mapped[str] = mapped_column(String(32))
    hard_limit: Mapped[int] = mapped_column(Integer)


class Operation(Base):
    """A change an OpenStack API request asked for, carried out by a job of a runbook's template.

    Until the hosts show the result (the resource views), this is what the API answers with: a server being
    built is ``BUILD``, one whose job failed is ``ERROR`` with the job's fault, until the user deletes it.
    The id the resource gets is chosen here, so the answer to the request can name it at once.
    """

    __tablename__ = "operations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    resource: Mapped[str] = mapped_column(String(16))  # server, ...
    resource_id: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(16))  # create, delete, start, stop, reboot
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str] = mapped_column(String(32))
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True)
    # What the API shows of the resource before the hosts do (JSON): name, flavor, image, ...
    shown: Mapped[str] = mapped_column(Text, default="{}")
    # The failed create of a resource the user deleted since: no longer shown, no longer counted.
    dismissed: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    created_at: Mapped[datetime] = mapped_column(Moment, default=now)


class Record(Base):
    """What an OpenStack API keeps of a resource beyond what its hosts hold: its display name and description
    (hosts know API-made resources by their id, which is their name there), and attributes only the API uses."""

    __tablename__ = "records"
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # network, subnet, ...
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    attrs: Mapped[str] = mapped_column(Text, default="{}")  # JSON
    created_at: Mapped[datetime] = mapped_column(Moment, default=now)
    updated_at: Mapped[datetime] = mapped_column(Moment, default=now)


class Segment(Base):
    """A VXLAN VNI (or VLAN id) the API gave a tenant network: unique per type, so two networks never share one."""

    __tablename__ = "segments"
    __table_args__ = (UniqueConstraint("type", "segmentation_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    type: Mapped[str] = mapped_column(String(16))
    segmentation_id: Mapped[int] = mapped_column(Integer)
    network_id: Mapped[str] = mapped_column(String(64), unique=True)


# --- jobs ---------------------------------------------------------------------

JOB_STATES = ("pending", "running", "successful", "failed", "canceled", "error")
FINISHED = ("successful", "failed", "canceled", "error")


class CredentialType(Base):
    """What a kind of credential holds and how a job gets it (AWX's credential types), defined by the cloud admin.

    ``fields``: JSON list of {"id", "label", "secret", "required"}. ``injectors``: JSON {"env": {VAR: field},
    "extra_vars": {name: field}}; names are checked against an allowlist when the type is saved (credentials.py).
    """

    __tablename__ = "credential_types"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    fields: Mapped[str] = mapped_column(Text, default="[]")
    injectors: Mapped[str] = mapped_column(Text, default="{}")
    created_at: Mapped[datetime] = mapped_column(Moment, default=now)


class Credential(Base):
    """A project's values for the fields of a credential type; stored encrypted, never shown again."""

    __tablename__ = "credentials"
    __table_args__ = (UniqueConstraint("project_id", "name"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(64))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    credential_type_id: Mapped[str] = mapped_column(ForeignKey("credential_types.id"))
    # Fernet token of the JSON {field id: value}.
    sealed: Mapped[str] = mapped_column(Text)
    variables: Mapped[str] = mapped_column(Text)  # the field ids only, comma-separated, for listing
    created_at: Mapped[datetime] = mapped_column(Moment, default=now)


class JobTemplate(Base):
    __tablename__ = "job_templates"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    playbook: Mapped[str] = mapped_column(String(255))
    inventory: Mapped[str] = mapped_column(Text)  # YAML
    extra_vars_schema: Mapped[str] = mapped_column(Text, default="{}")  # JSON Schema, as JSON
    allowed_projects: Mapped[str] = mapped_column(Text, default="")  # ids, comma-separated; empty: every project
    launch_role: Mapped[str] = mapped_column(String(16), default="member")
    timeout: Mapped[int] = mapped_column(Integer, default=3600)
    # Variables the admin saved on the template (JSON): the only job variables Ansible may template.
    extra_vars: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")
    # Credentials every launch gets, by name: each resolves to the launching project's credential of
    # that name, so one template serves many projects without sharing their secrets.
    credential_names: Mapped[str] = mapped_column(Text, default="", server_default="")


class Job(Base):
    __tablename__ = "jobs"
    # A key means "the same launch" only for the same user, project and template.
    __table_args__ = (UniqueConstraint("launched_by", "project_id", "template_id", "idempotency_key",
                                       name="uq_jobs_idempotency"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    template_id: Mapped[str] = mapped_column(ForeignKey("job_templates.id"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    launched_by: Mapped[str] = mapped_column(String(32))
    idempotency_key: Mapped[str | None] = mapped_column(String(128), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    extra_vars: Mapped[str] = mapped_column(Text, default="{}")
    credential_ids: Mapped[str] = mapped_column(Text, default="")
    targets: Mapped[str] = mapped_column(Text, default="")
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    rc: Mapped[int | None] = mapped_column(Integer, nullable=True)
    relaunch_of: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # Jobs (ids, comma-separated) that must have ended before this one starts: a subnet's job waits for its
    # network's, a server's for its networks'.
    after: Mapped[str] = mapped_column(Text, default="", server_default="")
    # The worker (Celery node name, or host of the in-process queue) that ran the job.
    execution_node: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # Refreshed by the worker while the job runs; a running job whose heartbeat stops is reaped as "error".
    heartbeat_at: Mapped[datetime | None] = mapped_column(Moment, nullable=True)
    # Why the job ended as it did, when the playbook's own output does not say (a dead worker, a timeout).
    explanation: Mapped[str] = mapped_column(Text, default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(Moment, default=now)
    started_at: Mapped[datetime | None] = mapped_column(Moment, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(Moment, nullable=True)


class JobEvent(Base):
    __tablename__ = "job_events"
    __table_args__ = (UniqueConstraint("job_id", "seq"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    event: Mapped[str] = mapped_column(String(64))
    host: Mapped[str | None] = mapped_column(String(255), nullable=True, index=True)
    task: Mapped[str | None] = mapped_column(String(255), nullable=True)
    stdout: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[str] = mapped_column(Text, default="{}")
    created_at: Mapped[datetime] = mapped_column(Moment, default=now)


class TargetLock(Base):
    """A host one running job converges; the primary key makes a second claim fail."""

    __tablename__ = "target_locks"
    target: Mapped[str] = mapped_column(String(255), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
