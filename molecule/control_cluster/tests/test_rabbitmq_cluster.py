"""Three RabbitMQ nodes clustered by the rabbitmq role."""

import json
import pathlib
import uuid

import testinfra

NODES = ["nimbus-ctl-1", "nimbus-ctl-2", "nimbus-ctl-3"]
testinfra_hosts = ["podman://%s" % node for node in NODES]

CLIENT = (pathlib.Path(__file__).parents[2] / "control_single" / "tests" / "amqp_client.py").read_text()
USER = "nimbus"
PASSWORD = "nimbus-test-password"
VHOST = "/nimbus"


def amqp(host, *args):
    return host.run("AMQP_PASSWORD=%s python3 -c %s " + " ".join(["%s"] * len(args)), PASSWORD, CLIENT, *args)


def test_service_running_and_enabled(host):
    service = host.service("rabbitmq-server")
    assert service.is_running
    assert service.is_enabled


def test_cookie_file(host):
    cookie = host.file("/var/lib/rabbitmq/.erlang.cookie")
    assert cookie.user == "rabbitmq"
    assert cookie.mode == 0o400


def test_nodes_share_one_cookie():
    cookie = "/var/lib/rabbitmq/.erlang.cookie"
    assert len({testinfra.get_host("podman://%s" % node).file(cookie).sha256sum for node in NODES}) == 1


def test_every_node_sees_all_nodes_running(host):
    status = json.loads(host.check_output("rabbitmqctl --quiet cluster_status --formatter json"))
    assert sorted(status["running_nodes"]) == ["rabbit@%s" % node for node in NODES]
    assert sorted(status["disk_nodes"]) == ["rabbit@%s" % node for node in NODES]
    assert status["partitions"] == {}


def test_partition_handling_in_effect(host):
    out = host.check_output("rabbitmqctl --quiet eval %s", "application:get_env(rabbit, cluster_partition_handling).")
    assert out.strip() == "{ok,pause_minority}"


def test_users_are_cluster_wide(host):
    users = [u["user"] for u in json.loads(host.check_output("rabbitmqctl --quiet list_users --formatter json"))]
    assert users == ["nimbus"]


def test_message_published_on_c1_is_consumed_on_c3():
    c1 = testinfra.get_host("podman://nimbus-ctl-1")
    c3 = testinfra.get_host("podman://nimbus-ctl-3")
    queue = "test-%s" % uuid.uuid4()
    body = "nimbus-%s" % uuid.uuid4()

    published = amqp(c1, "publish", USER, "-", VHOST, queue, body)
    assert published.rc == 0, published.stderr

    queues = json.loads(
        c3.check_output("rabbitmqctl --quiet list_queues --vhost %s name type members --formatter json", VHOST)
    )
    [info] = [q for q in queues if q["name"] == queue]
    assert info["type"] == "quorum"
    assert sorted(info["members"]) == ["rabbit@%s" % node for node in NODES]

    consumed = amqp(c3, "consume", USER, "-", VHOST, queue)
    assert consumed.rc == 0, consumed.stderr
    assert consumed.stdout.strip() == body
