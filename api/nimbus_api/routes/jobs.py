"""Credentials, job templates, launching jobs, and their events (paged and live)."""

from __future__ import annotations

import asyncio
import json
import re

import jsonschema
from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from nimbus_api import identity, variables
from nimbus_api.deps import get_db
from nimbus_api.middleware import MAX_JSON_DEPTH, json_too_deep
from nimbus_api.models import FINISHED, RANK, Credential, Job, JobEvent, JobTemplate, Project
from nimbus_api.policy import PolicyRoute, current_auth, policy
from nimbus_api.routes.identity import _commit
from nimbus_api.runner import inventory_hosts

router = APIRouter(prefix="/v1", tags=["jobs"], route_class=PolicyRoute)


class TemplateIn(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    description: str = ""
    playbook: str = Field(min_length=1, max_length=255)
    inventory: str = Field(min_length=1)
    # JSON Schema of the variables a launch may set; a launch may set only the properties it declares.
    extra_vars_schema: dict = {"type": "object", "properties": {}, "additionalProperties": False}
    # The admin's own variables for every launch: the only job variables Ansible may template.
    extra_vars: dict = {}
    allowed_projects: list[str] = []
    launch_role: str = Field(default="member", pattern="^(reader|member|admin)$")
    timeout: int = Field(default=3600, ge=1, le=86400)
    # Credential names every launch gets from the launching project (see JobTemplate.credential_names).
    credentials: list[str] = Field(default=[], max_length=20)


class TemplateOut(TemplateIn):
    id: str


class LaunchIn(BaseModel):
    extra_vars: dict = {}
    credentials: list[str] = []
    idempotency_key: str | None = Field(default=None, max_length=128)


class JobOut(BaseModel):
    id: str
    template_id: str
    project_id: str
    launched_by: str
    status: str
    extra_vars: dict
    rc: int | None
    relaunch_of: str | None
    execution_node: str | None
    created_at: object
    started_at: object | None
    finished_at: object | None
    # Why it ended so, when its output does not say (its worker died, it timed out).
    explanation: str = ""
    heartbeat_at: object | None = None
    # True when the stored extra_vars could not be read back (they are shown as {}).
    extra_vars_unreadable: bool = False


class EventOut(BaseModel):
    seq: int
    event: str
    host: str | None
    task: str | None
    stdout: str
    data: dict


def _template_out(t):
    return TemplateOut(id=t.id, name=t.name, description=t.description, playbook=t.playbook, inventory=t.inventory,
                       extra_vars_schema=json.loads(t.extra_vars_schema), extra_vars=json.loads(t.extra_vars or "{}"),
                       allowed_projects=[p for p in t.allowed_projects.split(",") if p], launch_role=t.launch_role,
                       timeout=t.timeout, credentials=[n for n in t.credential_names.split(",") if n])


def stored_object(text: str | None) -> dict | None:
    """A stored JSON object as it can be answered, or None when it cannot be (unreadable, not an object,
    too deep, NaN, a lone surrogate): one bad row must not break a whole list."""
    try:
        if json_too_deep((text or "").encode("utf-8", "surrogatepass"), 2 * MAX_JSON_DEPTH):
            return None
        value = json.loads(text or "{}")
        json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except (ValueError, TypeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _job_out(j):
    extra_vars = stored_object(j.extra_vars)
    return JobOut(id=j.id, template_id=j.template_id, project_id=j.project_id, launched_by=j.launched_by,
                  status=j.status, extra_vars=extra_vars or {}, rc=j.rc, relaunch_of=j.relaunch_of,
                  execution_node=j.execution_node, created_at=j.created_at, started_at=j.started_at,
                  finished_at=j.finished_at, explanation=j.explanation or "", heartbeat_at=j.heartbeat_at,
                  extra_vars_unreadable=extra_vars is None)


def _event_out(e):
    return EventOut(seq=e.seq, event=e.event, host=e.host, task=e.task, stdout=e.stdout,
                    data=stored_object(e.data) or {})


# --- templates --------------------------------------------------------------------

@router.post("/job_templates", status_code=201, response_model=TemplateOut)
@policy("admin")
def create_template(body: TemplateIn, request: Request, db=Depends(get_db)):
    settings = request.app.state.settings
    path = (settings.playbooks_dir / body.playbook).resolve()
    if not str(path).startswith(str(settings.playbooks_dir.resolve()) + "/") or not path.is_file():
        raise HTTPException(status_code=422,
                            detail="playbook %s is not a playbook in %s" % (body.playbook, settings.playbooks_dir))
    try:
        jsonschema.Draft202012Validator.check_schema(body.extra_vars_schema)
        inventory_hosts(body.inventory)
    except (jsonschema.SchemaError, Exception) as e:
        raise HTTPException(status_code=422, detail="bad extra_vars_schema or inventory: %s" % str(e)[:200])
    try:
        # What the schema lets launchers set must be settable: no ansible_*, nimbus_* or reserved names.
        variables.check_names(sorted(variables.declared(body.extra_vars_schema)), "extra_vars_schema.properties")
        variables.check_names(sorted(body.extra_vars), "extra_vars")
        variables.check_value(body.extra_vars, "extra_vars")
    except variables.VariableError as e:
        raise HTTPException(status_code=422, detail=str(e))
    for ref in body.allowed_projects:
        if db.get(Project, ref) is None:
            raise identity.not_found("project", ref)
    bad = [n for n in body.credentials if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", n)]
    if bad:
        raise HTTPException(status_code=422, detail="credentials are credential names, not %s" % ", ".join(bad))
    template = JobTemplate(name=body.name, description=body.description, playbook=body.playbook,
                           inventory=body.inventory, extra_vars_schema=json.dumps(body.extra_vars_schema),
                           extra_vars=json.dumps(body.extra_vars),
                           allowed_projects=",".join(body.allowed_projects), launch_role=body.launch_role,
                           timeout=body.timeout, credential_names=",".join(body.credentials))
    db.add(template)
    _commit(db, "job template %s" % body.name)
    return _template_out(template)


def launchable(template, auth):
    allowed = [p for p in template.allowed_projects.split(",") if p]
    if auth.is_admin:
        return True
    return (not allowed or auth.project_id in allowed) and RANK.get(auth.role or "", 0) >= RANK[template.launch_role]


@router.get("/job_templates", response_model=list[TemplateOut])
@policy("authenticated")
def list_templates(auth=Depends(current_auth), db=Depends(get_db)):
    """The templates the caller may launch with this token."""
    return [_template_out(t) for t in db.scalars(select(JobTemplate).order_by(JobTemplate.name)) if launchable(t, auth)]


@router.get("/job_templates/{template_id}", response_model=TemplateOut)
@policy("authenticated")
def show_template(template_id: str, auth=Depends(current_auth), db=Depends(get_db)):
    template = db.get(JobTemplate, template_id)
    if template is None or not launchable(template, auth):
        raise identity.not_found("job template", template_id)
    return _template_out(template)


@router.delete("/job_templates/{template_id}", status_code=204)
@policy("admin")
def delete_template(template_id: str, db=Depends(get_db)):
    template = identity.get_or_404(db, JobTemplate, template_id, "job template")
    if db.scalar(select(Job.id).where(Job.template_id == template_id).limit(1)):
        raise HTTPException(status_code=409, detail="job template %s has jobs" % template.name)
    db.delete(template)
    db.commit()


# --- jobs -----------------------------------------------------------------------

@router.post("/projects/{project_id}/job_templates/{template_id}/launch", status_code=201, response_model=JobOut)
@policy("reader")
def launch(project_id: str, template_id: str, body: LaunchIn, request: Request, auth=Depends(current_auth),
           db=Depends(get_db)):
    template = db.get(JobTemplate, template_id)
    if template is None or not launchable(template, auth):
        raise HTTPException(status_code=403, detail="this token may not launch job template %s" % template_id)
    if body.idempotency_key:
        earlier = _earlier(db, auth, project_id, template.id, body.idempotency_key)
        if earlier is not None:
            return _job_out(earlier)
    return _start(request, db, auth, template, project_id, body.extra_vars, body.credentials, body.idempotency_key)


def _earlier(db, auth, project_id, template_id, key):
    """The job an idempotency key already made: the same user, project and template only."""
    return db.scalar(select(Job).where(Job.launched_by == auth.user_id, Job.project_id == project_id,
                                       Job.template_id == template_id, Job.idempotency_key == key))


def check_launch_vars(template, extra_vars) -> None:
    """A launch sets only names the template's schema declares, settable names only, plain data only."""
    schema = json.loads(template.extra_vars_schema)
    try:
        variables.check_names(sorted(extra_vars), "extra_vars")
        variables.check_value(extra_vars, "extra_vars")
        undeclared = sorted(set(extra_vars) - variables.declared(schema))
        if undeclared:
            raise variables.VariableError("extra_vars: %s not declared by job template %s"
                                          % (", ".join(undeclared), template.name))
    except variables.VariableError as e:
        raise HTTPException(status_code=422, detail=str(e))
    try:
        jsonschema.validate(extra_vars, schema)
    except jsonschema.ValidationError as e:
        where = ".".join(["extra_vars"] + [str(part) for part in e.absolute_path])
        raise HTTPException(status_code=422, detail="%s: %s" % (where, e.message[:300]))


def _start(request, db, auth, template, project_id, extra_vars, credentials, key, relaunch_of=None):
    job = new_job(db, auth, template, project_id, extra_vars, credentials, key, relaunch_of)
    db.add(job)
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        earlier = _earlier(db, auth, project_id, template.id, key)
        if earlier is None:
            raise
        return _job_out(earlier)
    request.app.state.queue.submit(job.id)
    return _job_out(job)


def new_job(db, auth, template, project_id, extra_vars, credentials, key=None, relaunch_of=None, after=()) -> Job:
    """A pending job of the template for the project, its variables and credentials checked; not yet added.
    ``after``: jobs that must end before it starts."""
    check_launch_vars(template, extra_vars)
    for cred_id in credentials:
        cred = db.get(Credential, cred_id)
        if cred is None or cred.project_id != project_id:
            raise identity.not_found("credential", cred_id)
    for name in [n for n in template.credential_names.split(",") if n]:
        cred = db.scalar(select(Credential).where(Credential.project_id == project_id, Credential.name == name))
        if cred is None:
            raise HTTPException(status_code=422, detail="job template %s needs a credential named %s in this project"
                                % (template.name, name))
        if cred.id not in credentials:
            credentials = list(credentials) + [cred.id]
    return Job(template_id=template.id, project_id=project_id, launched_by=auth.user_id, idempotency_key=key,
               extra_vars=json.dumps(extra_vars), credential_ids=",".join(credentials),
               targets=",".join(inventory_hosts(template.inventory)), relaunch_of=relaunch_of,
               after=",".join(after))


# Sequence numbers and paging offsets: within a signed 32-bit integer, which every database stores.
SEQ = 2 ** 31


def _job(db, project_id, job_id):
    job = db.get(Job, job_id)
    if job is None or job.project_id != project_id:
        raise identity.not_found("job", job_id)
    return job


@router.get("/projects/{project_id}/jobs", response_model=list[JobOut])
@policy("reader")
def list_jobs(project_id: str, status: str | None = None, limit: int = Query(50, ge=1, le=1000),
              db=Depends(get_db)):
    query = select(Job).where(Job.project_id == project_id).order_by(Job.created_at.desc()).limit(limit)
    if status:
        query = query.where(Job.status == status)
    return [_job_out(j) for j in db.scalars(query)]


@router.get("/projects/{project_id}/jobs/{job_id}", response_model=JobOut)
@policy("reader")
def show_job(project_id: str, job_id: str, db=Depends(get_db)):
    return _job_out(_job(db, project_id, job_id))


@router.post("/projects/{project_id}/jobs/{job_id}/cancel", response_model=JobOut)
@policy("member")
def cancel(project_id: str, job_id: str, db=Depends(get_db)):
    job = _job(db, project_id, job_id)
    if job.status not in FINISHED:
        job.cancel_requested = True
        if job.status == "pending":
            job.status = "canceled"
        db.commit()
    return _job_out(job)


@router.delete("/projects/{project_id}/jobs/{job_id}", status_code=204)
@policy("admin")
def delete_job(project_id: str, job_id: str, request: Request, db=Depends(get_db)):
    """The cloud admin deletes a finished job: its record, its events and its private data directory."""
    job = _job(db, project_id, job_id)
    if not request.app.state.runner.delete(db, job.id):
        raise HTTPException(status_code=409, detail="job %s is %s: cancel it first" % (job_id, job.status))


@router.post("/projects/{project_id}/jobs/{job_id}/relaunch", status_code=201, response_model=JobOut)
@policy("reader")
def relaunch(project_id: str, job_id: str, request: Request, auth=Depends(current_auth), db=Depends(get_db)):
    job = _job(db, project_id, job_id)
    template = db.get(JobTemplate, job.template_id)
    if template is None or not launchable(template, auth):
        raise HTTPException(status_code=403, detail="this token may not launch job template %s" % job.template_id)
    extra_vars = stored_object(job.extra_vars)
    if extra_vars is None:
        raise HTTPException(status_code=409, detail="job %s has unreadable variables: launch it anew" % job.id)
    return _start(request, db, auth, template, project_id, extra_vars,
                  [c for c in job.credential_ids.split(",") if c], None, relaunch_of=job.id)


@router.get("/projects/{project_id}/jobs/{job_id}/events", response_model=list[EventOut])
@policy("reader")
def events(project_id: str, job_id: str, after: int = Query(0, ge=0, lt=SEQ), limit: int = Query(200, ge=1, le=1000),
           host: str | None = None, task: str | None = None, db=Depends(get_db)):
    """Events in order; page with ``after`` (the last seq seen); filter by host and task."""
    _job(db, project_id, job_id)
    query = select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.seq > after).order_by(JobEvent.seq)
    if host:
        query = query.where(JobEvent.host == host)
    if task:
        query = query.where(JobEvent.task == task)
    return [_event_out(e) for e in db.scalars(query.limit(limit))]


@router.get("/projects/{project_id}/jobs/{job_id}/stream")
@policy("reader")
def stream(project_id: str, job_id: str, request: Request, after: int = Query(0, ge=0, lt=SEQ),
           last_event_id: str | None = Header(None, alias="Last-Event-ID"), db=Depends(get_db)):
    """Server-sent events: every event from ``after`` (or Last-Event-ID) on, live, then ``end``."""
    # A plain def: FastAPI runs it, and its database read, in a thread; the feed reads in threads too.
    _job(db, project_id, job_id)
    if last_event_id and not (last_event_id.isascii() and last_event_id.isdigit() and int(last_event_id) < SEQ):
        raise HTTPException(status_code=400, detail="Last-Event-ID must be an event's sequence number")
    last = int(last_event_id) if last_event_id else after
    sessions = request.app.state.sessions

    def read(since):
        with sessions() as s:
            # Status first: a job is marked finished only after its last event is stored.
            status = s.scalar(select(Job.status).where(Job.id == job_id))
            return status, list(s.scalars(select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.seq > since)
                                          .order_by(JobEvent.seq).limit(500)))

    async def feed():
        nonlocal last
        while True:
            status, batch = await run_in_threadpool(read, last)
            for e in batch:
                last = e.seq
                yield "id: %d\nevent: job_event\ndata: %s\n\n" % (e.seq, _event_out(e).model_dump_json())
            if not batch and status in FINISHED:
                yield "event: end\ndata: %s\n\n" % json.dumps({"status": status})
                return
            if not batch:
                if await request.is_disconnected():
                    return
                # Short: a waiting client sees the next event within 50 ms; an indexed read is cheap.
                await asyncio.sleep(0.05)

    return StreamingResponse(feed(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
