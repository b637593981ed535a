"""The API and a worker on nimbus-ctl-1 (a Galera and RabbitMQ cluster member) and a worker-only
nimbus-ctl-worker, after both clusters' stories (a Galera SIGKILL and recovery, an Erlang cookie rotation).

HTTP goes from this machine to the API's container address; the `nimbus` client runs inside the
containers. Jobs run the test playbook on the workers themselves (local connection).
"""

import datetime
import json
import pathlib
import re
import time

import httpx
import pytest
import testinfra

testinfra_hosts = ["podman://nimbus-ctl-1", "podman://nimbus-ctl-worker"]

ADMIN_PASSWORD = "api-admin-secret-K5r"
SECRETS = ["galera-secret-Zp4", "nimbus-test-password", "api-sealing-secret-W2m7pT", ADMIN_PASSWORD]
SENTINEL = "sentinel-Jv4-never-stored-8Qp"
# The cluster's Erlang cookie before and after the rotation story.
COOKIES = ["nimbusClusterTestCookie0123456789", "nimbusRotatedClusterCookie0123456789"]
# Where a secret may rest in plain text: the service's settings (0640) and RabbitMQ's Erlang cookie.
SECRET_STORES = {"/etc/nimbus-api/api.env", "/var/lib/rabbitmq/.erlang.cookie"}
SEARCHED = "/etc /var/log /var/lib /root /home /srv /opt /tmp"
API = testinfra.get_host("podman://nimbus-ctl-1")
WORKER = testinfra.get_host("podman://nimbus-ctl-worker")
WORKER_NODES = {"worker@nimbus-ctl-1", "worker@nimbus-ctl-worker"}


def inventory(host):
    return "all:\n  hosts:\n    %s:\n      ansible_connection: local\n" \
           "      ansible_python_interpreter: /usr/bin/python3\n" % host


@pytest.fixture(scope="module")
def api():
    address = API.check_output("hostname -I").split()[0]
    client = httpx.Client(base_url="http://%s:8080" % address, timeout=30)
    login = {"auth": {"password": {"user": "admin", "password": ADMIN_PASSWORD}}, "project": "admin"}
    token = client.post("/v1/auth/tokens", json=login)
    assert token.status_code == 201, token.text
    client.headers["Authorization"] = "Bearer " + token.json()["token"]
    client.project = token.json()["project_id"]
    client.address = address
    return client


@pytest.fixture(scope="module")
def templates(api):
    made = []
    for n in range(3):
        r = api.post("/v1/job_templates", json={
            "name": "whoami-%d-%d" % (n, time.time_ns()), "playbook": "whoami.yml", "inventory": inventory("target-%d" % n),
            "extra_vars_schema": {"type": "object", "properties": {"lines": {"type": "integer", "maximum": 500}}}})
        assert r.status_code == 201, r.text
        made.append(r.json())
    return made


def launch(api, template, **body):
    r = api.post("/v1/projects/%s/job_templates/%s/launch" % (api.project, template["id"]), json=body)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def wait(api, job_id, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = api.get("/v1/projects/%s/jobs/%s" % (api.project, job_id)).json()
        if job["status"] in ("successful", "failed", "canceled", "error"):
            return job
        time.sleep(0.5)
    raise AssertionError("job %s still %s" % (job_id, job["status"]))


def test_units(host):
    serves = host.backend.get_hostname() == "nimbus-ctl-1"
    worker = host.service("nimbus-api-worker")
    assert worker.is_running and worker.is_enabled
    assert host.service("nimbus-api").is_running == serves
    settings = host.file("/etc/nimbus-api/api.env")
    assert (settings.user, settings.group, settings.mode) == ("root", "nimbus-api", 0o640)


def test_no_secret_in_argv_environment_journal_logs_or_files(host):
    pids = host.check_output("pgrep -u nimbus-api -d ' ' -f nimbus_api").split()
    assert pids
    for pid in pids:
        seen = host.run("tr '\\0' '\\n' < /proc/%s/cmdline; tr '\\0' '\\n' < /proc/%s/environ" % (pid, pid)).stdout
        assert "nimbus_api" in seen
        assert not [s for s in SECRETS if s in seen]
    # Every field of every entry: the _CMDLINE of each process that logged (the su sessions rabbitmqctl opens,
    # where a password given as an argument would show) as well as the services' messages.
    journal = host.check_output("journalctl --no-pager -o json")
    assert "_CMDLINE" in journal
    assert not [s for s in SECRETS + COOKIES if s in journal]
    # grep reads the secrets on standard input (printf is the shell's own).
    secrets = SECRETS + COOKIES
    found = host.run("printf '%%s\\n' " + " ".join(["%s"] * len(secrets)) + " | grep -rlsF -f - $(ls -d "
                     + SEARCHED + " 2>/dev/null)", *secrets)
    assert found.rc in (0, 1), found.stderr
    assert set(found.stdout.split()) - SECRET_STORES == set()


def test_schema_is_on_mariadb_and_the_admin_exists():
    versions = pathlib.Path(__file__).resolve().parents[3] / "api" / "nimbus_api" / "migrations" / "versions"
    newest = max(p.name.split("_")[0] for p in versions.glob("[0-9]*.py"))
    assert API.check_output("mysql -N nimbus -e 'select version_num from alembic_version'") == newest
    assert API.check_output("mysql -N nimbus -e \"select name from users\"") == "admin"
    # Moments keep their microseconds (a job's end is compared with when a resource view's read began).
    kept = API.check_output("mysql -N information_schema -e \"select distinct datetime_precision from columns "
                            "where table_schema = 'nimbus' and data_type = 'datetime'\"")
    assert kept == "6"


def test_keystone_is_in_the_catalog_and_issues_v3_tokens_there(api):
    catalog = api.get("/v1/catalog").json()
    identity = [s for s in catalog if s["type"] == "identity"]
    assert [s["name"] for s in identity] == ["keystone"]
    url = "http://%s:8080/identity/v3" % api.address
    assert [e["url"] for e in identity[0]["endpoints"]] == [url]
    assert httpx.get(url, timeout=30).json()["version"]["id"].startswith("v3.")
    r = httpx.post(url + "/auth/tokens", timeout=30, json={"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"name": "Default"}, "password": ADMIN_PASSWORD}}},
        "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}})
    assert r.status_code == 201, r.text
    assert r.headers["X-Subject-Token"]
    assert [e["url"] for s in r.json()["token"]["catalog"] if s["type"] == "identity" for e in s["endpoints"]] == [url]


def test_compute_is_in_the_catalog_and_the_runbooks_are_registered(api):
    catalog = api.get("/v1/catalog").json()
    compute = [s for s in catalog if s["type"] == "compute"]
    url = "http://%s:8080/compute/v2.1" % api.address
    assert [(s["name"], [e["url"] for e in s["endpoints"]]) for s in compute] == [("nova", [url])]
    names = {t["name"]: t for t in api.get("/v1/job_templates").json()}
    assert {"nimbus.server_create", "nimbus.server_delete", "nimbus.server_action"} <= set(names)
    create = names["nimbus.server_create"]
    assert create["playbook"] == "server_create.yml" and "nimbus-ctl-1" in create["inventory"]
    # The operator's template variables, and where the service's settings put Glance's uploads for the image
    # runbooks (api_state_dir/image-uploads).
    assert create["extra_vars"] == {"runbook_kernels": {"tiny.qcow2": {"kernel": "/boot/vmlinuz"}},
                                    "image_uploads_dir": "/var/lib/nimbus-api/image-uploads"}
    assert {"nimbus.image_create", "nimbus.image_update", "nimbus.image_delete"} <= set(names)
    # A second converge left them as they were (the idempotence step); the registration is read back here.
    assert create["extra_vars_schema"]["properties"]["server_id"]["pattern"].startswith("^[0-9a-f]{8}")


def test_state_is_the_service_users_alone(host):
    for path in ("/var/lib/nimbus-api", "/var/lib/nimbus-api/jobs"):
        state = host.file(path)
        assert state.is_directory and state.user == "nimbus-api" and state.mode == 0o700, path
    assert host.file("/etc/nimbus-api/api.env").mode == 0o640


def test_the_worker_only_host_serves_no_api():
    # The connection must be refused: a timeout, a missing python3 or any other error is not the answer
    # of a host where nothing listens on the port.
    probe = ("import socket\n"
             "try:\n"
             "    socket.create_connection(('127.0.0.1', 8080), 2)\n"
             "except ConnectionRefusedError:\n"
             "    print('refused')\n")
    out = WORKER.run("python3 -c %s", probe)
    assert (out.rc, out.stdout.strip()) == (0, "refused"), out.stderr
    # The same probe against the host that serves the API connects.
    served = API.run("python3 -c %s", probe)
    assert (served.rc, served.stdout.strip()) == (0, ""), served.stderr


def test_jobs_go_to_workers_on_both_hosts(api, templates):
    jobs = [launch(api, t, extra_vars={"lines": 3}) for t in templates * 3]
    finished = [wait(api, j) for j in jobs]
    assert [j["status"] for j in finished] == ["successful"] * len(jobs)
    assert {j["execution_node"] for j in finished} == WORKER_NODES
    for job in finished:
        events = api.get("/v1/projects/%s/jobs/%s/events" % (api.project, job["id"])).json()
        said = [e["stdout"] for e in events if "on worker" in e["stdout"]]
        # The playbook ran on the worker the job records, for the caller's project.
        assert said and job["execution_node"].split("@")[1] in said[0] and api.project in said[0]


def test_the_client_follows_a_job_to_its_end(api, templates):
    login = WORKER.run("NIMBUS_PASSWORD=%s /opt/nimbus-api/bin/nimbus login --url http://%s:8080 --user admin "
                       "--project admin" % (ADMIN_PASSWORD, api.address))
    assert login.rc == 0, login.stderr
    followed = WORKER.run("/opt/nimbus-api/bin/nimbus launch %s -e lines=40 --follow" % templates[0]["name"])
    assert followed.rc == 0, followed.stderr
    assert [n for n in range(40) if re.search(r"msg\W+line %d\b" % n, followed.stdout)] == list(range(40))
    assert "PLAY RECAP" in followed.stdout and "successful" in followed.stderr


def test_a_credential_reaches_the_job_and_nowhere_else(api, templates):
    kind = api.post("/v1/credential_types", json={
        "name": "test-token-%d" % time.time_ns(), "fields": [{"id": "token"}],
        "injectors": {"env": {"TEST_TOKEN": "token"}}})
    assert kind.status_code == 201, kind.text
    cred = api.post("/v1/projects/%s/credentials" % api.project,
                    json={"name": "token-%d" % time.time_ns(), "credential_type": kind.json()["id"],
                          "inputs": {"token": SENTINEL}})
    assert cred.status_code == 201, cred.text
    job = wait(api, launch(api, templates[1], credentials=[cred.json()["id"]]))
    assert job["status"] == "successful"
    events = api.get("/v1/projects/%s/jobs/%s/events" % (api.project, job["id"])).json()
    printed = [e["stdout"] for e in events if "token " in e["stdout"]]
    assert printed and "********" in printed[0] and SENTINEL not in json.dumps(events)
    assert API.run("mysqldump --skip-extended-insert nimbus | grep -c %s" % SENTINEL).stdout.strip() == "0"
    for host in (API, WORKER):
        assert host.run("grep -rl %s /var/lib/nimbus-api" % SENTINEL).stdout == ""
        journal = host.check_output("journalctl --no-pager -o cat -u nimbus-api -u nimbus-api-worker")
        assert SENTINEL not in journal


UNIT_STARTED = "39f53479d3a045ac8e11786248231fbf"


def units(host):
    return ["nimbus-api.service", "nimbus-api-worker.service"] if host.backend.get_hostname() == "nimbus-ctl-1" \
        else ["nimbus-api-worker.service"]


def test_units_wait_for_their_database_and_broker_not_for_network_online(host):
    for unit in units(host):
        shown = host.check_output("systemctl show -p After,Wants,Requires,ExecStartPre %s", unit)
        assert "network-online.target" not in shown, shown
        assert "mariadb.service" in shown and "nimbus-api wait" in shown, shown
    assert "--broker" in host.check_output("systemctl show -p ExecStartPre nimbus-api-worker.service")


def started_at(host, unit):
    """When the unit's main process started, in seconds since the epoch to the microsecond."""
    shown = host.check_output("systemctl show -p ExecMainStartTimestamp --timestamp=us+utc --value %s", unit)
    # "Mon 2026-11-30 13:22:01.123456 UTC"
    return datetime.datetime.strptime(shown.split(" ", 1)[1], "%Y-%m-%d %H:%M:%S.%f UTC").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def test_each_unit_started_once_after_its_install_and_nothing_was_copied_installed_or_reloaded_since(host):
    """Check, converge, idempotence, the side effect's refused runs and both clusters' stories: one start per unit
    (no start then restart on the first converge, no restart after, not even when every database member was
    killed or the broker's nodes restarted), after the archive was copied and installed; so the no-op runs
    copied, installed and restarted nothing, and systemd was not reloaded until the stories began (the Galera
    story reloads it on purpose; side_effect.yml writes /run/nimbus-stories-began first)."""
    archive = host.file("/opt/nimbus-api/nimbus-api.tar")
    stamp = host.file("/opt/nimbus-api/venv/.nimbus-installed")
    layout = ["bin", "collections", "nimbus-api.tar", "venv", "wheels"]
    assert host.check_output("ls /opt/nimbus-api").split() == layout
    for unit in units(host):
        starts = host.check_output("journalctl --no-pager -o cat MESSAGE_ID=%s UNIT=%s", UNIT_STARTED, unit)
        assert len(starts.splitlines()) == 1, starts
        assert archive.mtime.timestamp() <= stamp.mtime.timestamp() <= started_at(host, unit), unit
    # Enabling a unit reloads systemd, so the first converge reloads it before each unit's start; a reload
    # after the last start (to the microsecond: the journal's own timestamps) and before the stories is one a
    # later run made.
    last = max(started_at(host, unit) for unit in units(host))
    stories = float(host.file("/run/nimbus-stories-began").content_string)
    assert last < stories
    journal = host.check_output("journalctl --no-pager -o json _PID=1 --since %s", "@%d" % int(last))
    reloads = [e["MESSAGE"] for e in map(json.loads, journal.splitlines())
               if str(e.get("MESSAGE", "")).startswith("Reloading")
               and last * 1e6 < int(e["__REALTIME_TIMESTAMP"]) < stories * 1e6]
    assert not reloads, reloads


def test_the_wait_reaches_the_database_and_broker_and_names_what_it_waits_for():
    ready = WORKER.run("/opt/nimbus-api/bin/nimbus-api wait --broker --timeout 20")
    assert ready.rc == 0, ready.stderr
    assert json.loads(ready.stdout)["ready"][1].startswith("the broker at amqp://nimbus:**@nimbus-ctl-1:5672/")
    away = WORKER.run("NIMBUS_API_DATABASE_URL=mysql+pymysql://nimbus:never-shown-7Gq@127.0.0.1:1/nimbus "
                      "/opt/nimbus-api/bin/nimbus-api wait --timeout 3")
    assert away.rc == 1
    assert "waiting for the database at mysql+pymysql://nimbus:***@127.0.0.1:1/nimbus" in away.stderr
    assert "gave up waiting for the database" in away.stderr and "never-shown-7Gq" not in away.stderr
