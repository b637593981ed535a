"""What an OpenStack API request that changes something becomes: a job of a runbook playbook.

A mutation is checked, then, under its project's lock, counted against the project's quotas with what is
already being made, then queued as a job of the runbook's job template, with the caller's project as
``nimbus_project`` (set by the service) and the request's values as data (launch variables, never
templated). The answer is OpenStack's: ``202`` and the resource with the id chosen here, in ``BUILD``.

Until the hosts show the result, the resource is what its :class:`~nimbus_api.models.Operation` says:
building while the job is pending or running, ``ERROR`` with the job's fault when it failed, until the user
deletes it. A resource view read before a job that changes its kind ended is read again (``last_ended``,
``ResourceViews.read``), so a job's result shows as soon as it is done.

The quota lock: one row per project is updated before anything is counted, so two requests of one project
count one after the other (InnoDB locks the row until commit; SQLite's first write takes the database's
write lock). Requests of different projects do not wait for each other on MariaDB.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone

from fastapi import HTTPException
from sqlalchemy import or_, select, update

from nimbus_api.models import FINISHED, Job, JobEvent, JobTemplate, Operation, Project
from nimbus_api.routes.jobs import launchable, new_job

# The job template each change runs; the api role registers them (``nimbus-api runbooks``).
RUNBOOKS = {
    ("server", "create"): "nimbus.server_create",
    ("server", "delete"): "nimbus.server_delete",
    ("server", "action"): "nimbus.server_action",
    ("server", "resize"): "nimbus.server_resize",
    ("network", "create"): "nimbus.network_create",
    ("network", "delete"): "nimbus.network_delete",
    ("subnet", "create"): "nimbus.subnet_create",
    ("subnet", "delete"): "nimbus.subnet_delete",
    ("port", "create"): "nimbus.port_create",
    ("port", "delete"): "nimbus.port_delete",
    ("security_group", "create"): "nimbus.security_group_create",
    ("security_group", "delete"): "nimbus.security_group_delete",
    ("router", "create"): "nimbus.router_create",
    ("router", "delete"): "nimbus.router_delete",
    ("floating_ip", "create"): "nimbus.floating_ip_create",
    ("floating_ip", "delete"): "nimbus.floating_ip_delete",
    ("image", "create"): "nimbus.image_create",
    ("image", "update"): "nimbus.image_update",
    ("image", "delete"): "nimbus.image_delete",
    ("volume", "create"): "nimbus.volume_create",
    ("volume", "update"): "nimbus.volume_update",
    ("volume", "delete"): "nimbus.volume_delete",
    ("volume", "attach"): "nimbus.volume_attach",
    ("volume", "detach"): "nimbus.volume_detach",
    ("snapshot", "create"): "nimbus.snapshot_create",
    ("snapshot", "delete"): "nimbus.snapshot_delete",
    ("backup", "create"): "nimbus.backup_create",
    ("backup", "delete"): "nimbus.backup_delete",
}
IN_FLIGHT = ("pending", "running")
FAILED = ("failed", "error", "canceled")


@dataclass
class Pending:
    """An operation as the API shows it: its record, and its job's state."""

    operation: Operation
    status: str  # the job's: pending, running, successful, failed, error, canceled (missing: "gone")
    finished_at: datetime | None
    explanation: str
    # Its job ended after the resource view it is merged with began its read: the view may not show what the
    # job did, so the operation still counts as in flight for that answer (the next read shows the result).
    ended_after_view: bool = False

    @property
    def shown(self) -> dict:
        return json.loads(self.operation.shown or "{}")

    @property
    def in_flight(self) -> bool:
        return self.status in IN_FLIGHT or (self.ended_after_view and not self.failed)

    @property
    def failed(self) -> bool:
        return self.status in FAILED


def runbook(db, auth, resource: str, action: str) -> JobTemplate:
    """The runbook's template, if this cloud has it and the caller may launch it."""
    name = RUNBOOKS[(resource, action)]
    template = db.scalar(select(JobTemplate).where(JobTemplate.name == name))
    if template is None:
        raise HTTPException(status_code=503, detail="This cloud cannot %s a %s yet: it has no job template %s "
                            "(the api role registers it)." % (action, resource, name))
    if not launchable(template, auth):
        raise HTTPException(status_code=403, detail="Policy does not allow this project to %s a %s "
                            "(job template %s)." % (action, resource, name))
    return template


def lock(db, model, *idents: str) -> None:
    """Hold the quota locks of these projects (or users, for key pairs) until this session commits or rolls
    back. Several are taken in one order, so two requests that need the same ones never wait for each other."""
    db.commit()  # the lock must be the transaction's first statement: what is counted after it is current
    for ident in sorted(set(idents)):
        db.execute(update(model).where(model.id == ident).values(enabled=model.enabled))


def launch(request, db, auth, resource: str, resource_id: str, action: str, extra_vars: dict, shown: dict,
           check=None, runbook_action: str | None = None, project_id: str | None = None,
           after=(), also_lock=(), also=()) -> Operation:
    """Queue the runbook for this change and record it.

    ``check``: called under the project's lock before anything is written (the quota check, records made
    with the change); what it raises is the answer, with nothing queued. ``project_id``: the project the
    change is for, when the cloud admin acts for another one (the job's ``nimbus_project``). ``after``: the
    operations in flight this change needs done first (its job starts after theirs end). ``also_lock``: other
    projects whose lock ``check`` needs, when it chooses from something projects share. ``also``: other
    changes the same job makes, ``(resource, resource_id, action, shown)``, recorded with it (a server booted from
    a volume attaches the volume: the volume shows it, and changes to it wait for the job).
    """
    template = runbook(db, auth, resource, runbook_action or action)
    project_id = project_id or auth.project_id
    lock(db, Project, project_id, *[p for p in also_lock if p])
    try:
        if check is not None:
            check()
        job = new_job(db, auth, template, project_id, extra_vars, [],
                      after=[p.operation.job_id for p in after if p.operation.job_id])
        db.add(job)
        db.flush()
        operation = Operation(resource=resource, resource_id=resource_id, action=action, project_id=project_id,
                              user_id=auth.user_id, job_id=job.id, shown=json.dumps(shown))
        db.add(operation)
        for other, other_id, other_action, other_shown in also:
            db.add(Operation(resource=other, resource_id=other_id, action=other_action, project_id=project_id,
                             user_id=auth.user_id, job_id=job.id, shown=json.dumps(other_shown)))
        db.commit()
    except BaseException:
        db.rollback()
        raise
    request.app.state.queue.submit(job.id)
    return operation


def pending(db, project_id: str | None, resource: str, since: float = 0) -> list[Pending]:
    """The operations that still say something about the project's resources (every project's for None):
    those in flight, failed creates not dismissed, and those that ended after ``since`` (epoch seconds: when
    the read of the view they are merged with began; 0 for none), oldest first. A job that ended after that
    read began may be missing from the view: its operation counts as in flight (``Pending.ended_after_view``)."""
    says_something = [Job.status.in_(IN_FLIGHT), (Operation.action == "create") & Job.status.in_(FAILED)]
    if since:
        says_something.append(Job.finished_at > datetime.fromtimestamp(since, timezone.utc))
    query = (select(Operation, Job.status, Job.finished_at, Job.explanation)
             .outerjoin(Job, Operation.job_id == Job.id)
             .where(Operation.resource == resource, Operation.dismissed.is_(False), or_(*says_something))
             .order_by(Operation.id))
    if project_id is not None:
        query = query.where(Operation.project_id == project_id)
    return [Pending(op, status or "gone", finished, explanation or "", bool(since) and _epoch(finished) > since)
            for op, status, finished, explanation in db.execute(query)]


def _epoch(moment: datetime | None) -> float:
    if moment is None:
        return 0
    if moment.tzinfo is None:  # SQLite gives naive datetimes back; they were stored in UTC
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def last_ended(db, resources) -> float:
    """When the last job of any of these resources ended, whichever project's (epoch seconds; 0 for none): a
    resource view read before that is read again (``ResourceViews.last_change``)."""
    query = (select(Job.finished_at).join(Operation, Operation.job_id == Job.id)
             .where(Operation.resource.in_(resources), Job.status.in_(FINISHED))
             .order_by(Job.finished_at.desc()).limit(1))
    return _epoch(db.scalar(query))


def in_flight(db, resource: str, resource_ids) -> list[Pending]:
    """The operations in flight on these resources (any project's: the caller has checked access)."""
    wanted = set(resource_ids)
    return [p for p in pending(db, None, resource) if p.in_flight and p.operation.resource_id in wanted]


def network_work(db, network_ids) -> list[Pending]:
    """What is being done to these networks and their subnets: what a change that uses them waits for."""
    wanted = set(network_ids)
    subnets = [p for p in pending(db, None, "subnet") if p.in_flight and p.shown.get("network_id") in wanted]
    return in_flight(db, "network", wanted) + subnets


def fault(db, item: Pending) -> str:
    """Why the operation's job failed, in a line: the failed task's message, else the job's explanation."""
    if item.operation.job_id is None:
        return "the job of this request was deleted"
    for event in db.scalars(select(JobEvent).where(JobEvent.job_id == item.operation.job_id,
                                                   JobEvent.event.in_(("runner_on_failed", "runner_on_unreachable",
                                                                       "error")))
                            .order_by(JobEvent.seq.desc()).limit(1)):
        data = json.loads(event.data or "{}")
        message = str((data.get("res") or {}).get("msg") or event.stdout or "")
        task = data.get("task") or event.task
        return ("%s: %s" % (task, message) if task else message)[:500] or item.status
    return item.explanation[:500] or "the job ended %s" % item.status


def cancel_create(db, item: Pending) -> None:
    """A create the user deletes before it is done: its pending job is canceled, a running one asked to stop;
    it is no longer shown or counted (the delete that follows removes what it made)."""
    item.operation.dismissed = True
    if item.operation.job_id and item.in_flight:
        job = db.get(Job, item.operation.job_id)
        job.cancel_requested = True
        if job.status == "pending":
            job.status = "canceled"


def cancel_creates(db, project_id: str, resource: str, resource_id: str) -> None:
    """Before a deletion: the resource's create still in flight, or failed and shown, is canceled and no
    longer shown (the deletion removes what it made)."""
    for item in pending(db, project_id, resource):
        if item.operation.resource_id == resource_id and item.operation.action == "create" \
                and (item.in_flight or item.failed):
            cancel_create(db, item)
