"""Single MariaDB server: configured, secured, and a real client round trip over TCP."""

import uuid

import pymysql
import pytest

HOST = "nimbus-mariadb-1"
testinfra_hosts = ["podman://" + HOST]


def sql(host, query):
    return host.check_output("mariadb -N -B -e %s", query)


@pytest.fixture(scope="module")
def address(host):
    return host.check_output("hostname -I").split()[0]


def test_packages_and_service(host):
    assert host.package("mariadb-server").is_installed
    svc = host.service("mariadb")
    assert svc.is_running and svc.is_enabled


def test_listens_as_configured(host):
    assert host.socket("tcp://0.0.0.0:3306").is_listening


def test_configuration_in_effect(host):
    assert sql(host, "SELECT @@max_connections") == "77"
    assert sql(host, "SELECT @@innodb_buffer_pool_size") == str(64 * 1024 * 1024)
    assert sql(host, "SELECT @@character_set_server") == "utf8mb4"
    assert sql(host, "SELECT @@slow_query_log") == "1"


def test_secured(host):
    assert sql(host, "SELECT COUNT(*) FROM mysql.user WHERE User = ''") == "0"
    assert sql(host, "SELECT COUNT(*) FROM mysql.user WHERE User = 'root' AND Host <> 'localhost'") == "0"
    assert sql(host, "SHOW DATABASES LIKE 'test'") == ""
    # root works only through the unix socket: over TCP, without or with any password, it is refused.
    assert host.run("mariadb -h 127.0.0.1 -u root -e 'SELECT 1'").rc != 0
    assert host.run("mariadb -h 127.0.0.1 -u root -pinvalid -e 'SELECT 1'").rc != 0


def test_password_not_in_config_or_logs(host):
    out = host.run("grep -rl molecule-secret-Aq9 /etc/mysql /var/log 2>/dev/null")
    assert out.stdout == ""


def test_round_trip_over_tcp_as_role_user(address):
    marker = uuid.uuid4().hex
    conn = pymysql.connect(host=address, port=3306, user="nimbus", password="molecule-secret-Aq9",
                           database="nimbus", connect_timeout=10)
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS roundtrip (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(64))")
            cur.execute("INSERT INTO roundtrip (v) VALUES (%s)", (marker,))
            conn.commit()
            cur.execute("SELECT v FROM roundtrip WHERE v = %s", (marker,))
            assert cur.fetchone() == (marker,)
            cur.execute("SELECT CURRENT_USER()")
            assert cur.fetchone()[0] == "nimbus@%"
    finally:
        conn.close()


def test_wrong_password_is_refused(address):
    with pytest.raises(pymysql.err.OperationalError) as refused:
        pymysql.connect(host=address, user="nimbus", password="wrong", connect_timeout=10)
    # 1045: access denied, not a server that cannot be reached.
    assert refused.value.args[0] == 1045
