"""The two command lines: `nimbus-api` (service administration) and `nimbus` (the client), run for real:
the client talks to the service over a loopback socket and follows a real job's SSE stream."""

from __future__ import annotations

import io
import json
import re
import stat

import pytest
from conftest import template

from nimbus_api import cli, client
from nimbus_api.openstack import runbooks

RUNBOOK_PLAYBOOKS = sorted({t["playbook"] for t in runbooks.TEMPLATES.values()})


@pytest.fixture
def admin_cli(settings, monkeypatch):
    def run(*argv, stdin=None):
        if stdin is not None:
            monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        monkeypatch.setattr(cli, "get_settings", lambda: settings)
        return cli.server_main(list(argv))
    return run


def last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_migrate_and_bootstrap_are_idempotent(admin_cli, capsys, monkeypatch):
    admin_cli("migrate")
    assert last_json(capsys)["changed"] is True
    admin_cli("migrate")
    assert last_json(capsys)["changed"] is False

    admin_cli("bootstrap", "--password-stdin", stdin="first-password-1\n")
    first = last_json(capsys)
    assert first["changed"] is True and first["user"] == "admin"
    admin_cli("bootstrap", "--password-stdin", stdin="first-password-1\n")
    assert last_json(capsys)["changed"] is False
    # A new password is a change; from the environment works too.
    monkeypatch.setenv("NIMBUS_API_ADMIN_PASSWORD", "second-password-2")
    admin_cli("bootstrap")
    again = last_json(capsys)
    assert again["changed"] is True and again["user_id"] == first["user_id"]


def test_bootstrap_migrates_and_registers_the_identity_endpoint_once(admin_cli, capsys):
    argv = ("bootstrap", "--password-stdin", "--migrate", "--public-url", "http://203.0.113.5:8080")
    admin_cli(*argv, stdin="first-password-1\n")
    first = last_json(capsys)
    assert first["changed"] is True and first["migration"]["changed"] is True
    admin_cli(*argv, stdin="first-password-1\n")
    again = last_json(capsys)
    assert again["changed"] is False and again["migration"]["changed"] is False
    # A moved endpoint is updated in place, not added beside the old one.
    admin_cli(*argv[:-1], "https://cloud.example.test/", stdin="first-password-1\n")
    assert last_json(capsys)["changed"] is True
    from sqlalchemy import select

    from nimbus_api.models import Endpoint, Service
    with cli._sessions(cli.get_settings())() as db:
        services = db.scalars(select(Service).order_by(Service.name)).all()
        assert [(s.name, s.type) for s in services] == [("cinder", "block-storage"), ("glance", "image"),
                                                        ("keystone", "identity"), ("neutron", "network"),
                                                        ("nova", "compute")]
        assert sorted((e.interface, e.url) for e in db.scalars(select(Endpoint))) == [
            ("public", "https://cloud.example.test/compute/v2.1"), ("public", "https://cloud.example.test/identity/v3"),
            ("public", "https://cloud.example.test/image"), ("public", "https://cloud.example.test/networking"),
            ("public", "https://cloud.example.test/volume/v3")]


def test_bootstrap_takes_over_the_identity_service_registered_before_keystone(admin_cli, capsys):
    admin_cli("migrate")
    from sqlalchemy import select

    from nimbus_api.models import Endpoint, Service
    with cli._sessions(cli.get_settings())() as db:
        db.add(Service(id="old", name="nimbus", type="identity"))
        db.flush()
        db.add(Endpoint(service_id="old", interface="public", url="http://203.0.113.5:8080"))
        db.commit()
    admin_cli("bootstrap", "--password-stdin", "--public-url", "http://203.0.113.5:8080", stdin="first-password-1\n")
    assert last_json(capsys)["changed"] is True
    with cli._sessions(cli.get_settings())() as db:
        assert [(s.id, s.name) for s in db.scalars(select(Service).where(Service.type == "identity"))] == \
            [("old", "keystone")]
        assert sorted(e.url for e in db.scalars(select(Endpoint))) == [
            "http://203.0.113.5:8080/compute/v2.1", "http://203.0.113.5:8080/identity/v3",
            "http://203.0.113.5:8080/image", "http://203.0.113.5:8080/networking",
            "http://203.0.113.5:8080/volume/v3"]


def test_runbooks_registers_the_templates_once(admin_cli, capsys, tmp_path, settings):
    admin_cli("migrate")
    with pytest.raises(SystemExit) as missing:
        admin_cli("runbooks", "--inventory", "/dev/null")
    assert ", ".join(RUNBOOK_PLAYBOOKS) + " not in the playbooks directory" in str(missing.value)
    for name in RUNBOOK_PLAYBOOKS:
        (settings.playbooks_dir / name).write_text("- hosts: all\n  tasks: []\n")
    inventory, extra = tmp_path / "hosts.yml", tmp_path / "vars.yml"
    inventory.write_text("compute:\n  hosts:\n    hv1:\n")
    extra.write_text("runbook_kernels: {}\n")
    argv = ("runbooks", "--inventory", str(inventory), "--vars", str(extra))
    admin_cli(*argv)
    first = last_json(capsys)
    assert first["changed"] is True and sorted(first["templates"]) == sorted(runbooks.TEMPLATES)
    assert "nimbus.server_create" in first["templates"] and "nimbus.network_create" in first["templates"]
    # A project's members launch its runbooks; adding a compute host is the cloud admin's.
    from sqlalchemy import select

    from nimbus_api.models import JobTemplate

    with cli._sessions(cli.get_settings())() as db:
        roles = {t.name: t.launch_role for t in db.scalars(select(JobTemplate))}
    assert roles.pop("nimbus.compute_host_add") == "admin"
    assert set(roles.values()) == {"member"}
    admin_cli(*argv)
    assert last_json(capsys) == {"changed": False, "templates": []}
    inventory.write_text("compute:\n  hosts:\n    hv1:\n    hv2:\n")
    admin_cli(*argv)
    assert len(last_json(capsys)["templates"]) == len(runbooks.TEMPLATES)


@pytest.mark.parametrize("inventory, extra, message", [
    ("{}\n", "", "names no host"),
    ("compute: [\n", "", "not a YAML inventory"),
    ("compute:\n  hosts:\n    hv1:\n", "ansible_connection: local\n", "reserved"),
    ("compute:\n  hosts:\n    hv1:\n", "- a list\n", "YAML mapping"),
])
def test_runbooks_refuses_what_it_cannot_register(admin_cli, capsys, tmp_path, settings, inventory, extra, message):
    admin_cli("migrate")
    for name in RUNBOOK_PLAYBOOKS:
        (settings.playbooks_dir / name).write_text("- hosts: all\n  tasks: []\n")
    (tmp_path / "hosts.yml").write_text(inventory)
    (tmp_path / "vars.yml").write_text(extra or "{}\n")
    with pytest.raises(SystemExit) as refused:
        admin_cli("runbooks", "--inventory", str(tmp_path / "hosts.yml"), "--vars", str(tmp_path / "vars.yml"))
    assert message in str(refused.value)


@pytest.mark.parametrize("url", ["", "file:///etc/passwd", "javascript:alert(1)", "http://" + "a" * 300])
def test_bootstrap_refuses_a_bad_public_url_before_changing_anything(admin_cli, capsys, url):
    admin_cli("migrate")
    capsys.readouterr()
    with pytest.raises(SystemExit, match="public-url"):
        admin_cli("bootstrap", "--password-stdin", "--public-url", url, stdin="first-password-1\n")
    from sqlalchemy import select

    from nimbus_api.models import Service, User
    with cli._sessions(cli.get_settings())() as db:
        assert db.scalars(select(User)).all() == [] and db.scalars(select(Service)).all() == []


def test_bootstrap_refuses_a_missing_password(admin_cli, monkeypatch):
    monkeypatch.delenv("NIMBUS_API_ADMIN_PASSWORD", raising=False)
    with pytest.raises(SystemExit, match="admin password"):
        admin_cli("bootstrap")
    with pytest.raises(SystemExit, match="admin password"):
        admin_cli("bootstrap", "--password-stdin", stdin="short\n")


def test_keys_rotate_and_retire(admin_cli, capsys):
    admin_cli("migrate")
    admin_cli("keys", "rotate")
    first = last_json(capsys)["primary"]
    admin_cli("keys", "rotate")
    rotated = last_json(capsys)
    assert rotated["active"][0] == rotated["primary"] != first and first in rotated["active"]
    admin_cli("keys", "retire")
    retired = last_json(capsys)
    assert retired["changed"] is True and first in retired["retired"] and retired["active"] == [rotated["primary"]]
    admin_cli("keys", "retire")
    assert last_json(capsys)["changed"] is False


@pytest.fixture
def nimbus(live_server, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setattr(client, "CONFIG", tmp_path / "config" / "nimbus" / "auth.json")
    monkeypatch.delenv("NIMBUS_TOKEN", raising=False)
    monkeypatch.delenv("NIMBUS_URL", raising=False)

    def run(*argv, stdin=None):
        if stdin is not None:
            monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        return client.main(list(argv))
    run.url = live_server
    return run


def test_login_keeps_the_token_not_the_password(nimbus, world, capsys):
    assert nimbus("login", "--url", nimbus.url, "--user", "member-a", "--project", "proj-a",
                  "--password-stdin", stdin="password-123\n") == 0
    saved = client.CONFIG
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert "password-123" not in saved.read_text()
    assert json.loads(saved.read_text())["project_id"] == world[1]["a"]
    assert "logged in as member-a" in capsys.readouterr().out
    assert nimbus("login", "--url", nimbus.url, "--user", "member-a", "--password-stdin", stdin="wrong\n") == 2
    assert "401" in capsys.readouterr().err


def test_launch_follow_streams_the_job_to_its_end(nimbus, world, capsys):
    cloud = world[0]
    template(cloud, name="chatty", allowed_projects=[world[1]["a"]])
    template(cloud, name="breaks", playbook="fail.yml")
    nimbus("login", "--url", nimbus.url, "--user", "member-a", "--project", "proj-a", "--password-stdin",
           stdin="password-123\n")
    capsys.readouterr()

    assert nimbus("templates") == 0
    listed = capsys.readouterr().out
    assert "chatty" in listed and "breaks" in listed

    assert nimbus("launch", "chatty", "-e", "count=4", "--follow") == 0
    out, err = capsys.readouterr()
    # Every line of the loop arrived, in order, and the end status was reported.
    # The stdout callback's format depends on the Ansible configuration: match the message either way.
    positions = [re.search(r"msg\W+line %d\b" % n, out).start() for n in range(4)]
    assert positions == sorted(positions)
    assert "PLAY RECAP" in out and "successful" in err
    job_id = err.split()[1]

    assert nimbus("launch", "breaks", "--follow") == 1
    assert "failed" in capsys.readouterr().err

    assert nimbus("--json", "events", job_id, "--host", "node-1") == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert events and all(e["host"] == "node-1" for e in events)
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)

    assert nimbus("--json", "jobs", "--status", "successful") == 0
    assert [j["id"] for j in json.loads(capsys.readouterr().out)] == [job_id]

    # A validation error is a clear message and exit 2, not a traceback.
    assert nimbus("launch", "chatty", "-e", "count=many") == 2
    assert "count" in capsys.readouterr().err


def test_logout_revokes_the_token(nimbus, world, capsys):
    nimbus("login", "--url", nimbus.url, "--user", "reader-a", "--project", "proj-a", "--password-stdin",
           stdin="password-123\n")
    token = json.loads(client.CONFIG.read_text())["token"]
    assert nimbus("logout") == 0
    assert not client.CONFIG.exists()
    r = world[0].call("GET", "/v1/auth/tokens", token)
    assert r.status_code == 401
    assert nimbus("templates") == 2
    assert "not logged in" in capsys.readouterr().err


def test_a_reader_cannot_launch_from_the_cli(nimbus, world, capsys):
    template(world[0], name="chatty")
    nimbus("login", "--url", nimbus.url, "--user", "reader-a", "--project", "proj-a", "--password-stdin",
           stdin="password-123\n")
    # Templates a token may not launch are not even listed to it.
    assert nimbus("templates") == 0
    assert "chatty" not in capsys.readouterr().out
    assert nimbus("launch", "chatty") == 2
    assert "no job template chatty" in capsys.readouterr().err


GOOD_SETTINGS = ("NIMBUS_API_DATABASE_URL='mysql+pymysql://nimbus:p4ss-w0rd@db/nimbus'\nNIMBUS_API_QUEUE=celery\n"
                 "NIMBUS_API_PORT=8080\nNIMBUS_API_SECRET_KEY='k3y-that-is-secret'\nNIMBUS_API_MAX_BODY_BYTES=4096\n")


def test_check_settings_accepts_what_the_service_starts_with(monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO(GOOD_SETTINGS))
    monkeypatch.setattr(cli, "get_settings", lambda: pytest.fail("the host's own settings are not read"))
    assert cli.server_main(["check-settings"]) == 0
    assert last_json(capsys) == {"changed": False, "problems": []}


@pytest.mark.parametrize("line, problem", [
    ("NIMBUS_API_PORT=80x", "NIMBUS_API_PORT: Input should be a valid integer"),
    ("NIMBUS_API_QUEUE='k3y-that-is-secret'", "NIMBUS_API_QUEUE: Input should be 'inprocess' or 'celery'"),
    ("NIMBUS_API_LOCKOUT_DURATION=0", "NIMBUS_API_LOCKOUT_DURATION: Input should be greater than or equal to 1"),
    ("NIMBUS_API_BROKER_OPTIONS='{not json'", "NIMBUS_API_BROKER_OPTIONS: "),
    ("NIMBUS_API_TOKN_TTL=60", "NIMBUS_API_TOKN_TTL: not a setting of the service"),
    ("PATH=/tmp", "PATH: not a setting of the service"),
])
def test_check_settings_names_each_problem_and_never_a_value(monkeypatch, capsys, line, problem):
    # The process's own NIMBUS_API_* must not mask a problem in the file.
    monkeypatch.setenv("NIMBUS_API_PORT", "8080")
    monkeypatch.setattr("sys.stdin", io.StringIO(GOOD_SETTINGS + line + "\n"))
    assert cli.server_main(["check-settings"]) == 1
    out = capsys.readouterr().out
    problems = json.loads(out)["problems"]
    assert len(problems) == 1 and problems[0].startswith(problem)
    assert "k3y-that-is-secret" not in out and "p4ss-w0rd" not in out and "80x" not in out and "not json" not in out


def test_demo_makes_the_self_service_project_once(admin_cli, capsys):
    admin_cli("migrate")
    with pytest.raises(SystemExit) as early:
        admin_cli("demo", stdin="demo-password-1\n")
    assert "run nimbus-api bootstrap first" in str(early.value)
    admin_cli("bootstrap", "--password-stdin", stdin="first-password-1\n")
    capsys.readouterr()
    admin_cli("demo", stdin="demo-password-1\n")
    first = last_json(capsys)
    assert first["changed"] is True and "flavor m1.nano" in first["made"] and "member role" in first["made"]
    admin_cli("demo", stdin="demo-password-1\n")
    assert last_json(capsys)["made"] == []
    admin_cli("demo", stdin="demo-password-2\n")
    assert last_json(capsys)["made"] == ["password of demo"]
    with pytest.raises(SystemExit):
        admin_cli("demo", stdin="short\n")


SWIFT_URL = "http://203.0.113.7:8080/v1/AUTH_$(project_id)s"
SWIFT = ("service", "--name", "swift", "--type", "object-store", "--description", "nimbus.cloud object storage",
         "--url", "public=" + SWIFT_URL, "--url", "internal=http://10.0.0.7:8080/v1/AUTH_$(project_id)s",
         "--user", "swift", "--password-stdin")


def swift_records():
    from sqlalchemy import select

    from nimbus_api.models import Endpoint, Service, User
    with cli._sessions(cli.get_settings())() as db:
        endpoints = sorted((e.interface, e.url) for e in db.scalars(
            select(Endpoint).join(Service, Service.id == Endpoint.service_id).where(Service.name == "swift")))
        return endpoints, db.scalar(select(User).where(User.name == "swift"))


def test_service_registers_its_endpoints_and_its_user_once(admin_cli, capsys, settings):
    from nimbus_api import identity
    from nimbus_api.security import verify_secret

    admin_cli("bootstrap", "--password-stdin", "--migrate", stdin="first-password-1\n")
    capsys.readouterr()
    # --check answers as the real run would and keeps nothing.
    admin_cli(*SWIFT, "--check", stdin="swift-password-1\n")
    predicted = last_json(capsys)
    assert predicted["changed"] is True and swift_records() == ([], None)
    admin_cli(*SWIFT, stdin="swift-password-1\n")
    first = last_json(capsys)
    assert {k: v for k, v in first.items() if not k.endswith("_id")} == {
        k: v for k, v in predicted.items() if not k.endswith("_id")}
    assert first["changed"] is True and (first["service"], first["type"], first["user"], first["role"]) == (
        "swift", "object-store", "swift", "reader")
    # The templates are stored as given: each token's catalog fills them in.
    assert first["endpoints"] == {"public": SWIFT_URL, "internal": "http://10.0.0.7:8080/v1/AUTH_$(project_id)s"}
    admin_cli(*SWIFT, stdin="swift-password-1\n")
    assert last_json(capsys) == dict(first, changed=False)
    admin_cli(*SWIFT, "--check", stdin="swift-password-1\n")
    assert last_json(capsys) == dict(first, changed=False)
    # A new password, checked: a change predicted, the stored one kept.
    admin_cli(*SWIFT, "--check", stdin="swift-password-9\n")
    assert last_json(capsys)["changed"] is True
    assert verify_secret(swift_records()[1].password_hash, "swift-password-1")

    # Another password is set; a moved URL is moved and an interface no longer given is removed.
    admin_cli(*SWIFT[:7], "--url", "public=https://swift.example.test/v1/AUTH_$(tenant_id)s", *SWIFT[-3:],
              stdin="swift-password-2\n")
    moved = last_json(capsys)
    assert moved["changed"] is True and moved["service_id"] == first["service_id"]
    assert moved["user_id"] == first["user_id"]
    endpoints, user = swift_records()
    assert endpoints == [("public", "https://swift.example.test/v1/AUTH_$(tenant_id)s")]
    assert verify_secret(user.password_hash, "swift-password-2")
    with cli._sessions(settings)() as db:
        admin_project = identity.admin_project_id(db, settings)
        assert identity.role_on(db, user.id, admin_project) == "reader"
        assert not identity.is_cloud_admin(db, user.id, settings)


def test_the_service_user_checks_tokens_but_is_no_cloud_admin(admin_cli, capsys, cloud):
    admin_cli(*SWIFT, stdin="swift-password-1\n")
    out, err = capsys.readouterr()
    assert json.loads(out)["changed"] is True and "swift-password-1" not in out + err
    project = cloud.project("shop")
    cloud.user("erik", roles=[(project, "member")])
    erik = cloud.token("erik", "password-123", project)
    swift = cloud.token("swift", "swift-password-1", "admin")
    checked = cloud.client.get("/identity/v3/auth/tokens", headers={"X-Auth-Token": swift, "X-Subject-Token": erik})
    assert checked.status_code == 200, checked.text
    body = checked.json()["token"]
    assert body["project"]["id"] == project and [r["name"] for r in body["roles"]] == ["member", "reader"]
    store = next(s for s in body["catalog"] if s["type"] == "object-store")
    assert {e["url"] for e in store["endpoints"]} == {"http://203.0.113.7:8080/v1/AUTH_" + project,
                                                      "http://10.0.0.7:8080/v1/AUTH_" + project}
    headers = {"X-Auth-Token": swift}
    assert cloud.client.post("/identity/v3/projects", headers=headers,
                             json={"project": {"name": "mine"}}).status_code == 403
    assert cloud.client.post("/identity/v3/users", headers=headers,
                             json={"user": {"name": "mallory", "password": "password-123"}}).status_code == 403


@pytest.mark.parametrize("argv, stdin, message", [
    (SWIFT[:-3] + ("--user", "admin", "--password-stdin"), "swift-password-1\n", "admin is the cloud admin"),
    (SWIFT[:-3] + ("--user", "demo", "--password-stdin"), "swift-password-1\n", "user demo holds roles"),
    (SWIFT, "short\n", "user password: String should have at least 8 characters"),
    (SWIFT[:-1], None, "--user and --password-stdin go together"),
    (("service", "--name", "swift;id", "--type", "object-store", "--url", "public=" + SWIFT_URL), None,
     "service name: String should match pattern"),
    (("service", "--name", "swift", "--type", "object store", "--url", "public=" + SWIFT_URL), None,
     "service type: String should match pattern"),
    (("service", "--name", "keystone", "--type", "object-store", "--url", "public=" + SWIFT_URL), None,
     "service keystone is registered with type identity"),
    (("service", "--name", "swift", "--type", "object-store", "--url", "public=file:///etc/passwd"), None,
     "endpoint url: an endpoint URL is http:// or https://"),
    (("service", "--name", "swift", "--type", "object-store", "--url", "public=http://x/$(admin_token)s"), None,
     "not admin_token"),
    (("service", "--name", "swift", "--type", "object-store", "--url", "public=http://x/{{ 7*7 }}"), None,
     "no white space"),
    (("service", "--name", "swift", "--type", "object-store", "--url", "public=" + SWIFT_URL, "--url",
      "public=http://x/"), None, "--url public given twice"),
    (("service", "--name", "swift", "--type", "object-store", "--url", "outside=" + SWIFT_URL), None,
     "endpoint interface: Input should be 'public', 'internal' or 'admin'"),
])
def test_service_refuses_before_changing_anything(admin_cli, capsys, argv, stdin, message):
    admin_cli("bootstrap", "--password-stdin", "--migrate", "--public-url", "http://203.0.113.5:8080",
              stdin="first-password-1\n")
    admin_cli("demo", stdin="demo-password-1\n")
    capsys.readouterr()
    with pytest.raises(SystemExit) as refused:
        admin_cli(*argv, stdin=stdin)
    assert message in str(refused.value)
    assert "swift-password-1" not in str(refused.value) + "".join(capsys.readouterr())
    assert swift_records() == ([], None)


def test_serve_keeps_idle_connections_longer_than_the_clients_poll(admin_cli, monkeypatch):
    """uvicorn's own keep-alive timeout (5 s) equals the openstack command's poll interval: the service's is longer."""
    import uvicorn

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(kw))
    admin_cli("serve")
    assert seen["timeout_keep_alive"] == 75 > 5


def test_a_connection_idle_for_one_poll_interval_is_still_answered(live_server):
    """What `openstack server create --wait` does: a request, five seconds idle, the next one on the same
    connection. With a keep-alive timeout of five seconds the server may close it just as the request comes."""
    import http.client
    import time
    from urllib.parse import urlsplit

    where = urlsplit(live_server)
    conn = http.client.HTTPConnection(where.hostname, where.port, timeout=30)
    try:
        for request in ("the first request", "a request after five seconds idle"):
            conn.request("GET", "/healthz")
            response = conn.getresponse()
            response.read()
            assert response.status == 200 and not response.will_close, request
            time.sleep(6)
        conn.request("GET", "/healthz")
        assert conn.getresponse().status == 200
    finally:
        conn.close()
