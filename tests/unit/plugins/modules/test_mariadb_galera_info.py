import os
import pwd

import pytest
from ansible.module_utils import basic

from ansible_collections.nimbus.cloud.plugins.module_utils import _galera
from ansible_collections.nimbus.cloud.plugins.modules.mariadb_galera_info import MariadbGaleraInfo

U1 = "5ee99582-bb8d-11e2-b8e3-23de375c1d30"
SOCKET = "/run/mysqld/mysqld.sock"
PING = ("mariadb-admin", "--socket=" + SOCKET, "ping")
STATUS = ("mariadb", "--socket=" + SOCKET, "-N", "-B", "-e",
          "SHOW GLOBAL STATUS LIKE 'wsrep%'; SHOW GLOBAL VARIABLES LIKE 'wsrep_on'")


def grastate(seqno, safe=0):
    return "# GALERA saved state\nversion: 2.1\nuuid:    %s\nseqno:   %d\nsafe_to_bootstrap: %d\n" % (U1, seqno, safe)


@pytest.fixture
def datadir(tmp_path):
    return tmp_path


@pytest.fixture
def as_mysql(monkeypatch):
    monkeypatch.setattr(_galera.pwd, "getpwnam", lambda name: pwd.struct_passwd(
        (name, "x", os.getuid(), os.getgid(), "", "/", "/bin/false")))


def test_server_not_installed(run_module, fake_commands, monkeypatch, datadir):
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda self, name, required=False, opt_dirs=None: None)
    result, failed = run_module(MariadbGaleraInfo, {"datadir": str(datadir)})
    assert not failed and result["changed"] is False
    assert result["galera"]["installed"] is False and result["galera"]["running"] is False


def test_running_member(run_module, fake_commands, datadir):
    table = fake_commands[0]
    (datadir / "grastate.dat").write_text(grastate(-1))
    table[PING] = (0, "mysqld is alive", "")
    table[STATUS] = (0, "wsrep_cluster_size\t3\nwsrep_cluster_status\tPrimary\nwsrep_ready\tON\n"
                        "wsrep_local_state_comment\tSynced\nwsrep_last_committed\t21\n"
                        "wsrep_cluster_state_uuid\t%s\nwsrep_on\tON\n" % U1, "")
    result, failed = run_module(MariadbGaleraInfo, {"datadir": str(datadir)}, check_mode=True)
    galera = result["galera"]
    assert not failed
    assert galera["running"] and galera["cluster_status"] == "Primary" and galera["cluster_size"] == 3
    assert (galera["seqno"], galera["position_source"]) == (21, "status")


def test_cleanly_stopped_member_reads_grastate_only(run_module, fake_commands, datadir):
    table, calls = fake_commands
    (datadir / "grastate.dat").write_text(grastate(42, safe=1))
    table[PING] = (1, "", "connect failed")
    result = run_module(MariadbGaleraInfo, {"datadir": str(datadir), "recover_position": True})[0]
    galera = result["galera"]
    assert (galera["uuid"], galera["seqno"], galera["safe_to_bootstrap"]) == (U1, 42, True)
    assert galera["position_source"] == "grastate"
    assert [c["argv"][0] for c in calls] == ["/usr/bin/mariadb-admin"]


def test_crashed_member_recovers_its_position(run_module, fake_commands, datadir, as_mysql, monkeypatch):
    table, calls = fake_commands
    (datadir / "grastate.dat").write_text(grastate(-1))
    table[PING] = (1, "", "connect failed")
    original = basic.AnsibleModule.run_command

    def run_command(self, args, **kwargs):
        if os.path.basename(args[0]) == "mariadbd":
            log = [a for a in args if a.startswith("--log-error=")][0].split("=", 1)[1]
            with open(log, "w") as f:
                f.write("[Note] WSREP: Recovered position: %s:1234\n" % U1)
            calls.append({"argv": list(args)})
            return 0, "", ""
        return original(self, args, **kwargs)

    monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
    result, failed = run_module(MariadbGaleraInfo, {"datadir": str(datadir), "recover_position": True})
    assert not failed
    assert (result["galera"]["seqno"], result["galera"]["position_source"]) == (1234, "recovered")
    recover = calls[-1]["argv"]
    assert "--wsrep-recover" in recover and "--user=mysql" in recover


def test_crashed_member_without_recovery_reports_unknown(run_module, fake_commands, datadir):
    table, calls = fake_commands
    (datadir / "grastate.dat").write_text(grastate(-1))
    table[PING] = (1, "", "")
    result = run_module(MariadbGaleraInfo, {"datadir": str(datadir)})[0]
    assert (result["galera"]["seqno"], result["galera"]["position_source"]) == (-1, "none")
    assert len(calls) == 1


def test_recovery_that_reports_nothing_fails(run_module, fake_commands, datadir, as_mysql, monkeypatch):
    table = fake_commands[0]
    (datadir / "grastate.dat").write_text(grastate(-1))
    table[PING] = (1, "", "")
    original = basic.AnsibleModule.run_command

    def run_command(self, args, **kwargs):
        if os.path.basename(args[0]) == "mariadbd":
            return 0, "", ""  # wrote no log at all
        return original(self, args, **kwargs)

    monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
    result, failed = run_module(MariadbGaleraInfo, {"datadir": str(datadir), "recover_position": True})
    assert failed and "did not report a recovered position" in result["msg"]


def test_check_mode_does_not_replay_the_redo_log(run_module, fake_commands, datadir, monkeypatch):
    table, calls = fake_commands
    (datadir / "grastate.dat").write_text(grastate(-1))
    table[PING] = (1, "", "")
    made = []
    monkeypatch.setattr(_galera.tempfile, "mkdtemp", lambda **kw: made.append(kw) or str(datadir / "never"))
    result, failed = run_module(MariadbGaleraInfo, {"datadir": str(datadir), "recover_position": True},
                                check_mode=True)
    assert not failed and not result["changed"]
    assert (result["galera"]["seqno"], result["galera"]["position_source"]) == (-1, "skipped")
    assert [c["argv"][0] for c in calls] == ["/usr/bin/mariadb-admin"] and made == []
    assert result["commands"] == ["mariadbd --wsrep-recover"]
