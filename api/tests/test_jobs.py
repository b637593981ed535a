"""Job templates, launches, events and the live stream, with real ansible-playbook runs on local hosts."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from conftest import credential, template

SENTINEL = "sentinel-Vq7-never-stored-9Kd"


def launch(cloud, token, project, template_id, **body):
    return cloud.call("POST", "/v1/projects/%s/job_templates/%s/launch" % (project, template_id), token, json=body)


def wait(cloud, token, project, job_id, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = cloud.call("GET", "/v1/projects/%s/jobs/%s" % (project, job_id), token).json()
        if job["status"] in ("successful", "failed", "canceled", "error"):
            return job
        time.sleep(0.2)
    raise AssertionError("job %s still %s" % (job_id, job["status"]))


def test_launch_runs_the_playbook_and_records_ordered_events(world):
    cloud, p, t = world
    tid = template(cloud, hosts=("node-1", "node-2"))
    r = launch(cloud, t["member-a"], p["a"], tid, extra_vars={"count": 4})
    assert r.status_code == 201, r.text
    job = wait(cloud, t["member-a"], p["a"], r.json()["id"])
    assert job["status"] == "successful" and job["rc"] == 0
    events = cloud.call("GET", "/v1/projects/%s/jobs/%s/events" % (p["a"], job["id"]), t["reader-a"],
                        params={"limit": 1000}).json()
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert events[0]["event"] == "playbook_on_start" and events[-1]["event"] == "playbook_on_stats"
    assert any("project %s on node-1" % p["a"] in e["stdout"] for e in events)
    only = cloud.call("GET", "/v1/projects/%s/jobs/%s/events" % (p["a"], job["id"]), t["reader-a"],
                      params={"host": "node-2", "task": "Count"}).json()
    assert len(only) >= 4 and {e["host"] for e in only} == {"node-2"} and {e["task"] for e in only} == {"Count"}
    page = cloud.call("GET", "/v1/projects/%s/jobs/%s/events" % (p["a"], job["id"]), t["reader-a"],
                      params={"after": seqs[2], "limit": 3}).json()
    assert [e["seq"] for e in page] == seqs[3:6]


def test_failed_playbook_is_a_failed_job(world):
    cloud, p, t = world
    tid = template(cloud, name="fail", playbook="fail.yml", schema={"type": "object"})
    job = wait(cloud, t["member-a"], p["a"], launch(cloud, t["member-a"], p["a"], tid).json()["id"])
    assert job["status"] == "failed" and job["rc"] != 0


def test_the_stream_loses_nothing_and_resumes(world):
    cloud, p, t = world
    tid = template(cloud)
    job_id = launch(cloud, t["member-a"], p["a"], tid, extra_vars={"count": 5}).json()["id"]
    r = cloud.call("GET", "/v1/projects/%s/jobs/%s/stream" % (p["a"], job_id), t["reader-a"])
    assert r.headers["content-type"].startswith("text/event-stream")
    blocks = [b for b in r.text.split("\n\n") if b.strip()]
    ids = [int(line[4:]) for b in blocks for line in b.splitlines() if line.startswith("id: ")]
    assert blocks[-1].startswith("event: end") and '"successful"' in blocks[-1]
    stored = [e["seq"] for e in cloud.call("GET", "/v1/projects/%s/jobs/%s/events" % (p["a"], job_id), t["reader-a"],
                                           params={"limit": 1000}).json()]
    assert ids == stored
    resumed = cloud.call("GET", "/v1/projects/%s/jobs/%s/stream" % (p["a"], job_id), t["reader-a"],
                         headers={"Last-Event-ID": str(ids[4])})
    again = [int(line[4:]) for line in resumed.text.splitlines() if line.startswith("id: ")]
    assert again == ids[5:]


def test_idempotency_key_returns_the_same_job(world):
    cloud, p, t = world
    tid = template(cloud)
    first = launch(cloud, t["member-a"], p["a"], tid, idempotency_key="deploy-42").json()
    second = launch(cloud, t["member-a"], p["a"], tid, idempotency_key="deploy-42").json()
    assert first["id"] == second["id"]
    wait(cloud, t["member-a"], p["a"], first["id"])


@pytest.mark.parametrize("extra_vars, message", [
    ({"count": "many"}, "extra_vars"),
    ({"count": 500}, "extra_vars"),
    ({"surprise": 1}, "extra_vars"),
    ({"nimbus_project": "other"}, "extra_vars"),
])
def test_extra_vars_are_validated(world, extra_vars, message):
    cloud, p, t = world
    tid = template(cloud, schema={"type": "object"} if "nimbus_project" in extra_vars else None)
    r = launch(cloud, t["member-a"], p["a"], tid, extra_vars=extra_vars)
    assert r.status_code == 422 and message in r.text


def test_who_may_launch_and_see(world):
    cloud, p, t = world
    tid = template(cloud, allowed_projects=[])
    assert launch(cloud, t["reader-a"], p["a"], tid).status_code == 403
    job_id = launch(cloud, t["member-a"], p["a"], tid).json()["id"]
    assert cloud.call("GET", "/v1/projects/%s/jobs/%s" % (p["a"], job_id), t["member-b"]).status_code == 403
    assert cloud.call("GET", "/v1/projects/%s/jobs/%s" % (p["b"], job_id), t["member-b"]).status_code == 404
    assert cloud.call("GET", "/v1/projects/%s/jobs" % p["b"], t["member-b"]).json() == []
    only_b = template(cloud, name="only-b", allowed_projects=[p["b"]])
    assert launch(cloud, t["member-a"], p["a"], only_b).status_code == 403
    names = [x["name"] for x in cloud.call("GET", "/v1/job_templates", t["member-a"]).json()]
    assert "only-b" not in names and "chatty" in names
    wait(cloud, t["member-a"], p["a"], job_id)


def test_cancel_and_relaunch(world):
    cloud, p, t = world
    tid = template(cloud, name="slow", playbook="slow.yml")
    job_id = launch(cloud, t["member-a"], p["a"], tid, extra_vars={"seconds": 300}).json()["id"]
    deadline = time.time() + 120
    while cloud.call("GET", "/v1/projects/%s/jobs/%s" % (p["a"], job_id), t["member-a"]).json()["status"] != "running":
        assert time.time() < deadline
        time.sleep(0.1)
    assert cloud.call("POST", "/v1/projects/%s/jobs/%s/cancel" % (p["a"], job_id), t["reader-a"]).status_code == 403
    cloud.call("POST", "/v1/projects/%s/jobs/%s/cancel" % (p["a"], job_id), t["member-a"])
    assert wait(cloud, t["member-a"], p["a"], job_id)["status"] == "canceled"
    again = cloud.call("POST", "/v1/projects/%s/jobs/%s/relaunch" % (p["a"], job_id), t["member-a"])
    assert again.status_code == 201 and again.json()["relaunch_of"] == job_id
    assert again.json()["extra_vars"] == {"seconds": 300}
    cloud.call("POST", "/v1/projects/%s/jobs/%s/cancel" % (p["a"], again.json()["id"]), t["member-a"])
    assert wait(cloud, t["member-a"], p["a"], again.json()["id"])["status"] == "canceled"


def test_two_jobs_never_converge_one_host_at_once(world):
    cloud, p, t = world
    tid = template(cloud, name="slow", playbook="slow.yml", hosts=("shared-host",))
    ids = [launch(cloud, t["member-a"], p["a"], tid, extra_vars={"seconds": 1}).json()["id"] for attempt in range(2)]
    jobs = sorted((wait(cloud, t["member-a"], p["a"], i) for i in ids), key=lambda j: j["started_at"])
    assert [j["status"] for j in jobs] == ["successful", "successful"]
    assert jobs[1]["started_at"] >= jobs[0]["finished_at"]


def test_a_secret_credential_reaches_the_playbook_and_nothing_else(world, app, settings, caplog):
    cloud, p, t = world
    cred = credential(cloud, t["member-a"], p["a"], "sentinel", env={"SENTINEL_TOKEN": SENTINEL})
    assert cred.status_code == 201 and SENTINEL not in cred.text
    tid = template(cloud)
    digest = hashlib.sha256(SENTINEL.encode()).hexdigest()
    job_id = launch(cloud, t["member-a"], p["a"], tid, extra_vars={"secret_sha256": digest},
                    credentials=[cred.json()["id"]]).json()["id"]
    job = wait(cloud, t["member-a"], p["a"], job_id)
    assert job["status"] == "successful"  # the assert task saw the secret in the environment
    events = cloud.call("GET", "/v1/projects/%s/jobs/%s/events" % (p["a"], job_id), t["member-a"],
                        params={"limit": 1000}).text
    assert "leak ********" in events and SENTINEL not in events
    stream = cloud.call("GET", "/v1/projects/%s/jobs/%s/stream" % (p["a"], job_id), t["member-a"]).text
    assert SENTINEL not in stream
    for path in settings.data_dir.rglob("*"):
        if path.is_file():
            assert SENTINEL.encode() not in path.read_bytes(), path
    db_file = Path(make_url(settings.database_url).database)
    stored = b"".join(Path(str(db_file) + suffix).read_bytes() for suffix in ("", "-wal", "-shm")
                      if Path(str(db_file) + suffix).exists())
    # The job's own row is there in the clear: these are the bytes the service stored, and the secret is not in them.
    assert db_file.exists() and job_id.encode() in stored
    assert SENTINEL.encode() not in stored
    assert SENTINEL not in caplog.text
    command = json.loads(next(settings.data_dir.rglob("command")).read_text())
    assert SENTINEL not in json.dumps(command)
    assert not list((settings.data_dir / ".secrets").glob("*"))


def test_a_hundred_concurrent_launches_all_complete(world):
    import concurrent.futures

    cloud, p, t = world
    templates = [template(cloud, name="t%d" % n, hosts=("host-%d" % n,), schema={"type": "object"})
                 for n in range(4)]

    def go(n):
        r = launch(cloud, t["member-a"], p["a"], templates[n % 4], extra_vars={}, idempotency_key="k%d" % n)
        assert r.status_code == 201, r.text
        return r.json()["id"]

    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        ids = list(pool.map(go, range(100)))
    assert len(set(ids)) == 100
    statuses = [wait(cloud, t["member-a"], p["a"], job_id, timeout=600)["status"] for job_id in ids]
    assert statuses == ["successful"] * 100


def test_credentials_listed_by_name_and_deleted(world):
    cloud, p, t = world
    path = "/v1/projects/%s/credentials" % p["a"]
    made = credential(cloud, t["member-a"], p["a"], "deploy", env={"API_TOKEN": "s3cr3t-x"})
    assert made.status_code == 201 and made.json()["variables"] == ["f_api_token"]
    cred_id = made.json()["id"]
    listed = cloud.call("GET", path, t["reader-a"]).json()
    assert [c["name"] for c in listed] == ["deploy"] and "s3cr3t-x" not in str(listed)
    # Another project's member sees none of it and cannot delete it.
    assert cloud.call("GET", path, t["member-b"]).status_code == 403
    assert cloud.call("DELETE", "%s/%s" % (path, cred_id), t["member-b"]).status_code == 403
    assert cloud.call("DELETE", "%s/%s" % (path, cred_id), t["reader-a"]).status_code == 403
    assert cloud.call("DELETE", "%s/%s" % (path, cred_id), t["member-a"]).status_code == 204
    assert cloud.call("GET", path, t["member-a"]).json() == []
    assert cloud.call("DELETE", "%s/%s" % (path, cred_id), t["member-a"]).status_code == 404
    # A launch naming the deleted credential is refused before any job exists.
    tid = template(cloud, name="uses-cred")
    r = launch(cloud, t["member-a"], p["a"], tid, credentials=[cred_id])
    assert r.status_code == 404 and cloud.call("GET", "/v1/projects/%s/jobs" % p["a"], t["member-a"]).json() == []


def test_a_template_names_credentials_each_project_provides(world):
    cloud, p, t = world
    tid = template(cloud, name="needs-token", credentials=["deploy-token"])
    assert cloud.call("GET", "/v1/job_templates/%s" % tid, cloud.admin).json()["credentials"] == ["deploy-token"]
    digest = {}
    # Without the credential in the project, the launch is refused and no job exists.
    r = launch(cloud, t["member-a"], p["a"], tid)
    assert r.status_code == 422 and "deploy-token" in r.json()["detail"]
    assert cloud.call("GET", "/v1/projects/%s/jobs" % p["a"], t["member-a"]).json() == []
    # Each project's own credential of that name reaches its own jobs.
    for project, token in (("a", t["member-a"]), ("b", t["member-b"])):
        value = "token-of-%s-%s" % (project, SENTINEL)
        digest[project] = hashlib.sha256(value.encode()).hexdigest()
        made = credential(cloud, token, p[project], "deploy-token", env={"SENTINEL_TOKEN": value})
        assert made.status_code == 201, made.text
        job = launch(cloud, token, p[project], tid, extra_vars={"secret_sha256": digest[project]}).json()
        assert wait(cloud, token, p[project], job["id"])["status"] == "successful"
    assert cloud.call("POST", "/v1/job_templates", cloud.admin, json={
        "name": "bad-cred", "playbook": "chatty.yml", "inventory": "all: {}", "credentials": ["no spaces"]}
    ).status_code == 422
