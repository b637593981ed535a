"""Jobs outlive the death of their worker, a job waiting for its hosts holds no worker slot, and a canceled
or timed-out job leaves no process behind.

Heartbeats are fast here (every 0.5 s, dead after 8 s) and the grace between SIGINT, SIGTERM and SIGKILL
is 2 s, so each case takes seconds; the production defaults are 5 s, 60 s and 10 s.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import timedelta

import pytest
from conftest import template
from sqlalchemy import select
from test_celery import start_workers, stop_workers
from test_jobs import launch, wait

from nimbus_api.models import Job, JobEvent, TargetLock, now

FAST = {"job_heartbeat_interval": 0.5, "job_heartbeat_timeout": 8, "cancel_grace": 2}


@pytest.fixture
def settings(settings):
    return settings.model_copy(update=dict(FAST, workers=2))


def processes_of(job_id):
    """Live processes whose command line names the job (its private data directory is in ansible-playbook's
    argv, which its forked workers share): found independently of the runner's own marker."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/cmdline" % entry, "rb") as f:
                    if job_id.encode() in f.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found


def sessions_of(job_id):
    """The sessions of the job's live processes."""
    found = set()
    for pid in processes_of(job_id):
        try:
            found.add(os.getsid(pid))
        except ProcessLookupError:
            continue
    return found


def kill_leftovers(job_id):
    for pid in processes_of(job_id):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def status(cloud, token, project, job_id):
    return cloud.call("GET", "/v1/projects/%s/jobs/%s" % (project, job_id), token).json()


def until(predicate, timeout, what):
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, what
        time.sleep(0.1)


def test_a_job_waiting_for_its_hosts_holds_no_worker_slot(world, app):
    cloud, p, t = world
    slow_x = template(cloud, name="slow-x", playbook="slow.yml", hosts=("host-x",))
    quick_y = template(cloud, name="quick-y", playbook="chatty.yml", hosts=("host-y",), schema={"type": "object"})
    a = launch(cloud, t["member-a"], p["a"], slow_x, extra_vars={"seconds": 20}).json()["id"]
    until(lambda: status(cloud, t["member-a"], p["a"], a)["status"] == "running", 120, "A never started")
    # Two slots: A has one. B waits for host-x; before, it sat in the other slot until A ended, and C
    # (host-y, free) could not start.
    b = launch(cloud, t["member-a"], p["a"], slow_x, extra_vars={"seconds": 1}).json()["id"]
    time.sleep(1.5)
    c = launch(cloud, t["member-a"], p["a"], quick_y).json()["id"]
    jc = wait(cloud, t["member-a"], p["a"], c, timeout=300)
    ja = wait(cloud, t["member-a"], p["a"], a, timeout=300)
    jb = wait(cloud, t["member-a"], p["a"], b, timeout=300)
    assert [ja["status"], jb["status"], jc["status"]] == ["successful"] * 3
    assert jc["finished_at"] < ja["finished_at"] <= jb["started_at"]


def test_cancel_ends_the_whole_process_tree(world):
    cloud, p, t = world
    tid = template(cloud, name="slow", playbook="slow.yml")
    job_id = launch(cloud, t["member-a"], p["a"], tid, extra_vars={"seconds": 300}).json()["id"]
    try:
        events = "/v1/projects/%s/jobs/%s/events" % (p["a"], job_id)
        # The pause runs in a task worker that ansible-core puts in a session of its own.
        until(lambda: any(e["event"] == "playbook_on_task_start" and e["task"] == "Wait"
                          for e in cloud.call("GET", events, t["member-a"]).json()), 180, "the pause never started")
        until(lambda: len(sessions_of(job_id)) >= 2, 30, "expected the worker in a session of its own")
        tree = processes_of(job_id)
        assert len({os.getsid(pid) for pid in tree}) >= 2, "expected the worker in a session of its own"
        beat = status(cloud, t["member-a"], p["a"], job_id)["heartbeat_at"]
        # Beats every 0.5 s: it beats again (the worker is alive); the limit allows for a loaded machine.
        until(lambda: status(cloud, t["member-a"], p["a"], job_id)["heartbeat_at"] > beat, 10, "no heartbeat")
        assert status(cloud, t["member-a"], p["a"], job_id)["heartbeat_at"] > beat  # the worker is alive
        cloud.call("POST", "/v1/projects/%s/jobs/%s/cancel" % (p["a"], job_id), t["member-a"])
        job = wait(cloud, t["member-a"], p["a"], job_id, timeout=300)
        assert job["status"] == "canceled"
        assert processes_of(job_id) == [], "processes of the canceled job outlived it"
    finally:
        kill_leftovers(job_id)


def test_a_timeout_ends_the_whole_process_tree(world):
    cloud, p, t = world
    tid = template(cloud, name="short", playbook="slow.yml", timeout=4)
    job_id = launch(cloud, t["member-a"], p["a"], tid, extra_vars={"seconds": 300}).json()["id"]
    try:
        job = wait(cloud, t["member-a"], p["a"], job_id, timeout=300)
        assert job["status"] == "failed" and "timed out after 4 s" in job["explanation"]
        assert processes_of(job_id) == []
    finally:
        kill_leftovers(job_id)


def running_job(db, project_id, template_id, beat, targets=("host-z",)):
    job = Job(template_id=template_id, project_id=project_id, launched_by="someone", status="running",
              targets=",".join(targets), started_at=beat, heartbeat_at=beat, execution_node="gone@test")
    db.add(job)
    db.flush()
    for target in targets:
        db.add(TargetLock(target=target, job_id=job.id))
    db.add(JobEvent(job_id=job.id, seq=1, event="playbook_on_start"))
    db.commit()
    return job.id


def test_the_reaper_ends_a_silent_job_once_and_frees_its_hosts(world, app):
    cloud, p, t = world
    tid = template(cloud, name="z", hosts=("host-z",))
    with app.state.sessions() as db:
        dead = running_job(db, p["a"], tid, now() - timedelta(seconds=30))
        alive = running_job(db, p["a"], tid, now(), targets=("host-alive",))
    runner = app.state.runner
    results = []
    threads = [threading.Thread(target=lambda: results.append(runner.reap())) for _n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Several reapers at once (these and the API's own timer): one of them ends it, once.
    assert sum(results, []) in ([], [dead])
    with app.state.sessions() as db:
        job = db.get(Job, dead)
        assert job.status == "error" and job.finished_at is not None
        assert "the worker running this job (gone@test) stopped (last heartbeat" in job.explanation
        final = list(db.scalars(select(JobEvent).where(JobEvent.job_id == dead).order_by(JobEvent.seq)))
        assert [e.event for e in final] == ["playbook_on_start", "error"] and job.explanation in final[-1].stdout
        assert db.scalars(select(TargetLock.job_id)).all() == [alive]
        assert db.get(Job, alive).status == "running"
    # A job for host-z now runs: its hosts are free.
    job_id = launch(cloud, t["member-a"], p["a"], tid).json()["id"]
    assert wait(cloud, t["member-a"], p["a"], job_id)["status"] == "successful"


@pytest.fixture
def celery_cloud(celery_settings, tmp_path):
    from conftest import Cloud, bootstrapped_app
    from fastapi.testclient import TestClient

    env = {"NIMBUS_API_" + k.upper(): str(v) for k, v in FAST.items()}
    procs = start_workers(celery_settings, tmp_path, **env)
    app = bootstrapped_app(celery_settings)
    try:
        with TestClient(app) as client:
            cloud = Cloud(client)
            project = cloud.project("proj-a")
            cloud.user("member-a", roles=[(project, "member")])
            yield cloud, project, cloud.token("member-a", "password-123", "proj-a"), procs, app
    finally:
        stop_workers(procs)


def test_a_job_whose_celery_worker_is_killed_ends_in_error_and_frees_its_host(celery_cloud):
    cloud, project, token, procs, app = celery_cloud
    tid = template(cloud, name="slow", playbook="slow.yml", hosts=("host-x",))
    first = launch(cloud, token, project, tid, extra_vars={"seconds": 120}).json()["id"]
    try:
        until(lambda: status(cloud, token, project, first)["status"] == "running", 180, "the job never started")
        until(lambda: processes_of(first), 30, "no playbook process")
        node = status(cloud, token, project, first)["execution_node"]
        victim = [proc for proc, log in procs if log.name.endswith("/%s.log" % node.split("@")[0])][0]
        os.killpg(victim.pid, signal.SIGKILL)  # the worker and its pool processes, mid-job
        victim.wait(10)
        # The next job for the same host waits for it, on the surviving worker, then runs.
        second = launch(cloud, token, project, tid, extra_vars={"seconds": 1}).json()["id"]
        job = wait(cloud, token, project, first, timeout=300)
        assert job["status"] == "error" and "the worker running this job (%s) stopped" % node in job["explanation"]
        events = cloud.call("GET", "/v1/projects/%s/jobs/%s/events" % (project, first), token).json()
        assert events[-1]["event"] == "error" and "stopped" in events[-1]["stdout"]
        after = wait(cloud, token, project, second, timeout=300)
        assert after["status"] == "successful" and after["execution_node"] != node
        with app.state.sessions() as db:
            assert db.scalars(select(TargetLock).where(TargetLock.job_id == first)).all() == []
        # Its playbook died with its worker (PR_SET_PDEATHSIG), not converging the host beside the next job.
        until(lambda: not processes_of(first), 30, "the dead worker's playbook lives on")
    finally:
        kill_leftovers(first)
