"""Settings from the environment (NIMBUS_API_*) or a .env file, with embedded defaults for a first run."""

from __future__ import annotations

import os
import sys
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

STATE = Path.cwd() / ".cache" / "api"
# The repository this package sits in, when it runs from a checkout.
CHECKOUT = Path(__file__).resolve().parents[2]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NIMBUS_API_", env_file=".env", extra="ignore")

    # SQLite on disk by default; production: mysql+pymysql://user:pass@host/nimbus
    database_url: str = "sqlite:///" + str(STATE / "nimbus.db")
    # Lifetime of issued tokens, seconds (Keystone's default is an hour).
    token_ttl: int = 3600
    # Failed password logins in a row that lock an account (Keystone's lockout_failure_attempts); 0: never.
    lockout_failure_attempts: int = Field(default=5, ge=0)
    # Seconds a locked account refuses password logins, even the right password (Keystone's lockout_duration).
    lockout_duration: int = Field(default=1800, ge=1)
    # Where jobs get their private data directories.
    data_dir: Path = STATE / "jobs"
    # "inprocess" (a thread pool in the API process) or "celery" (workers fed through RabbitMQ).
    queue: Literal["inprocess", "celery"] = "inprocess"
    # The RabbitMQ (or any kombu transport) the API publishes jobs to and the workers consume from.
    broker_url: str = "amqp://guest@localhost//"
    celery_queue: str = "nimbus-jobs"
    # kombu transport options, as JSON (for example {"confirm_publish": true}).
    broker_options: dict = {}
    # Jobs at once: threads of the in-process queue, or processes of one `nimbus-api worker`.
    workers: int = 4
    # Where `nimbus-api serve` listens.
    host: str = "127.0.0.1"
    port: int = 8080
    # Seconds an idle keep-alive connection stays open. Longer than the clients' polls: the openstack command
    # polls every 5 s (server create --wait), and a server that closes an idle connection just as the next
    # request arrives on it resets that request (uvicorn's own default is 5 s). nginx's default is 75 s.
    keep_alive_timeout: int = Field(default=75, ge=1)
    # The bootstrap admin; the password is read once by `nimbus-api bootstrap`.
    # Fernet key that seals credentials at rest; empty: one kept in state_dir/secret.key (mode 0600).
    # Every API node and worker of one cloud must share it.
    secret_key: str = ""
    state_dir: Path = STATE
    # Playbooks job templates may name (relative paths inside it).
    playbooks_dir: Path = CHECKOUT / "playbooks"
    # Private data directories of finished jobs kept on disk.
    keep_jobs: int = 50
    # Finished jobs older than this many days are deleted with their events and directories; 0 keeps them.
    job_retention_days: int = 90
    # A running job's worker refreshes its heartbeat this often (seconds); a job whose heartbeat is older
    # than the timeout is ended as "error" by the reaper (every API process and every worker run it).
    job_heartbeat_interval: float = 5
    job_heartbeat_timeout: float = 60
    # Seconds between SIGINT, SIGTERM and SIGKILL to a canceled or timed-out job's processes.
    cancel_grace: float = 10
    # Request bodies larger than this are refused (413) before they are read whole.
    max_body_bytes: int = 1024 * 1024
    # Glance's uploads: where image data waits for its job (the workers that run nimbus.image_create read it
    # there, so it is on the API host's disk or shared with the workers), the largest image taken, and the
    # image store's web server the API reads image data back from (the images role's images_url).
    image_uploads_dir: Path = STATE / "image-uploads"
    image_upload_max_bytes: int = Field(default=16 * 1024 ** 3, ge=1)
    image_store_url: str = Field(default="", pattern=r"^(https?://[^/?#@\s]+/?)?$")
    # Resource views: the inventory of the cloud's hosts their _info modules run on (none: empty views),
    # how long a read is reused, and how long one may take. A job that changes a kind makes its next read a
    # new one whatever the age (ResourceViews.read): the TTL bounds only how long a change made outside the
    # API goes unseen (Nova syncs power states every 600 s).
    resources_inventory: Path | None = None
    resources_ttl: int = 60
    resources_timeout: int = 60
    # Where Ansible finds nimbus.cloud (default: ANSIBLE_COLLECTIONS_PATH of the service's environment,
    # else the checkout's .cache/collections that tools/testbed links).
    collections_path: str = ""
    admin_user: str = "admin"
    admin_project: str = "admin"
    default_domain: str = "Default"
    # Every project's limits where the cloud admin set none for it (quotas.py names the resources), as JSON:
    # NIMBUS_API_QUOTA_DEFAULTS='{"instances": 20}'.
    quota_defaults: dict[str, int] = {}
    # The VXLAN VNIs the networking API gives tenant networks, "first:last" (provider networks the cloud admin
    # makes name their own segment).
    tenant_vni_range: str = Field(default="10000:19999", pattern=r"^[0-9]{1,8}:[0-9]{1,8}$")

    @property
    def tenant_vnis(self) -> tuple[int, int]:
        first, last = (int(v) for v in self.tenant_vni_range.split(":"))
        return first, last

    @field_validator("quota_defaults")
    @classmethod
    def _known_quotas(cls, value):
        from nimbus_api.quotas import check_limits

        check_limits(value)
        return value


def collections_path(settings: Settings) -> str:
    checkout = CHECKOUT / ".cache" / "collections"
    return (settings.collections_path or os.environ.get("ANSIBLE_COLLECTIONS_PATH", "")
            or (str(checkout) if checkout.is_dir() else ""))


def ansible_environment(settings: Settings) -> dict:
    """What every ansible-runner call of the service (jobs, resource views) adds to its environment."""
    env = {"ANSIBLE_FORCE_COLOR": "0",
           # The service's own Ansible first: a systemd unit's PATH does not include its virtualenv.
           "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", os.defpath)])}
    if collections_path(settings):
        env["ANSIBLE_COLLECTIONS_PATH"] = collections_path(settings)
    return env


def check_settings(text: str) -> list[str]:
    """What the service would refuse in a settings file's ``text``: one line per problem, never a value.

    The api role runs this (``nimbus-api check-settings``) before it writes the file, so a setting the
    service cannot start with fails the run while the old file and the running service stay as they were.
    A name the service does not know is a problem too: it would be ignored silently, which hides a typo.
    """
    import io

    from dotenv import dotenv_values
    from pydantic import ValidationError

    problems, values = [], {}
    for name, value in dotenv_values(stream=io.StringIO(text)).items():
        field = name[len("NIMBUS_API_"):].lower() if name.startswith("NIMBUS_API_") else None
        if field not in Settings.model_fields:
            problems.append("%s: not a setting of the service" % name)
        elif value is None:
            problems.append("%s: has no value" % name)
        else:
            values[field] = value
    if problems:
        return problems
    try:
        _FileOnly(**values)
    except ValidationError as error:
        for item in error.errors(include_input=False, include_url=False):
            problems.append("NIMBUS_API_%s: %s" % (str(item["loc"][0]).upper(), item["msg"]))
    return problems


class _FileOnly(Settings):
    """Settings from the values given and nothing else (no environment, no .env file)."""

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
        return (init_settings,)


@lru_cache
def get_settings() -> Settings:
    # NIMBUS_API_ENV_FILE names a settings file (the api role's, mode 0640): its secrets then stay out of
    # the process environment, which jobs' ansible-playbook processes inherit.
    return Settings(_env_file=os.environ.get("NIMBUS_API_ENV_FILE", ".env"))
