"""Running a job: ansible-runner in a private data directory, events into the database, secrets kept out.

Each job gets ``data_dir/<job id>``, made for it and used by nothing else (ansible-runner shares nothing
between runs only when the directories differ). The playbook runs with:

- extra vars: the launcher's validated variables plus ``nimbus_project`` (the caller's project, which
  the launcher cannot override), written by ansible-runner to ``env/extravars``, so never a secret;
- secrets: never in argv, extra vars, events or the environment ansible-runner records. ansible-runner
  writes its whole environment to ``artifacts/<id>/command``; so the secrets go into a 0600 file outside
  the job's directory, whose path alone is in that environment, and ``ansible-playbook`` is started
  through a small launcher that reads the file, deletes it, and puts the secrets into the environment
  it then ``exec``s ansible-playbook with;
- per-target locks: the inventory's hosts are claimed in ``target_locks`` (one row per host, the primary
  key refuses a second claim) before the run and released after it, so two jobs never converge the same
  host at once; a job waits, pending, for its hosts.

Every event is stored with its sequence number (ordered, resumable) after each known secret value is
masked in its text and data.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import sys
import threading
import time
from pathlib import Path

import ansible_runner
import yaml
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from nimbus_api.models import Credential, Job, JobEvent, JobTemplate, TargetLock, now
from nimbus_api.sealing import unseal
from nimbus_api.settings import ansible_environment

MASK = "********"
LAUNCHER = """#!{python}
# Reads the job's secrets, removes the file, and runs ansible-playbook with them in its environment.
import json, os, sys
path = os.environ.pop("NIMBUS_SECRETS_FILE", "")
secrets = {{}}
if path:
    with open(path) as f:
        secrets = json.load(f)
    os.unlink(path)
os.environ.update(secrets)
os.execv({playbook!r}, [{playbook!r}] + sys.argv[1:])
"""


def ansible_playbook() -> str:
    """The ansible-playbook of the service's own environment, else the one on PATH."""
    beside = Path(sys.executable).with_name("ansible-playbook")
    return str(beside) if beside.exists() else (shutil.which("ansible-playbook") or "ansible-playbook")


def inventory_hosts(inventory_yaml: str) -> list[str]:
    """Hosts named in a YAML inventory (all groups, all levels)."""
    found = set()

    def walk(group):
        if not isinstance(group, dict):
            return
        found.update((group.get("hosts") or {}).keys())
        for child in (group.get("children") or {}).values():
            walk(child)

    for group in (yaml.safe_load(inventory_yaml) or {}).values():
        walk(group)
    return sorted(found)


def mask(text, secrets):
    for value in secrets:
        if value:
            text = text.replace(value, MASK)
    return text


class JobRunner:
    def __init__(self, settings, sessions):
        self.settings = settings
        self.sessions = sessions

    def job_dir(self, job_id) -> Path:
        return Path(self.settings.data_dir) / job_id

    # --- locks ---------------------------------------------------------------

    def claim(self, db, job) -> bool:
        targets = [t for t in job.targets.split(",") if t]
        try:
            for target in targets:
                db.add(TargetLock(target=target, job_id=job.id))
            db.commit()
            return True
        except IntegrityError:
            db.rollback()
            return False

    def release(self, db, job_id):
        db.execute(delete(TargetLock).where(TargetLock.job_id == job_id))
        db.commit()

    # --- the run ---------------------------------------------------------------

    def run(self, job_id: str, node: str | None = None) -> str:
        with self.sessions() as db:
            job = db.get(Job, job_id)
            if job is None or job.status != "pending":
                return job.status if job else "missing"
            while not self.claim(db, job):
                db.refresh(job)
                if job.cancel_requested:
                    return self.finish(db, job, "canceled", None)
                time.sleep(0.5)
            job.execution_node = node or socket.gethostname()
            try:
                return self._run(db, job)
            except Exception as e:  # a failure of ours, not of the playbook
                self.event(db, job, 10 ** 9, {"event": "error", "stdout": "nimbus: %s" % e}, [])
                return self.finish(db, job, "error", None)
            finally:
                self.release(db, job.id)
                self.prune()

    def _run(self, db, job):
        template = db.get(JobTemplate, job.template_id)
        secrets = {}
        for cred_id in [c for c in job.credential_ids.split(",") if c]:
            cred = db.get(Credential, cred_id)
            if cred is not None:
                secrets.update(unseal(self.settings, cred.sealed))
        values = sorted(set(secrets.values()), key=len, reverse=True)
        job.status, job.started_at = "running", now()
        db.commit()

        base = self.job_dir(job.id)
        shutil.rmtree(base, ignore_errors=True)
        (base / "inventory").mkdir(parents=True, mode=0o700)
        (base / "inventory" / "hosts.yml").write_text(template.inventory)
        # With a binary of its own, ansible-runner runs it "raw" and leaves the playbook out: cmdline adds it.
        (base / "bin").mkdir(mode=0o700)
        launcher = base / "bin" / "ansible-playbook"
        launcher.write_text(LAUNCHER.format(python=sys.executable, playbook=ansible_playbook()))
        launcher.chmod(0o700)
        envvars = ansible_environment(self.settings)
        secrets_dir = Path(self.settings.data_dir) / ".secrets"
        secrets_file = secrets_dir / (job.id + ".json")
        if secrets:
            secrets_dir.mkdir(mode=0o700, exist_ok=True)
            fd = os.open(str(secrets_file), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(secrets, f)
            envvars["NIMBUS_SECRETS_FILE"] = str(secrets_file)
        extravars = dict(json.loads(job.extra_vars or "{}"), nimbus_project=job.project_id)
        playbook = (Path(self.settings.playbooks_dir) / template.playbook).resolve()
        seq = [0]

        def on_event(data):
            seq[0] += 1
            self.event(db, job, data.get("counter", seq[0]), data, values)
            return False  # ansible-runner need not keep its own copy in artifacts/job_events

        def cancel():
            with self.sessions() as check:
                return bool(check.scalar(select(Job.cancel_requested).where(Job.id == job.id)))

        try:
            result = ansible_runner.run(
                private_data_dir=str(base), playbook=str(playbook), inventory=str(base / "inventory" / "hosts.yml"),
                extravars=extravars, envvars=envvars, binary=str(launcher), quiet=True, suppress_env_files=True,
                event_handler=on_event, cancel_callback=cancel, timeout=template.timeout, rotate_artifacts=1,
                project_dir=str(playbook.parent), cmdline=shlex.quote(str(playbook)))
        finally:
            if secrets_file.exists():
                secrets_file.unlink()
        self.scrub(base, values)
        status = {"successful": "successful", "failed": "failed", "canceled": "canceled",
                  "timeout": "failed"}.get(result.status, "error")
        return self.finish(db, job, status, result.rc)

    def event(self, db, job, counter, data, secrets):
        event_data = data.get("event_data") or {}
        stdout = mask(data.get("stdout") or "", secrets)
        payload = {k: event_data.get(k) for k in ("play", "task", "host", "task_action", "res", "resolved_action")
                   if k in event_data}
        db.add(JobEvent(job_id=job.id, seq=int(counter), event=data.get("event", "unknown"),
                        host=event_data.get("host"), task=event_data.get("task"), stdout=stdout,
                        data=mask(json.dumps(payload, default=str), secrets)))
        db.commit()

    def finish(self, db, job, status, rc):
        job.status, job.rc, job.finished_at = status, rc, now()
        db.commit()
        return status

    def scrub(self, base, secrets):
        """Mask any secret value ansible-runner wrote into the job's artifacts (stdout, events)."""
        if not secrets:
            return
        for path in base.rglob("*"):
            if path.is_file() and path.parent.name != "bin":
                try:
                    text = path.read_text()
                except (UnicodeDecodeError, OSError):
                    continue
                masked = mask(text, secrets)
                if masked != text:
                    path.write_text(masked)

    def prune(self):
        """Keep the private data directories of the newest ``keep_jobs`` jobs."""
        root = Path(self.settings.data_dir)
        dirs = sorted((d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")),
                      key=lambda d: d.stat().st_mtime, reverse=True) if root.exists() else []
        for old in dirs[self.settings.keep_jobs:]:
            shutil.rmtree(old, ignore_errors=True)


class InProcessQueue:
    """The embedded default: a few threads in the API process run the jobs."""

    def __init__(self, runner: JobRunner, workers: int):
        self.runner = runner
        self.semaphore = threading.Semaphore(workers)
        self.threads = []

    def submit(self, job_id: str):
        def work():
            with self.semaphore:
                self.runner.run(job_id)
        thread = threading.Thread(target=work, name="nimbus-job-" + job_id, daemon=True)
        self.threads.append(thread)
        thread.start()

    def drain(self, timeout=None):
        for thread in list(self.threads):
            thread.join(timeout)
