"""Running a job: ansible-runner in a private data directory, events into the database, secrets kept out.

Each job gets ``data_dir/<job id>``, made for it and used by nothing else (ansible-runner shares nothing
between runs only when the directories differ). The playbook runs with:

- extra vars in a file, never argv: ``env/extravars`` (0600), which ansible-runner passes as
  ``-e @file``. The admin's template variables and ``nimbus_project`` (the caller's project id) are
  written as they are; the launcher's variables and credentials' extra vars are tagged ``!unsafe`` at
  every depth (variables.py), so Jinja in them is never evaluated, and their names can never be
  ``nimbus_project`` or any ``ansible_*`` setting;
- secrets: never in argv, extra vars, events or the environment ansible-runner records. ansible-runner
  writes its whole environment to ``artifacts/<id>/command``; so the environment a credential injects,
  and the extra vars it injects, go into 0600 files outside the job's directory, whose paths alone are
  in argv and in that environment. ``ansible-playbook`` is started through a small launcher that reads
  the environment file, deletes it, and ``exec``s ansible-playbook with it; the extra-vars file is
  deleted when the run ends;
- per-target locks: the inventory's hosts are claimed in ``target_locks`` (one row per host, the primary
  key refuses a second claim) before the run and released after it, so two jobs never converge the same
  host at once; a job waits, pending, for its hosts.

Every event is stored with its sequence number (ordered, resumable) after each known secret value is
masked, in every form it may be printed in (masking.py), in its text and data.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import socket
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import ansible_runner
import yaml
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from nimbus_api.credentials import injections
from nimbus_api.masking import Masker
from nimbus_api.models import FINISHED, Credential, CredentialType, Job, JobEvent, JobTemplate, TargetLock, now
from nimbus_api.processes import MARKER, Stopper
from nimbus_api.sealing import unseal, write_private
from nimbus_api.settings import ansible_environment
from nimbus_api.variables import extravars_yaml

log = logging.getLogger(__name__)
# Seconds before a job whose hosts are busy is tried again; reaping old jobs at most this often.
LOCK_RETRY = 0.5
EXPIRE_EVERY = 3600
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
try:  # the job dies with the worker that runs it: SIGTERM when its parent ends (Linux's PR_SET_PDEATHSIG)
    import ctypes, signal
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)
except (OSError, AttributeError):
    pass
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


class JobRunner:
    def __init__(self, settings, sessions):
        self.settings = settings
        self.sessions = sessions
        self.expired_at = float("-inf")

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

    def waiting(self, db, job) -> bool:
        """Whether a job this one comes after is still pending or running (then it waits, as for busy hosts)."""
        earlier = [j for j in (job.after or "").split(",") if j]
        return bool(earlier) and db.scalar(select(func.count(Job.id)).where(
            Job.id.in_(earlier), Job.status.in_(("pending", "running")))) > 0

    def release(self, db, job_id):
        db.execute(delete(TargetLock).where(TargetLock.job_id == job_id))
        db.commit()

    # --- the run ---------------------------------------------------------------

    def run(self, job_id: str, node: str | None = None) -> str:
        """Run a pending job whose hosts are free. "pending" back means they are not: the caller requeues
        the job, so a job waiting for its hosts holds no worker slot."""
        self.reap()
        with self.sessions() as db:
            job = db.get(Job, job_id)
            if job is None or job.status != "pending":
                return job.status if job else "missing"
            if self.waiting(db, job) or not self.claim(db, job):
                return "pending"
            job.execution_node = node or socket.gethostname()
            job.heartbeat_at = now()
            heartbeat = Every("nimbus-heartbeat-" + job.id, self.settings.job_heartbeat_interval,
                              lambda: self.beat(job.id))
            heartbeat.start()
            try:
                return self._run(db, job)
            except Exception as e:  # a failure of ours, not of the playbook
                self.event(db, job, 10 ** 9, {"event": "error", "stdout": "nimbus: %s" % e}, Masker([]))
                return self.finish(db, job, "error", None)
            finally:
                heartbeat.stop()
                self.release(db, job.id)
                self.prune()

    # --- dead workers, old jobs ----------------------------------------------------

    def beat(self, job_id: str) -> None:
        """Say the job's worker is alive (refreshed by the job's ``Every`` thread while it runs)."""
        with self.sessions() as db:
            db.execute(update(Job).where(Job.id == job_id, Job.status.in_(("pending", "running")))
                       .values(heartbeat_at=now()))
            db.commit()

    def reap(self) -> list[str]:
        """End the running jobs whose worker stopped beating, and free their hosts.

        Cheap and idempotent; any number of API processes and workers may run it at once: each job is
        ended by a conditional UPDATE, which only one of them wins.
        """
        cutoff = now() - timedelta(seconds=self.settings.job_heartbeat_timeout)
        last_sign = func.coalesce(Job.heartbeat_at, Job.started_at, Job.created_at)
        reaped = []
        with self.sessions() as db:
            stale = db.execute(select(Job.id, Job.heartbeat_at, Job.execution_node)
                               .where(Job.status == "running", last_sign < cutoff)).all()
            for job_id, beat, node in stale:
                why = "the worker running this job%s stopped (last heartbeat %s)" % (
                    " (%s)" % node if node else "", beat.strftime("%Y-%m-%d %H:%M:%S UTC") if beat else "never")
                try:
                    won = db.execute(update(Job).where(Job.id == job_id, Job.status == "running", last_sign < cutoff)
                                     .values(status="error", finished_at=now(), explanation=why)).rowcount
                    if won:
                        last = db.scalar(select(func.max(JobEvent.seq)).where(JobEvent.job_id == job_id)) or 0
                        db.add(JobEvent(job_id=job_id, seq=last + 1, event="error", stdout="nimbus: " + why,
                                        data="{}"))
                        db.execute(delete(TargetLock).where(TargetLock.job_id == job_id))
                    db.commit()
                except IntegrityError:  # its worker is alive after all and wrote that event: next time
                    db.rollback()
                    continue
                if won:
                    reaped.append(job_id)
            # Hosts still locked by a finished job (its worker died between finishing and releasing).
            db.execute(delete(TargetLock).where(TargetLock.job_id.in_(select(Job.id).where(Job.status.in_(FINISHED)))))
            db.commit()
        if time.monotonic() - self.expired_at >= EXPIRE_EVERY:
            self.expired_at = time.monotonic()
            self.expire()
        return reaped

    def expire(self) -> int:
        """Delete the finished jobs older than ``job_retention_days`` (0: none), with their events and
        directories, and this node's directories of jobs deleted elsewhere."""
        deleted = 0
        if self.settings.job_retention_days > 0:
            cutoff = now() - timedelta(days=self.settings.job_retention_days)
            with self.sessions() as db:
                old = list(db.scalars(select(Job.id).where(
                    Job.status.in_(FINISHED), func.coalesce(Job.finished_at, Job.created_at) < cutoff)))
                deleted = sum(self.delete(db, job_id) for job_id in old)
        root = Path(self.settings.data_dir)
        names = [d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")] if root.exists() else []
        if names:
            with self.sessions() as db:
                known = set(db.scalars(select(Job.id).where(Job.id.in_(names))))
            for name in set(names) - known:
                shutil.rmtree(root / name, ignore_errors=True)
        return deleted

    def delete(self, db, job_id: str) -> bool:
        """Delete a finished job: its row, events, locks and private data directory. False if it is not finished."""
        gone = db.execute(delete(Job).where(Job.id == job_id, Job.status.in_(FINISHED))).rowcount
        if gone:
            db.execute(delete(JobEvent).where(JobEvent.job_id == job_id))
            db.execute(delete(TargetLock).where(TargetLock.job_id == job_id))
        db.commit()
        if gone:
            shutil.rmtree(self.job_dir(job_id), ignore_errors=True)
        return bool(gone)

    def credentials(self, db, job) -> tuple[dict, dict, Masker]:
        """The environment and extra vars the job's credentials inject, and a masker for all their values."""
        env, extra, values = {}, {}, []
        for cred_id in [c for c in job.credential_ids.split(",") if c]:
            cred = db.get(Credential, cred_id)
            if cred is None or cred.project_id != job.project_id:
                continue
            kind = db.get(CredentialType, cred.credential_type_id)
            cred_env, cred_extra, cred_values = injections(kind.fields, kind.injectors,
                                                           unseal(self.settings, cred.sealed))
            env.update(cred_env)
            extra.update(cred_extra)
            values += cred_values
        return env, extra, Masker(values)

    def _run(self, db, job):
        template = db.get(JobTemplate, job.template_id)
        secret_env, secret_vars, masker = self.credentials(db, job)
        job.status, job.started_at = "running", now()
        db.commit()

        base = self.job_dir(job.id)
        shutil.rmtree(base, ignore_errors=True)
        (base / "inventory").mkdir(parents=True, mode=0o700)
        (base / "env").mkdir(mode=0o700)
        os.chmod(base, 0o700)
        write_private(base / "inventory" / "hosts.yml", template.inventory)
        # The admin's variables and the service's own may template; the launcher's are data.
        trusted = dict(json.loads(template.extra_vars or "{}"), nimbus_project=job.project_id)
        write_private(base / "env" / "extravars", extravars_yaml(trusted, json.loads(job.extra_vars or "{}")))
        # With a binary of its own, ansible-runner runs it "raw" and leaves the playbook out: cmdline adds it.
        (base / "bin").mkdir(mode=0o700)
        launcher = base / "bin" / "ansible-playbook"
        launcher.write_text(LAUNCHER.format(python=sys.executable, playbook=ansible_playbook()))
        launcher.chmod(0o700)
        envvars = ansible_environment(self.settings)
        envvars[MARKER] = job.id  # every process of the job inherits it: how they are all found to stop them
        secrets_dir = Path(self.settings.data_dir) / ".secrets"
        secrets_file = secrets_dir / (job.id + ".json")
        secret_vars_file = secrets_dir / (job.id + ".vars.yml")
        if secret_env or secret_vars:
            secrets_dir.mkdir(mode=0o700, exist_ok=True)
            os.chmod(secrets_dir, 0o700)
        if secret_env:
            write_private(secrets_file, json.dumps(secret_env))
            envvars["NIMBUS_SECRETS_FILE"] = str(secrets_file)
        if secret_vars:
            write_private(secret_vars_file, extravars_yaml({}, secret_vars))
        playbook = (Path(self.settings.playbooks_dir) / template.playbook).resolve()
        seq = [0]

        def on_event(data):
            seq[0] += 1
            self.event(db, job, data.get("counter", seq[0]), data, masker)
            return False  # ansible-runner need not keep its own copy in artifacts/job_events

        stopper = Stopper(job.id, self.settings.cancel_grace)
        started, polled = time.monotonic(), [0.0]

        def cancel():
            # Never True: ansible-runner would SIGKILL the playbook's process group only, leaving its
            # workers; the stopper ends every process of the job, SIGINT first.
            if stopper.reason is None and time.monotonic() - polled[0] >= 0.5:
                polled[0] = time.monotonic()
                with self.sessions() as check:
                    requested, status = check.execute(select(Job.cancel_requested, Job.status)
                                                      .where(Job.id == job.id)).one()
                if requested:
                    stopper.start("canceled")
                elif status != "running":  # the reaper ended it: this worker was taken for dead
                    stopper.start("reaped")
            if stopper.reason is None and time.monotonic() - started > template.timeout:
                stopper.start("timeout")
            stopper.tick()
            return False

        try:
            result = ansible_runner.run(
                private_data_dir=str(base), playbook=str(playbook), inventory=str(base / "inventory" / "hosts.yml"),
                # env/extravars is passed by ansible-runner itself; this adds the credentials' file after it.
                extravars=str(secret_vars_file) if secret_vars else None,
                envvars=envvars, binary=str(launcher), quiet=True, suppress_env_files=True,
                event_handler=on_event, cancel_callback=cancel, settings={"pexpect_timeout": 1}, rotate_artifacts=1,
                project_dir=str(playbook.parent), cmdline=shlex.quote(str(playbook)))
        finally:
            stopper.finish()
            for path in (secrets_file, secret_vars_file):
                if path.exists():
                    path.unlink()
        self.scrub(base, masker)
        if stopper.reason == "timeout":
            return self.finish(db, job, "failed", result.rc, "timed out after %d s" % template.timeout)
        if stopper.reason:
            return self.finish(db, job, "canceled", result.rc)
        status = {"successful": "successful", "failed": "failed"}.get(result.status, "error")
        return self.finish(db, job, status, result.rc)

    def event(self, db, job, counter, data, masker: Masker):
        event_data = data.get("event_data") or {}
        stdout = masker.text(data.get("stdout") or "")
        payload = masker.data({k: event_data.get(k) for k in ("play", "task", "host", "task_action", "res",
                                                              "resolved_action") if k in event_data})
        host, task = masker.data(event_data.get("host")), masker.data(event_data.get("task"))
        db.add(JobEvent(job_id=job.id, seq=int(counter), event=data.get("event", "unknown"),
                        host=host if isinstance(host, str) else None, task=task if isinstance(task, str) else None,
                        stdout=stdout, data=masker.text(json.dumps(payload, default=str))))
        db.commit()

    def finish(self, db, job, status, rc, explanation=None):
        """Record how the job ended, unless it has ended already (the reaper took its worker for dead)."""
        values = {"status": status, "rc": rc, "finished_at": now()}
        if explanation:
            values["explanation"] = explanation
        db.execute(update(Job).where(Job.id == job.id, Job.status.in_(("pending", "running"))).values(**values))
        db.commit()
        db.refresh(job)
        return job.status

    def scrub(self, base, masker: Masker):
        """Mask any secret value ansible-runner wrote into the job's artifacts (stdout, events)."""
        if not masker:
            return
        for path in base.rglob("*"):
            if path.is_file() and path.parent.name != "bin":
                try:
                    text = path.read_text()
                except (UnicodeDecodeError, OSError):
                    continue
                masked = masker.text(text)
                if masked != text:
                    path.write_text(masked)

    def prune(self):
        """Keep the private data directories of the newest ``keep_jobs`` jobs."""
        root = Path(self.settings.data_dir)
        dirs = sorted((d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")),
                      key=lambda d: d.stat().st_mtime, reverse=True) if root.exists() else []
        for old in dirs[self.settings.keep_jobs:]:
            shutil.rmtree(old, ignore_errors=True)


class Every(threading.Thread):
    """Calls ``work`` every ``interval`` seconds until stopped: a running job's heartbeat, an API process's
    reaper. A failed call is logged and the next one tries again."""

    def __init__(self, name: str, interval: float, work):
        super().__init__(name=name, daemon=True)
        self.interval, self.work = interval, work
        self.stopped = threading.Event()

    def run(self):
        while not self.stopped.wait(self.interval):
            try:
                self.work()
            except Exception:  # a long outage is what the reaper (for heartbeats) is for
                log.warning("%s failed", self.name, exc_info=True)

    def stop(self, wait: float = 0):
        self.stopped.set()
        if wait:
            self.join(wait)


class InProcessQueue:
    """The embedded default: a few threads in the API process run the jobs.

    A job whose hosts are busy gives its slot back and is tried again ``LOCK_RETRY`` seconds later.
    """

    def __init__(self, runner: JobRunner, workers: int):
        self.runner = runner
        self.semaphore = threading.Semaphore(workers)
        self.outstanding: set[str] = set()
        self.lock = threading.Lock()

    def submit(self, job_id: str):
        with self.lock:
            self.outstanding.add(job_id)
        self._start(job_id)

    def _start(self, job_id: str):
        threading.Thread(target=self._work, args=(job_id,), name="nimbus-job-" + job_id, daemon=True).start()

    def _work(self, job_id: str):
        status = None
        try:
            with self.semaphore:
                status = self.runner.run(job_id)
        finally:
            if status == "pending":
                retry = threading.Timer(LOCK_RETRY, self._start, args=(job_id,))
                retry.daemon = True
                retry.start()
            else:
                with self.lock:
                    self.outstanding.discard(job_id)

    def drain(self, timeout=None) -> bool:
        """Wait until every job submitted here has ended (or ``timeout`` seconds); whether they all have."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.outstanding and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.05)
        return not self.outstanding
