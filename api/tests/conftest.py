"""A fresh service per test: its own SQLite file, migrated, with the cloud admin bootstrapped."""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import atomic_filesystem_broker
import pytest
import uvicorn
from fastapi.testclient import TestClient

from argon2 import PasswordHasher

from nimbus_api import identity, security
from nimbus_api.app import create_app
from nimbus_api.db import migrate
from nimbus_api.sealing import private_dir
from nimbus_api.settings import Settings

# The API's side of the tests' Celery broker writes its messages atomically too.
atomic_filesystem_broker.install()

ADMIN_PASSWORD = "admin-password-9x"

# Still Argon2id, with the lightest parameters: the service's defaults cost ~0.2 s a hash on these machines,
# and every test makes several users and tokens. A hash records its parameters, so verifying follows them.
security.HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


PLAYBOOKS = {
    # Talks a lot, proves the project and the secret arrived, and prints the secret (which must be masked).
    "chatty.yml": """
- hosts: all
  gather_facts: false
  tasks:
    - name: Say which project
      ansible.builtin.debug:
        msg: "project {{ nimbus_project }} on {{ inventory_hostname }}"
    - name: Count
      ansible.builtin.debug:
        msg: "line {{ item }}"
      loop: "{{ range(count | default(3)) | list }}"
    - name: The secret arrived through the environment
      ansible.builtin.assert:
        that: lookup('ansible.builtin.env', 'SENTINEL_TOKEN') | hash('sha256') == (secret_sha256 | default(''))
        quiet: true
      when: secret_sha256 is defined
    - name: A careless task that prints it
      ansible.builtin.debug:
        msg: "leak {{ lookup('ansible.builtin.env', 'SENTINEL_TOKEN') }}"
      when: secret_sha256 is defined
""",
    "slow.yml": """
- hosts: all
  gather_facts: false
  tasks:
    - name: Wait
      ansible.builtin.pause:
        seconds: "{{ seconds | default(2) }}"
""",
    "fail.yml": """
- hosts: all
  gather_facts: false
  tasks:
    - name: Fail
      ansible.builtin.fail:
        msg: on purpose
""",
}

# How long a test waits for the jobs it started. A limit to tell a hung job from a slow one, never a figure
# the test measures: the suite shares two cores with container hosts, at the lowest CPU priority.
SETTLE_SECONDS = 900


def settle(app, timeout=SETTLE_SECONDS):
    """Wait until every job this app started has ended; fail, rather than go on with jobs still running."""
    assert app.state.queue.drain(timeout), "jobs still running after %d s" % timeout


def pytest_collection_modifyitems(items):
    """Schemathesis gives the test of every operation (test_openapi) the same node id under pytest 9; pytest-xdist
    tells tests apart by node id, and would run only the first of them. Each gets its operation in its id, as a
    parametrized test does: test_no_operation_answers_with_a_server_error[GET /v1/auth/tokens]."""
    for item in items:
        base, bracket, params = item.name.partition("[")
        if getattr(item, "operation_label", None) and bracket and item.id.params is None:
            item._id = item.parent.id.child(base).with_params(params[:-1])


@pytest.fixture
def settings(tmp_path):
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    for name, text in PLAYBOOKS.items():
        (playbooks / name).write_text(text)
    return Settings(database_url="sqlite:///%s" % (tmp_path / "nimbus.db"), data_dir=tmp_path / "jobs",
                    state_dir=tmp_path / "state", playbooks_dir=playbooks,
                    # A canceled job's processes get SIGINT, then SIGTERM and SIGKILL this far apart.
                    cancel_grace=2)


@pytest.fixture
def celery_settings(settings, tmp_path):
    broker = tmp_path / "broker"
    for d in ("queue", "processed"):
        (broker / d).mkdir(parents=True)
    # kombu's virtual transports look for messages every polling_interval seconds (1 by default): a
    # tenth here, so a worker takes a job (or a requeued one) about when it is published.
    options = {"data_folder_in": str(broker / "queue"), "data_folder_out": str(broker / "queue"),
               "processed_folder": str(broker / "processed"), "store_processed": False,
               "polling_interval": 0.1}
    return settings.model_copy(update={"queue": "celery", "broker_url": "filesystem://",
                                       "broker_options": options})


_MIGRATED: list[bytes] = []


def seed_migrated_database(settings) -> None:
    """Give a service whose SQLite file does not exist yet a copy of a database migrated to head once per
    test process: running the migrations costs about 0.15 s of CPU a time, and nearly every test starts a
    service. create_app() still runs migrate() on it, which then finds nothing to do; the migrations
    themselves are run here, by test_cli's `migrate` and by the tests that migrate a database of their own."""
    url = settings.database_url
    if not url.startswith("sqlite:///") or url == "sqlite:///:memory:":
        return
    target = Path(url[len("sqlite:///"):].split("?")[0])
    if target.exists() and target.stat().st_size:
        return
    if not _MIGRATED:
        with tempfile.TemporaryDirectory(prefix="nimbus-migrated-") as root:
            migrate("sqlite:///%s/nimbus.db" % root)
            assert not os.path.exists(root + "/nimbus.db-wal")  # the migrations leave it all in the file
            _MIGRATED.append(Path(root, "nimbus.db").read_bytes())
    # Owner-only, as the service makes it (db.sqlite_file).
    private_dir(target.parent)
    fd = os.open(str(target), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(_MIGRATED[0])


def bootstrapped_app(settings):
    """A service on these settings, migrated, with the cloud admin bootstrapped."""
    seed_migrated_database(settings)
    app = create_app(settings)
    with app.state.sessions() as db:
        identity.bootstrap(db, settings, ADMIN_PASSWORD)
    return app


@pytest.fixture
def app(settings):
    return bootstrapped_app(settings)


@pytest.fixture
def client(app):
    with TestClient(app) as c:
        yield c


class Cloud:
    """Shortcuts for tests: tokens, users, projects."""

    def __init__(self, client):
        self.client = client
        self.admin = self.token("admin", ADMIN_PASSWORD, "admin")

    def token(self, user, password, project=None):
        body = {"auth": {"password": {"user": user, "password": password}}}
        if project:
            body["project"] = project
        r = self.client.post("/v1/auth/tokens", json=body)
        assert r.status_code == 201, r.text
        return r.json()["token"]

    def call(self, method, path, token=None, headers=None, **kw):
        headers = dict(headers or {})
        if token:
            headers["Authorization"] = "Bearer " + token
        return self.client.request(method, path, headers=headers, **kw)

    def project(self, name):
        r = self.call("POST", "/v1/projects", self.admin, json={"name": name})
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def user(self, name, password="password-123", roles=()):
        r = self.call("POST", "/v1/users", self.admin, json={"name": name, "password": password})
        assert r.status_code == 201, r.text
        user_id = r.json()["id"]
        for project_id, role in roles:
            r = self.call("PUT", "/v1/projects/%s/users/%s/roles/%s" % (project_id, user_id, role), self.admin)
            assert r.status_code == 204, r.text
        return user_id


@pytest.fixture
def cloud(client):
    return Cloud(client)


def inventory(*hosts):
    lines = ["all:", "  hosts:"]
    for host in hosts:
        lines += ["    %s:" % host, "      ansible_connection: local", "      ansible_python_interpreter: python3"]
    return "\n".join(lines) + "\n"


@pytest.fixture
def world(cloud):
    a, b = cloud.project("proj-a"), cloud.project("proj-b")
    for name, project, role in (("member-a", a, "member"), ("reader-a", a, "reader"), ("member-b", b, "member")):
        cloud.user(name, roles=[(project, role)])
    logins = (("member-a", "proj-a"), ("reader-a", "proj-a"), ("member-b", "proj-b"))
    tokens = {n: cloud.token(n, "password-123", p) for n, p in logins}
    return cloud, {"a": a, "b": b}, tokens


def template(cloud, name="chatty", playbook="chatty.yml", hosts=("node-1",), schema=None, **extra):
    body = {"name": name, "playbook": playbook, "inventory": inventory(*hosts),
            "extra_vars_schema": schema or {
                "type": "object", "additionalProperties": False,
                "properties": {"count": {"type": "integer", "maximum": 50}, "secret_sha256": {"type": "string"},
                               "seconds": {"type": "integer"}}}}
    body.update(extra)
    r = cloud.call("POST", "/v1/job_templates", cloud.admin, json=body)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def credential(cloud, token, project_id, name, env=None, extra_vars=None, type_name=None):
    """A credential of a credential type that injects ``env`` / ``extra_vars`` (name -> value) under
    those names; the type (one field per name) is made by the cloud admin first, if missing."""
    env, extra_vars = env or {}, extra_vars or {}
    fields = {"f_%s" % n.lower(): v for n, v in list(env.items()) + list(extra_vars.items())}
    type_name = type_name or "type-" + "-".join(sorted(fields)).replace("_", "-")
    made = cloud.call("POST", "/v1/credential_types", cloud.admin, json={
        "name": type_name, "fields": [{"id": f} for f in sorted(fields)],
        "injectors": {"env": {n: "f_%s" % n.lower() for n in env},
                      "extra_vars": {n: "f_%s" % n.lower() for n in extra_vars}}})
    assert made.status_code in (201, 409), made.text
    r = cloud.call("POST", "/v1/projects/%s/credentials" % project_id, token,
                   json={"name": name, "credential_type": type_name, "inputs": fields})
    assert r.status_code == 201, r.text
    return r


@pytest.fixture
def live_server_for():
    """Serves an app with uvicorn on a free loopback port, for clients that need a real socket (SSE, browser,
    concurrent requests); returns its URL. Stopped when the test ends."""
    running = []

    def serve(app):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        # The service's keep-alive timeout, as `nimbus-api serve` runs it.
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off",
                                               timeout_keep_alive=app.state.settings.keep_alive_timeout))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.time() + 120
        while not server.started and time.time() < deadline:
            time.sleep(0.05)
        running.append((app, server, thread))
        return "http://127.0.0.1:%d" % port

    yield serve
    for app, server, thread in running:
        server.should_exit = True
        thread.join(10)
        settle(app)


@pytest.fixture
def live_server(app, live_server_for):
    """The app served by uvicorn on a free loopback port."""
    return live_server_for(app)


# --- a hypervisor for resource views: libvirt's test driver, read by the real instance_info ---

DOMAIN = """
  <domain type="test">
    <name>{name}</name>
    <uuid>{uuid}</uuid>
    <metadata>
      <nimbus:instance xmlns:nimbus="https://nimbus.cloud/xmlns/instance/1">
        <nimbus:project>{project}</nimbus:project>
        <nimbus:flavor name="m1.tiny" vcpus="1" ram_mb="256" disk_gb="1"/>
      </nimbus:instance>
    </metadata>
    <memory>262144</memory>
    <vcpu>1</vcpu>
    <os><type>hvm</type></os>
  </domain>"""


@pytest.fixture
def hypervisor(tmp_path):
    """Writes the test driver's domains; returns the inventory path."""
    def write(domains):
        xml = tmp_path / "node.xml"
        xml.write_text("<node>%s\n</node>\n" % "".join(
            DOMAIN.format(name=name, uuid="6695eb01-f6a4-8304-79aa-97f2502e19%02d" % n, project=project)
            for n, (name, project) in enumerate(domains)))
        return xml
    return write


@pytest.fixture
def views_settings(settings, tmp_path):
    inventory = tmp_path / "cloud.yml"
    inventory.write_text("""
compute:
  hosts:
    hv1:
      ansible_connection: local
      ansible_python_interpreter: {python}
      nimbus_libvirt_uri: test://{xml}
    hv2:
      ansible_host: 127.0.0.1
      ansible_port: 9
      ansible_connection: ssh
      ansible_ssh_common_args: -o ConnectTimeout=5 -o StrictHostKeyChecking=no
""".format(python=sys.executable, xml=tmp_path / "node.xml"))
    # Reads after a job that changes the kind are fresh whatever the cache's age (ResourceViews.read); the TTL
    # only bounds how long a change made outside the API goes unseen. A long one here keeps the clients'
    # polling (--wait, every 2 s) from starting an ansible-runner read each time; test_resources sets a short
    # one where it tests the expiry.
    return settings.model_copy(update={"resources_inventory": inventory, "resources_ttl": 120})


# The tiny test image as the images view lists it (image_info reads the hypervisors' caches; here the hosts are
# libvirt's test driver, which has none).
TINY_IMAGE = {"id": "5d2f9e67-0c1a-5b8e-9a77-2f1c3e4d5a6b", "name": "tiny.qcow2", "file": "tiny.qcow2",
              "disk_format": "qcow2", "size": 1245184, "virtual_size": 16777216, "updated_at": "2026-11-30T12:00:00Z"}


def with_images(app, images=(TINY_IMAGE,)):
    """Give the app's resource views a fixed images kind; the other kinds stay the real views."""
    with_views(app, images=lambda: list(images))


def with_views(app, **kinds):
    """Give the app's resource views these kinds, each read from a function (called on every read, as a real
    view re-reads its hosts); the other kinds stay the real views."""
    from nimbus_api.resources import ResourceViews

    class Given(ResourceViews):
        def available(self, kind):
            return kind in kinds or super().available(kind)

        def read(self, kind):
            if kind in kinds:
                return kinds[kind](), [], time.time()
            return super().read(kind)

    app.state.resources = Given(app.state.settings, app.state.resources.last_change)


def register_runbooks(app, **template_vars):
    """The runbooks' templates, on one local host (hv1) and with these template variables (the stand-ins'
    files): what ``nimbus-api runbooks`` registers."""
    from nimbus_api.openstack import runbooks

    with app.state.sessions() as db:
        runbooks.register(db, "compute:\n  hosts:\n    hv1:\n      ansible_connection: local\n"
                          "      ansible_python_interpreter: %s\n" % sys.executable, template_vars)
