"""Three-member Galera cluster: size 3, replication across members, data survives a full crash."""

import uuid

import pytest

MEMBERS = ["nimbus-ctl-1", "nimbus-ctl-2", "nimbus-ctl-3"]
testinfra_hosts = ["podman://" + m for m in MEMBERS]


def sql(host, query, db=""):
    return host.check_output("mariadb -N -B %s -e %s", db, query)


def test_service(host):
    assert host.service("mariadb").is_running
    assert host.service("mariadb").is_enabled
    assert host.socket("tcp://0.0.0.0:3306").is_listening
    assert host.socket("tcp://0.0.0.0:4567").is_listening


def test_cluster_size_and_state(host):
    assert sql(host, "SHOW STATUS LIKE 'wsrep_cluster_size'").split()[1] == "3"
    assert sql(host, "SHOW STATUS LIKE 'wsrep_cluster_status'").split()[1] == "Primary"
    assert sql(host, "SHOW STATUS LIKE 'wsrep_local_state_comment'").split()[1] == "Synced"


def test_row_committed_before_the_crash_survived(host):
    assert sql(host, "SELECT v FROM crash WHERE id = 1", "nimbus") == "before-the-crash"


def test_accounts_replicated(host):
    assert sql(host, "SELECT COUNT(*) FROM mysql.user WHERE User = 'nimbus' AND Host = '%'") == "1"
    assert sql(host, "SELECT COUNT(*) FROM mysql.user WHERE User = ''") == "0"


@pytest.mark.parametrize("host", ["podman://nimbus-ctl-1"], indirect=True)
def test_row_written_on_first_is_read_on_third(host):
    import testinfra

    marker = uuid.uuid4().hex
    sql(host, "CREATE TABLE IF NOT EXISTS rt (v VARCHAR(64) PRIMARY KEY)", "nimbus")
    # As the role-created user, over TCP to this member.
    host.check_output(
        "mariadb -h 127.0.0.1 -u nimbus -pgalera-secret-Zp4 nimbus -e %s",
        "INSERT INTO rt VALUES ('%s')" % marker,
    )
    third = testinfra.get_host("podman://nimbus-ctl-3")
    assert sql(third, "SELECT v FROM rt WHERE v = '%s'" % marker, "nimbus") == marker
