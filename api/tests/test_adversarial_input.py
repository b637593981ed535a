"""Hostile input gets a 4xx, never a 5xx or a service that swells: oversized and deeply nested bodies,
junk paging parameters, NUL characters, broken stored rows; cross-site requests made with the session
cookie are refused; every answer carries the browser security headers; old jobs go away."""

from __future__ import annotations

import json
import resource
import socket
import threading
import time
from datetime import timedelta

import pytest
from conftest import ADMIN_PASSWORD, template
from sqlalchemy import select
from test_jobs import launch, wait

from nimbus_api.models import Job, JobEvent, now

MIB = 1024 * 1024


def raw_request(url, head: bytes, body_chunks=(), timeout=10):
    """Send a request over a plain socket (chunks as they come); the status line and how much was sent."""
    host, port = url.rsplit("/", 1)[-1].split(":")
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    answer = []
    reader = threading.Thread(target=lambda: answer.append(sock.recv(65536)), daemon=True)
    sent = 0
    try:
        sock.sendall(head)
        reader.start()
        for chunk in body_chunks:
            if answer:
                break
            sock.sendall(chunk)
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass
    reader.join(timeout)
    sock.close()
    return (answer[0].split(b"\r\n", 1)[0] if answer else b""), sent


def test_a_declared_oversized_body_is_refused_at_once(live_server):
    head = (b"POST /v1/auth/tokens HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % (200 * MIB))
    # No body follows: an answer at all (before raw_request gives up) means the service did not wait for one.
    status, _sent = raw_request(live_server, head)
    assert status.startswith(b"HTTP/1.1 413")


def test_a_chunked_body_is_cut_at_the_limit_with_bounded_memory(live_server):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    head = (b"POST /v1/auth/tokens HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    piece = b"x" * (256 * 1024)
    chunk = b"%x\r\n%s\r\n" % (len(piece), piece)
    status, sent = raw_request(live_server, head, (chunk for _n in range(800)))  # 200 MiB offered
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert status.startswith(b"HTTP/1.1 413")
    assert sent < 64 * MIB and grown_mib < 64


def test_an_oversized_body_through_the_app(cloud):
    r = cloud.call("POST", "/v1/projects", cloud.admin, content=b"{" + b" " * (2 * MIB) + b"}",
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 413


@pytest.mark.parametrize("depth, refused", [(10, False), (33, True), (100000, True)])
def test_deep_json_is_refused_before_parsing(cloud, depth, refused):
    body = '{"name": %s"deep"%s}' % ("[" * depth, "]" * depth)
    r = cloud.call("POST", "/v1/projects", cloud.admin, content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    assert ("nests deeper" in r.text) == refused
    # Brackets inside strings are data, not nesting.
    r = cloud.call("POST", "/v1/projects", cloud.admin, json={"name": "p-%d" % depth, "description": "[" * 1000})
    assert r.status_code == 201, r.text


JUNK = ["-1", "abc", "1e3", "99999999999999999999999999999999", str(2 ** 31), "", "0x10", "١٢"]


@pytest.mark.parametrize("value", JUNK)
def test_paging_parameters_are_validated(world, value):
    cloud, p, t = world
    tid = template(cloud)
    job_id = launch(cloud, t["member-a"], p["a"], tid, extra_vars={"count": 1}).json()["id"]
    wait(cloud, t["member-a"], p["a"], job_id)
    base = "/v1/projects/%s/jobs" % p["a"]
    calls = [(base, "limit"), (base + "/" + job_id + "/events", "after"), (base + "/" + job_id + "/events", "limit"),
             (base + "/" + job_id + "/stream", "after")]
    for path, name in calls:
        r = cloud.call("GET", path, t["reader-a"], params={name: value})
        assert r.status_code == 422, (path, name, value, r.status_code, r.text)
    for path, name in [(base, "limit"), (base + "/" + job_id + "/events", "limit")]:
        assert cloud.call("GET", path, t["reader-a"], params={name: 0}).status_code == 422
        assert cloud.call("GET", path, t["reader-a"], params={name: 1001}).status_code == 422
        assert cloud.call("GET", path, t["reader-a"], params={name: 1000}).status_code == 200
    r = cloud.call("GET", base + "/" + job_id + "/stream", t["reader-a"], headers={"Last-Event-ID": value.encode()})
    assert r.status_code == (200 if value == "" else 400), (value, r.status_code, r.text)


def test_nul_characters_are_refused(world):
    cloud, p, t = world
    body = {"name": "nul", "playbook": "slow\u0000.yml", "inventory": "all: {}"}
    assert cloud.call("POST", "/v1/job_templates", cloud.admin, json=body).status_code == 422
    assert cloud.call("POST", "/v1/projects", cloud.admin, json={"name": "nul", "description": "a\u0000b"}).status_code == 422
    assert cloud.call("GET", "/v1/projects/%s/jobs" % p["a"], t["reader-a"],
                      params={"status": "x\u0000"}).status_code == 422
    # An escaped backslash before "u0000" is not a NUL.
    r = cloud.call("POST", "/v1/projects", cloud.admin, content='{"name": "ok", "description": "a\\\\u0000b"}',
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 201, r.text
    assert r.json()["description"] == "a\\u0000b"


@pytest.mark.parametrize("stored", ["{not json", '{"a": NaN}', "[1, 2]", "null", '{"s": "\\ud800"}',
                                    '{"a": %s1%s}' % ("[" * 5000, "]" * 5000)])
def test_a_stored_job_with_broken_extra_vars_does_not_break_the_list(world, app, stored):
    cloud, p, t = world
    tid = template(cloud)
    good = launch(cloud, t["member-a"], p["a"], tid, extra_vars={"count": 1}).json()["id"]
    wait(cloud, t["member-a"], p["a"], good)
    with app.state.sessions() as db:
        bad = Job(template_id=tid, project_id=p["a"], launched_by="x", status="failed", extra_vars=stored)
        db.add(bad)
        db.add(JobEvent(job_id=good, seq=10 ** 6, event="odd", data=stored))
        db.commit()
        bad_id = bad.id
    listed = cloud.call("GET", "/v1/projects/%s/jobs" % p["a"], t["reader-a"])
    assert listed.status_code == 200, listed.text
    by_id = {j["id"]: j for j in listed.json()}
    assert by_id[bad_id]["extra_vars"] == {} and by_id[bad_id]["extra_vars_unreadable"] is True
    assert by_id[good]["extra_vars"] == {"count": 1} and by_id[good]["extra_vars_unreadable"] is False
    assert cloud.call("GET", "/v1/projects/%s/jobs/%s" % (p["a"], bad_id), t["reader-a"]).status_code == 200
    relaunched = cloud.call("POST", "/v1/projects/%s/jobs/%s/relaunch" % (p["a"], bad_id), t["member-a"])
    assert relaunched.status_code in (409, 422), relaunched.text
    events = cloud.call("GET", "/v1/projects/%s/jobs/%s/events" % (p["a"], good), t["reader-a"],
                        params={"limit": 1000})
    assert events.status_code == 200 and events.json()[-1]["data"] == {}
    assert cloud.call("GET", "/v1/projects/%s/jobs/%s/stream" % (p["a"], good), t["reader-a"]).status_code == 200


def test_the_cloud_admin_deletes_finished_jobs(world, app, settings):
    cloud, p, t = world
    tid = template(cloud, name="slow", playbook="slow.yml")
    done = launch(cloud, t["member-a"], p["a"], tid, extra_vars={"seconds": 0}).json()["id"]
    wait(cloud, t["member-a"], p["a"], done)
    assert (settings.data_dir / done).is_dir()
    running = launch(cloud, t["member-a"], p["a"], tid, extra_vars={"seconds": 30}).json()["id"]
    path = "/v1/projects/%s/jobs/%s" % (p["a"], done)
    assert cloud.call("DELETE", path, t["member-a"]).status_code == 403
    assert cloud.call("DELETE", "/v1/projects/%s/jobs/%s" % (p["a"], running), cloud.admin).status_code == 409
    assert cloud.call("DELETE", path, cloud.admin).status_code == 204
    assert cloud.call("GET", path, cloud.admin).status_code == 404
    assert cloud.call("DELETE", path, cloud.admin).status_code == 404
    with app.state.sessions() as db:
        assert db.scalars(select(JobEvent).where(JobEvent.job_id == done)).all() == []
    assert not (settings.data_dir / done).exists()
    cloud.call("POST", "/v1/projects/%s/jobs/%s/cancel" % (p["a"], running), t["member-a"])
    wait(cloud, t["member-a"], p["a"], running)


def test_finished_jobs_older_than_the_retention_are_deleted(world, app, settings):
    cloud, p, t = world
    tid = template(cloud)
    ids = [launch(cloud, t["member-a"], p["a"], tid, extra_vars={"count": 1}).json()["id"] for _n in range(3)]
    for job_id in ids:
        wait(cloud, t["member-a"], p["a"], job_id)
    old, recent, unfinished_old = ids[0], ids[1], ids[2]
    with app.state.sessions() as db:
        db.get(Job, old).finished_at = now() - timedelta(days=91)
        job = db.get(Job, unfinished_old)
        job.status, job.created_at, job.finished_at = "running", now() - timedelta(days=200), None
        job.heartbeat_at = now()
        db.commit()
    runner = app.state.runner
    keep_forever = runner.settings
    runner.settings = settings.model_copy(update={"job_retention_days": 0})
    assert runner.expire() == 0
    runner.settings = keep_forever
    assert runner.expire() == 1
    with app.state.sessions() as db:
        assert db.get(Job, old) is None and db.get(Job, recent) is not None and db.get(Job, unfinished_old)
        assert db.scalars(select(JobEvent.id).where(JobEvent.job_id == old)).all() == []
        assert db.scalars(select(JobEvent.id).where(JobEvent.job_id == recent)).all() != []
        db.get(Job, unfinished_old).status = "failed"
        db.commit()
    assert not (settings.data_dir / old).exists() and (settings.data_dir / recent).is_dir()
    # The reaper expires jobs at most once an hour: a recent run means the next reap leaves them.
    runner.expired_at = time.monotonic()
    runner.reap()
    with app.state.sessions() as db:
        assert db.get(Job, unfinished_old) is not None
    runner.expired_at = float("-inf")
    runner.reap()
    with app.state.sessions() as db:
        assert db.get(Job, unfinished_old) is None


SAME = "http://testserver"


def cookie_login(client, origin=SAME):
    headers = {"Origin": origin} if origin else {}
    return client.post("/ui/session", json={"user": "admin", "password": ADMIN_PASSWORD, "project": "admin"},
                       headers=headers)


def test_cross_site_requests_with_the_session_cookie_are_refused(cloud, client):
    assert cookie_login(client, "https://evil.example").status_code == 403
    assert "nimbus_token" not in client.cookies
    assert cookie_login(client, origin=None).status_code == 200  # a client that is no browser
    assert cookie_login(client).status_code == 200 and "nimbus_token" in client.cookies
    made = iter(range(100))

    def post(headers):
        return client.post("/v1/projects", json={"name": "p%d" % next(made)}, headers=headers)

    assert post({"Origin": "https://evil.example"}).status_code == 403
    assert post({"Origin": "null"}).status_code == 403
    assert post({"Origin": "http://testserver:8080"}).status_code == 403
    assert post({"Referer": "https://evil.example/ui/"}).status_code == 403
    assert post({}).status_code == 403  # neither header: refused too
    assert post({"Origin": SAME}).status_code == 201
    assert post({"Referer": SAME + "/ui/"}).status_code == 201
    # Reads are not state-changing; a token in a header is not the cookie, whatever the origin.
    assert client.get("/v1/projects", headers={"Origin": "https://evil.example"}).status_code == 200
    assert post({"Origin": "https://evil.example", "Authorization": "Bearer " + cloud.admin}).status_code == 201
    assert post({"Origin": "https://evil.example", "X-Auth-Token": cloud.admin}).status_code == 201
    assert client.delete("/ui/session", headers={"Origin": "https://evil.example"}).status_code == 403
    assert client.delete("/ui/session", headers={"Origin": SAME}).status_code == 204


@pytest.mark.parametrize("path", ["/ui/", "/ui/login", "/ui/static/app.js", "/healthz", "/v1/projects", "/nowhere"])
def test_every_answer_carries_the_security_headers(client, path):
    r = client.get(path)
    assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "same-origin"
    csp = r.headers["content-security-policy"]
    for directive in ("default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'",
                      "base-uri 'none'", "form-action 'self'", "object-src 'none'"):
        assert directive in csp
    assert "unsafe-inline" not in csp


def test_the_refusals_carry_them_too(client):
    r = client.post("/v1/auth/tokens", content=b"x" * (2 * MIB), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.headers["x-frame-options"] == "DENY"
    assert json.loads(r.text)["detail"].startswith("the request body is larger")
