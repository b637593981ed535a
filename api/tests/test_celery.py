"""Jobs through Celery: the API publishes, separate worker processes (standing in for worker machines,
each with its own data directory) take the jobs from the broker and run them against the shared database.

The broker here is kombu's filesystem transport, so the test needs no RabbitMQ; the `api` Molecule
scenario runs the same workers against the rabbitmq role's broker on two hosts.
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import time

from pathlib import Path

import pytest
from conftest import Cloud, bootstrapped_app, template
from fastapi.testclient import TestClient
from test_jobs import launch, wait

import nimbus_api

PACKAGE_ROOT = str(Path(nimbus_api.__file__).resolve().parents[1])
# `nimbus-api worker`, with the tests' atomic filesystem broker.
WORKER = str(Path(__file__).with_name("atomic_filesystem_broker.py"))


def start_workers(celery_settings, tmp_path, names=("w1", "w2"), **env_extra):
    """Worker processes on these settings, each in a process group of its own (so a test can kill one
    whole), once all of them consume; yields [(process, log file)]."""
    procs = []
    for name in names:
        env = dict(os.environ, PYTHONPATH=PACKAGE_ROOT, NIMBUS_API_QUEUE="celery",
                   NIMBUS_API_BROKER_URL="filesystem://",
                   NIMBUS_API_BROKER_OPTIONS=json.dumps(celery_settings.broker_options),
                   NIMBUS_API_DATABASE_URL=celery_settings.database_url,
                   NIMBUS_API_STATE_DIR=str(celery_settings.state_dir),
                   NIMBUS_API_PLAYBOOKS_DIR=str(celery_settings.playbooks_dir),
                   NIMBUS_API_CANCEL_GRACE=str(celery_settings.cancel_grace),
                   # Each worker "machine" keeps its jobs' private data directories to itself.
                   NIMBUS_API_DATA_DIR=str(tmp_path / ("jobs-" + name)))
        env.update(env_extra)
        log = open(tmp_path / ("%s.log" % name), "w")
        procs.append((subprocess.Popen(
            [sys.executable, WORKER, "worker", "--hostname", "%s@test" % name, "--concurrency", "2",
             "--log-level", "info"], env=env, cwd=str(tmp_path), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True), log))
    # Jobs published before a worker consumes would all go to the first one up: wait for all.
    deadline = time.time() + 180
    for proc, log in procs:
        while "ready." not in Path(log.name).read_text():
            assert proc.poll() is None and time.time() < deadline, \
                "a worker did not start: %s" % Path(log.name).read_text()
            time.sleep(0.2)
    return procs


# Workers told to stop, whose warm shutdown is not known to be over.
STOPPING: list = []


def stop_workers(procs):
    """Start each worker's warm shutdown, all at once, and leave them to it: it takes some 6 s of Celery's
    own timers and pool, which nothing in a test waits for. The next tests run meanwhile (each worker has
    its own broker, database and directories); the test process waits for them all when it ends."""
    for proc, _log in procs:
        if proc.poll() is None:
            proc.terminate()
    STOPPING.extend(procs)


@atexit.register
def wait_for_stopped_workers():
    """A worker whose warm shutdown is not over in 20 s is killed."""
    deadline = time.time() + 20
    for proc, log in STOPPING:
        if proc.poll() is None:
            try:
                proc.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()


@pytest.fixture
def workers(celery_settings, tmp_path):
    procs = start_workers(celery_settings, tmp_path)
    yield [proc for proc, _log in procs]
    stop_workers(procs)


@pytest.fixture
def celery_world(celery_settings, workers):
    with TestClient(bootstrapped_app(celery_settings)) as client:
        cloud = Cloud(client)
        project = cloud.project("proj-a")
        cloud.user("member-a", roles=[(project, "member")])
        yield cloud, project, cloud.token("member-a", "password-123", "proj-a")


def test_workers_on_two_nodes_run_every_job(celery_world, workers, tmp_path):
    cloud, project, token = celery_world
    # Four hosts, two jobs each: the per-target locks serialize each pair, the workers share the rest.
    templates = [template(cloud, name="t%d" % n, playbook="slow.yml", hosts=("node-%d" % n,)) for n in range(4)]
    jobs = [launch(cloud, token, project, t, extra_vars={"seconds": 1}).json()["id"] for t in templates * 2]
    finished = [wait(cloud, token, project, j, timeout=300) for j in jobs]
    assert [j["status"] for j in finished] == ["successful"] * len(jobs)
    assert {j["execution_node"] for j in finished} == {"w1@test", "w2@test"}
    for j in finished:
        node = j["execution_node"].split("@")[0]
        assert (tmp_path / ("jobs-" + node) / j["id"]).is_dir()
    events = cloud.call("GET", "/v1/projects/%s/jobs/%s/events" % (project, jobs[0]), token).json()
    assert events[-1]["event"] == "playbook_on_stats"
    assert all(w.poll() is None for w in workers)


def test_a_job_on_a_worker_is_canceled_from_the_api(celery_world):
    cloud, project, token = celery_world
    slow = template(cloud, name="slow", playbook="slow.yml")
    job_id = launch(cloud, token, project, slow, extra_vars={"seconds": 300}).json()["id"]
    deadline = time.time() + 180
    while cloud.call("GET", "/v1/projects/%s/jobs/%s" % (project, job_id), token).json()["status"] != "running":
        assert time.time() < deadline, "the job never started"
        time.sleep(0.2)
    started = time.time()
    cloud.call("POST", "/v1/projects/%s/jobs/%s/cancel" % (project, job_id), token)
    job = wait(cloud, token, project, job_id, timeout=120)
    assert job["status"] == "canceled" and time.time() - started < 120
