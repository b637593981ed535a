"""Single RabbitMQ node converged by the rabbitmq role."""

import json
import pathlib
import uuid

import pytest

testinfra_hosts = ["podman://nimbus-rmq-1"]

CLIENT = (pathlib.Path(__file__).parent / "amqp_client.py").read_text()
USER = "nimbus"
PASSWORD = "nimbus-test-password"
VHOST = "/nimbus"
COOKIE = "nimbusSingleNodeTestCookie0123456789"
# Every secret the scenario gave the host, the one side_effect rotates to included.
SECRETS = [PASSWORD, "nimbus-rotated-password-7Qw", COOKIE]
# Where a secret may rest in plain text: the cookie is that file.
SECRET_STORES = {"/var/lib/rabbitmq/.erlang.cookie"}
SEARCHED = "/etc /var/log /var/lib /root /home /srv /opt /tmp"


def amqp(host, *args, password=PASSWORD):
    return host.run("AMQP_PASSWORD=%s python3 -c %s " + " ".join(["%s"] * len(args)), password, CLIENT, *args)


def rabbitmqctl_json(host, *args):
    out = host.check_output("rabbitmqctl --quiet " + " ".join(["%s"] * len(args)) + " --formatter json", *args)
    return json.loads(out)


def test_package_installed(host):
    assert host.package("rabbitmq-server").is_installed


def test_service_running_and_enabled(host):
    service = host.service("rabbitmq-server")
    assert service.is_running
    assert service.is_enabled


@pytest.mark.parametrize(
    "socket",
    [
        "tcp://5672",  # AMQP, on every IPv4 and IPv6 address
        "tcp://0.0.0.0:15672",  # management HTTP API
        "tcp://0.0.0.0:25672",  # inter-node and CLI communication
    ],
)
def test_listening(host, socket):
    assert host.socket(socket).is_listening


def test_config_file(host):
    conf = host.file("/etc/rabbitmq/rabbitmq.conf")
    assert conf.user == "root"
    assert conf.group == "rabbitmq"
    assert conf.mode == 0o640
    assert "cluster_partition_handling = pause_minority" in conf.content_string


def test_cookie_file(host):
    cookie = host.file("/var/lib/rabbitmq/.erlang.cookie")
    assert cookie.user == "rabbitmq"
    assert cookie.mode == 0o400
    assert cookie.content_string == COOKIE


def test_partition_handling_in_effect(host):
    out = host.check_output("rabbitmqctl --quiet eval %s", "application:get_env(rabbit, cluster_partition_handling).")
    assert out.strip() == "{ok,pause_minority}"


def test_vhost_defaults_to_quorum_queues(host):
    vhosts = {v["name"]: v for v in rabbitmqctl_json(host, "list_vhosts", "name", "default_queue_type")}
    assert VHOST in vhosts
    assert vhosts[VHOST]["default_queue_type"] == "quorum"


def test_users(host):
    users = {u["user"]: u for u in rabbitmqctl_json(host, "list_users")}
    assert USER in users
    assert users[USER]["tags"] == ["management"]
    assert "guest" not in users


def test_permissions(host):
    perms = rabbitmqctl_json(host, "list_user_permissions", USER)
    assert perms == [{"vhost": VHOST, "configure": ".*", "write": ".*", "read": ".*"}]


def test_management_plugin_enabled(host):
    out = host.check_output("rabbitmq-plugins list --enabled --minimal")
    assert "rabbitmq_management" in out.split()


def test_amqp_round_trip_as_created_user(host):
    body = "nimbus-%s" % uuid.uuid4()
    result = amqp(host, "roundtrip", USER, "-", VHOST, "test-%s" % uuid.uuid4(), body)
    assert result.rc == 0, result.stderr
    assert result.stdout.strip() == body


def test_guest_cannot_log_in(host):
    assert amqp(host, "login", "guest", "-", "/", password="guest").rc == 3


def test_wrong_password_is_refused(host):
    assert amqp(host, "login", USER, "-", VHOST, password="not-the-password").rc == 3


def test_no_secret_in_the_journal_logs_or_files(host):
    # -o json holds every field, the _CMDLINE of each process that logged (su sessions of rabbitmqctl).
    journal = host.check_output("journalctl --no-pager -o json")
    assert "_CMDLINE" in journal
    assert [s for s in SECRETS if s in journal] == []
    # grep reads the secrets on standard input (printf is the shell's own).
    found = host.run("printf '%%s\\n' " + " ".join(["%s"] * len(SECRETS)) + " | grep -rlsF -f - $(ls -d "
                     + SEARCHED + " 2>/dev/null)", *SECRETS)
    assert found.rc in (0, 1), found.stderr
    assert set(found.stdout.split()) - SECRET_STORES == set()
