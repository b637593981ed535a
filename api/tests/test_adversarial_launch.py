"""An attacker's launches: Jinja, reserved names and crafted keys in launch variables; credential types that
would run code; secrets in awkward forms read back as a reader. Real ansible-playbook runs on local hosts.

A code-execution attempt leaves a marker file if it ever runs; the tests look for the marker, not only for
the absence of output.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from conftest import ADMIN_PASSWORD, Cloud, credential, inventory, template
from fastapi.testclient import TestClient
from test_jobs import launch, wait

from nimbus_api import db as nimbus_db
from nimbus_api import identity
from nimbus_api.app import create_app
from nimbus_api.masking import MASK
from nimbus_api.sealing import seal

ECHO = """
- hosts: all
  gather_facts: false
  tasks:
    - name: Echo
      ansible.builtin.debug:
        msg: "greeting={{ greeting | default('') }} nested={{ nested | default({}) | to_json }} project={{ nimbus_project }}"
    - name: Echo the admin's variable
      ansible.builtin.debug:
        msg: "admin={{ admin_greeting | default('') }}"
    - name: Write the nested value where a careless role would
      ansible.builtin.copy:
        content: "{{ nested | default({}) }}"
        dest: "{{ playbook_dir }}/../nested-{{ nimbus_project }}.out"
        mode: "0600"
"""

# Prints a secret in many shapes: as text, JSON-encoded, as YAML, line by line, in a failure message.
LEAKY = """
- hosts: all
  gather_facts: false
  vars:
    s: "{{ lookup('ansible.builtin.env', 'LEAKY_SECRET') }}"
  tasks:
    - name: Raw
      ansible.builtin.debug:
        msg: "raw {{ s }}"
    - name: As a variable
      ansible.builtin.debug:
        var: s
    - name: JSON
      ansible.builtin.debug:
        msg: "{{ {'k': s} | to_json }}"
    - name: JSON in JSON
      ansible.builtin.debug:
        msg: "{{ ({'k': s} | to_json) | to_json }}"
    - name: YAML
      ansible.builtin.debug:
        msg: "{{ {'k': s} | to_yaml }}"
    - name: Lines
      ansible.builtin.debug:
        msg: "{{ s.splitlines() }}"
    - name: Extra var from the credential
      ansible.builtin.debug:
        msg: "var {{ leaky_var | default('') }}"
    - name: Fail with it
      ansible.builtin.fail:
        msg: "failing with {{ s }}"
"""


@pytest.fixture
def books(settings):
    (settings.playbooks_dir / "echo.yml").write_text(ECHO)
    (settings.playbooks_dir / "leaky.yml").write_text(LEAKY)
    return settings.playbooks_dir


def echo_template(cloud, name="echo", **extra):
    schema = {"type": "object", "additionalProperties": False,
              "properties": {"greeting": {"type": "string", "maxLength": 200}, "nested": {"type": "object"}}}
    return template(cloud, name=name, playbook="echo.yml", schema=schema, **extra)


def events_text(cloud, token, project, job_id):
    return cloud.call("GET", "/v1/projects/%s/jobs/%s/events" % (project, job_id), token,
                      params={"limit": 1000}).text


# --- launch variables are data ---------------------------------------------------------------------

def test_jinja_in_launch_variables_is_printed_never_run(world, books, tmp_path, monkeypatch):
    cloud, p, t = world
    marker = tmp_path / ("pwned-%s" % uuid.uuid4().hex)
    # The service's own environment, which jobs inherit: a lookup that ran would print it.
    env_marker = "env-marker-%s" % uuid.uuid4().hex
    monkeypatch.setenv("ADVERSARIAL_ENV_MARKER", env_marker)
    attack = "{{ lookup('ansible.builtin.pipe', 'touch %s; id') }}" % marker
    tid = echo_template(cloud)
    nested = {"list": [attack, {"deeper": attack}], attack: "as a key", "env": "{{ lookup('env', 'ADVERSARIAL_ENV_MARKER') }}"}
    r = launch(cloud, t["member-a"], p["a"], tid, extra_vars={"greeting": attack, "nested": nested})
    assert r.status_code == 201, r.text
    job = wait(cloud, t["member-a"], p["a"], r.json()["id"])
    assert job["status"] == "successful", events_text(cloud, t["member-a"], p["a"], job["id"])
    text = events_text(cloud, t["reader-a"], p["a"], job["id"])
    assert not marker.exists()
    for leaked in ("uid=", env_marker):
        assert leaked not in text, text[max(0, text.find(leaked) - 300):text.find(leaked) + 100]
    # The value arrived literally, braces and all, in every place the playbook used it.
    assert "greeting={{ lookup(" in text and "project=%s" % p["a"] in text
    written = json.loads((books.parent / ("nested-%s.out" % p["a"])).read_text())
    assert written == nested


def test_only_the_admins_template_variables_template(world, books):
    cloud, p, t = world
    tid = echo_template(cloud, extra_vars={"admin_greeting": "{{ 20 + 22 }}"})
    job = wait(cloud, t["member-a"], p["a"], launch(cloud, t["member-a"], p["a"], tid).json()["id"])
    assert "admin=42" in events_text(cloud, t["member-a"], p["a"], job["id"])


def test_a_credentials_value_cannot_be_read_through_a_launch_variable(world, books):
    cloud, p, t = world
    secret = "cred-value-%s" % uuid.uuid4().hex
    cred = credential(cloud, t["member-a"], p["a"], "c", env={"LEAKY_SECRET": secret}).json()["id"]
    tid = echo_template(cloud)
    job_id = launch(cloud, t["member-a"], p["a"], tid, credentials=[cred],
                    extra_vars={"greeting": "{{ lookup('env', 'LEAKY_SECRET') }}"}).json()["id"]
    assert wait(cloud, t["member-a"], p["a"], job_id)["status"] == "successful"
    text = events_text(cloud, t["reader-a"], p["a"], job_id)
    assert secret not in text and "greeting={{ lookup('env', 'LEAKY_SECRET') }}" in text


@pytest.mark.parametrize("name", [
    "ansible_connection", "ansible_ssh_common_args", "ANSIBLE_CONNECTION", "ansible_python_interpreter",
    "nimbus_project", "NIMBUS_PROJECT", "nimbus_anything", "hostvars", "environment", "omit", "class",
    "x\": 1, \"nimbus_project", "nimbus_project ", " nimbus_project", "a-b", "1abc", "", "ä", "x" * 65,
    "nimbus_projec\u0074\u200b",
])
def test_reserved_or_crafted_names_are_refused(world, name):
    cloud, p, t = world
    # Even a template whose schema allows anything takes no undeclared variable, and none of these.
    tid = template(cloud, name="open", schema={"type": "object"})
    r = launch(cloud, t["member-a"], p["a"], tid, extra_vars={name: "local"})
    assert r.status_code == 422, r.text
    assert cloud.call("GET", "/v1/projects/%s/jobs" % p["a"], t["member-a"]).json() == []


@pytest.mark.parametrize("schema, extra_vars", [
    ({"type": "object", "properties": {"ansible_connection": {"type": "string"}}}, {}),
    ({"type": "object", "properties": {"nimbus_project": {"type": "string"}}}, {}),
    ({"type": "object"}, {"ansible_become": True}),
    ({"type": "object"}, {"nimbus_project": "x"}),
])
def test_templates_cannot_open_reserved_names_either(cloud, schema, extra_vars):
    r = cloud.call("POST", "/v1/job_templates", cloud.admin, json={
        "name": "bad", "playbook": "chatty.yml", "inventory": inventory("h"), "extra_vars_schema": schema,
        "extra_vars": extra_vars})
    assert r.status_code == 422, r.text


def test_a_schema_that_declares_nothing_accepts_nothing(world):
    cloud, p, t = world
    tid = template(cloud, name="closed", schema={"type": "object", "additionalProperties": True})
    r = launch(cloud, t["member-a"], p["a"], tid, extra_vars={"count": 1})
    assert r.status_code == 422 and "not declared" in r.text


def test_launch_variables_stay_out_of_argv_and_the_recorded_command(world, books, settings):
    cloud, p, t = world
    tid = echo_template(cloud)
    marker = "marker-%s" % uuid.uuid4().hex
    job_id = launch(cloud, t["member-a"], p["a"], tid, extra_vars={"greeting": marker}).json()["id"]
    assert wait(cloud, t["member-a"], p["a"], job_id)["status"] == "successful", \
        events_text(cloud, t["member-a"], p["a"], job_id)
    command_file = next((settings.data_dir / job_id).rglob("command"))
    recorded = json.loads(command_file.read_text())
    assert marker not in json.dumps(recorded)
    argv = recorded["command"]
    assert "-e" in argv and argv[argv.index("-e") + 1].startswith("@")
    extravars = settings.data_dir / job_id / "env" / "extravars"
    assert marker in extravars.read_text() and extravars.stat().st_mode & 0o777 == 0o600


def test_the_callers_project_cannot_be_overridden(world, books):
    cloud, p, t = world
    tid = echo_template(cloud)
    # Neither a reserved key nor a nested one nor one that looks like it in YAML reaches nimbus_project.
    job_id = launch(cloud, t["member-a"], p["a"], tid, extra_vars={
        "greeting": "nimbus_project: %s" % p["b"], "nested": {"nimbus_project": p["b"]}}).json()["id"]
    assert wait(cloud, t["member-a"], p["a"], job_id)["status"] == "successful"
    text = events_text(cloud, t["member-a"], p["a"], job_id)
    assert "project=%s" % p["a"] in text and "project=%s" % p["b"] not in text


# --- credential types ------------------------------------------------------------------------------

@pytest.mark.parametrize("env_name", [
    "PYTHONWARNINGS", "BROWSER", "ANSIBLE_LOG_PATH", "ANSIBLE_CONFIG", "LD_PRELOAD", "LD_LIBRARY_PATH", "PATH",
    "HOME", "PYTHONPATH", "PYTHONSTARTUP", "PERL5OPT", "NODE_OPTIONS", "BASH_ENV", "ENV", "GIT_SSH_COMMAND",
    "SSH_AUTH_SOCK", "HTTPS_PROXY", "https_proxy", "path", "Path", "NIMBUS_SECRETS_FILE", "LANG", "TMPDIR",
    "A B", "A=B", "", "X" * 65, "_PRIVATE", "GCONV_PATH", "OPENSSL_CONF",
])
def test_credential_types_cannot_inject_variables_that_run_code(cloud, env_name):
    r = cloud.call("POST", "/v1/credential_types", cloud.admin, json={
        "name": "evil", "fields": [{"id": "value"}], "injectors": {"env": {env_name: "value"}}})
    assert r.status_code == 422, r.text


@pytest.mark.parametrize("var", ["ansible_connection", "nimbus_project", "hostvars", "ansible_ssh_common_args"])
def test_credential_types_cannot_inject_reserved_extra_vars(cloud, var):
    r = cloud.call("POST", "/v1/credential_types", cloud.admin, json={
        "name": "evil", "fields": [{"id": "value"}], "injectors": {"extra_vars": {var: "value"}}})
    assert r.status_code == 422, r.text


def test_only_the_cloud_admin_defines_credential_types_members_fill_values(world):
    cloud, p, t = world
    body = {"name": "deploy", "fields": [{"id": "token"}], "injectors": {"env": {"DEPLOY_TOKEN": "token"}}}
    assert cloud.call("POST", "/v1/credential_types", t["member-a"], json=body).status_code == 403
    assert cloud.call("POST", "/v1/credential_types", cloud.admin, json=body).status_code == 201
    path = "/v1/projects/%s/credentials" % p["a"]
    # Values only for the type's fields; no way to name an environment variable from here.
    for inputs in ({"PYTHONWARNINGS": "x"}, {"token": "x", "extra": "y"}, {}):
        r = cloud.call("POST", path, t["member-a"], json={"name": "c", "credential_type": "deploy", "inputs": inputs})
        assert r.status_code == 422, r.text
    body = {"name": "c", "credential_type": "deploy", "inputs": {"token": "t0k3n-value"}}
    ok = cloud.call("POST", path, t["member-a"], json=body)
    assert ok.status_code == 201 and "t0k3n-value" not in ok.text
    assert cloud.call("DELETE", "/v1/credential_types/deploy", cloud.admin).status_code == 409


def test_a_denied_injector_written_past_the_api_is_still_not_injected(world, app, books, settings):
    cloud, p, t = world
    cred = credential(cloud, t["member-a"], p["a"], "c", env={"LEAKY_SECRET": "value-1"}).json()
    with app.state.sessions() as db:
        db.execute(sa.text("UPDATE credential_types SET injectors = :i"),
                   {"i": json.dumps({"env": {"PYTHONWARNINGS": "f_leaky_secret", "LEAKY_SECRET": "f_leaky_secret"}})})
        db.commit()
    runner = app.state.runner
    with app.state.sessions() as db:
        from nimbus_api.models import Job
        job = Job(template_id=echo_template(cloud), project_id=p["a"], launched_by="x", credential_ids=cred["id"])
        env, extra, masker = runner.credentials(db, job)
    assert env == {"LEAKY_SECRET": "value-1"} and masker.text("got value-1") == "got " + MASK


def test_legacy_credentials_migrate_to_types_without_the_dangerous_names(tmp_path, settings):
    url = "sqlite:///%s" % (tmp_path / "legacy.db")
    command.upgrade(nimbus_db.alembic_config(url), "0004")
    engine = sa.create_engine(url)
    sealed = seal(settings, {"API_TOKEN": "legacy-token-value", "PYTHONWARNINGS": "ignore::x.Y"})
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO domains (id, name, description, enabled) VALUES ('d', 'Default', '', 1)"))
        conn.execute(sa.text("INSERT INTO projects (id, name, domain_id, description, enabled) "
                             "VALUES ('p', 'legacy', 'd', '', 1)"))
        conn.execute(sa.text("INSERT INTO credentials (id, name, project_id, sealed, variables, created_at) "
                             "VALUES ('c', 'old', 'p', :s, 'API_TOKEN,PYTHONWARNINGS', CURRENT_TIMESTAMP)"),
                     {"s": sealed})
    engine.dispose()
    app = create_app(settings.model_copy(update={"database_url": url}))
    with app.state.sessions() as db:
        identity.bootstrap(db, app.state.settings, ADMIN_PASSWORD)
    with TestClient(app) as client:
        c = Cloud(client)
        kinds = c.call("GET", "/v1/credential_types", c.admin).json()
        assert len(kinds) == 1 and kinds[0]["injectors"]["env"] == {"API_TOKEN": "API_TOKEN"}
        assert "PYTHONWARNINGS" in kinds[0]["description"]
        listed = c.call("GET", "/v1/projects/p/credentials", c.admin).json()
        assert listed[0]["credential_type_id"] == kinds[0]["id"]
    from nimbus_api.models import Job
    with app.state.sessions() as db:
        env, extra, masker = app.state.runner.credentials(db, Job(project_id="p", credential_ids="c"))
    assert env == {"API_TOKEN": "legacy-token-value"} and masker.text("ignore::x.Y") == MASK


# --- masking -------------------------------------------------------------------------------------

AWKWARD = [
    'pa"ss\\word-%s',
    "it's \"quoted\" and \\back\\slashed %s",
    "ünïcødé-✓-密码-%s",
    "-----BEGIN KEY-----\nline-one-%s-AAAA\nline-two-BBBB-CCCC\n-----END KEY-----",
    "tab\there and {{ braces }} %s",
]


@pytest.mark.parametrize("shape", AWKWARD)
def test_secrets_in_awkward_forms_never_reach_a_reader(world, books, settings, shape):
    cloud, p, t = world
    secret = shape % uuid.uuid4().hex[:12]
    cred = credential(cloud, t["member-a"], p["a"], "leaky", env={"LEAKY_SECRET": secret},
                      extra_vars={"leaky_var": secret}).json()["id"]
    tid = template(cloud, name="leaky", playbook="leaky.yml", schema={"type": "object", "properties": {}})
    job_id = launch(cloud, t["member-a"], p["a"], tid, credentials=[cred]).json()["id"]
    job = wait(cloud, t["member-a"], p["a"], job_id)
    assert job["status"] == "failed"  # the last task fails on purpose, after printing
    text = events_text(cloud, t["reader-a"], p["a"], job_id)
    stream = cloud.call("GET", "/v1/projects/%s/jobs/%s/stream" % (p["a"], job_id), t["reader-a"]).text
    assert "raw " + MASK in text and "var " + MASK in text
    forms = {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1],
             json.dumps(json.dumps(secret)[1:-1])[1:-1], repr(secret)[1:-1]}
    forms |= {line for line in secret.splitlines() if len(line) >= 8}
    artifacts = "\n".join(path.read_text(errors="replace") for path in (settings.data_dir / job_id).rglob("*")
                          if path.is_file() and path.parent.name != "bin")
    for form in forms:
        assert form not in text, form
        assert form not in stream, form
        assert form not in artifacts, form
    assert not list(Path(settings.data_dir, ".secrets").glob("*"))
