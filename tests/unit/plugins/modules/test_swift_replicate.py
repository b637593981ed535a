"""nimbus.cloud.swift_replicate against a stand-in replicator that reads the configuration directory it is given
and writes Swift's recon figures where that directory says, as Swift's replicators do."""

import configparser
import getpass
import json
import os

import pytest

from ansible.module_utils import basic

from ansible_collections.nimbus.cloud.plugins.modules.swift_replicate import SwiftReplicateModule

IN_SYNC = {"object": {"attempted": 12, "success": 24, "failure": 0, "hashmatch": 24, "suffix_sync": 0,
                      "remove": 0},
           "account": {"attempted": 3, "success": 6, "failure": 0, "no_change": 6, "rsync": 0, "diff": 0},
           "container": {"attempted": 3, "success": 6, "failure": 0, "no_change": 6, "rsync": 0, "diff": 0}}


@pytest.fixture
def swift(tmp_path, monkeypatch):
    """A conf dir with the three servers' files and a replicator that answers from ``script``: one list of
    figures a server, one item a pass (the last repeats); ``calls`` records every argv and what it saw."""
    conf_dir = tmp_path / "etc-swift"
    conf_dir.mkdir()
    for server in ("account", "container", "object"):
        (conf_dir / ("%s-server.conf" % server)).write_text(
            "[DEFAULT]\nuser = %s\ndevices = /srv/node\n\n[%s-replicator]\nconcurrency = 2\n"
            % (getpass.getuser(), server))
    script = {server: [figures] for server, figures in IN_SYNC.items()}
    calls = []

    def run_command(self, args, **kwargs):
        name = os.path.basename(args[0])
        server = name[len("swift-"):-len("-replicator")]
        conf_d = args[1]
        files = sorted(os.listdir(conf_d))
        parser = configparser.RawConfigParser()
        parser.read([os.path.join(conf_d, f) for f in files])
        recon = parser.get("%s-replicator" % server, "recon_cache_path")
        section = "%s-replicator" % server
        calls.append({
            "argv": list(args), "files": files, "server_conf": os.path.realpath(os.path.join(conf_d, "00-server.conf")),
            "concurrency": parser.get(section, "concurrency"), "recon_owner": os.stat(recon).st_uid, "recon": recon,
            # The replicator writes as the server's user, not root: every directory above must let others by.
            "recon_reachable": all(os.stat(d).st_mode & 0o001 for d in _parents(recon))})
        done = sum(1 for c in calls if c["argv"][0] == args[0]) - 1
        figures = script[server][min(done, len(script[server]) - 1)]
        if figures is None:
            return 1, "", "Traceback: something broke"
        if figures != "no recon":
            with open(os.path.join(recon, "%s.recon" % server), "w", encoding="utf-8") as f:
                json.dump({"replication_stats": figures, "replication_last": 1}, f)
        return 0, "", ""

    monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path",
                        lambda self, name, required=False, opt_dirs=None: "/usr/bin/" + name)
    return conf_dir, script, calls


def _parents(path):
    path = os.path.dirname(path)
    while path != "/":
        yield path
        path = os.path.dirname(path)


def test_one_pass_of_each_replicator_in_a_recon_directory_of_its_own(swift, run_module):
    conf_dir, script, calls = swift
    script["object"] = [dict(IN_SYNC["object"], suffix_sync=7, rsync=3)]
    result, failed = run_module(SwiftReplicateModule, {"conf_dir": str(conf_dir)})
    assert not failed, result
    assert result["changed"] and not result["in_sync"]
    assert [(p["server"], p["pass"], p["moved"], p["in_sync"]) for p in result["passes"]] == [
        ("account", 1, 0, True), ("container", 1, 0, True), ("object", 1, 7, False)]
    assert result["passes"][2]["stats"]["suffix_sync"] == 7 and result["passes"][2]["stats"]["rsync"] == 3
    for call, server in zip(calls, ("account", "container", "object")):
        assert call["argv"][0] == "/usr/bin/swift-%s-replicator" % server and call["argv"][2:] == ["--once"]
        # The server's own file, with the settings of its replicator section, and the recon directory on top.
        assert call["files"] == ["00-server.conf", "99-recon.conf"]
        assert call["server_conf"] == str(conf_dir / ("%s-server.conf" % server))
        assert call["concurrency"] == "2"
        assert call["recon_owner"] == os.getuid() and call["recon_reachable"]
        # The directories are gone afterwards.
        assert not os.path.exists(call["argv"][1]) and not os.path.exists(call["recon"])


def test_until_in_sync_repeats_a_replicator_until_a_pass_moves_nothing(swift, run_module):
    conf_dir, script, calls = swift
    script["object"] = [dict(IN_SYNC["object"], suffix_sync=40), dict(IN_SYNC["object"], suffix_sync=1),
                        IN_SYNC["object"]]
    script["container"] = [dict(IN_SYNC["container"], diff=2, rsync=1), IN_SYNC["container"]]
    result, failed = run_module(SwiftReplicateModule, {"conf_dir": str(conf_dir), "until_in_sync": True,
                                                       "servers": ["container", "object"], "devices": ["d1", "d2"]})
    assert not failed, result
    assert result["changed"] and result["in_sync"]
    assert [(p["server"], p["pass"], p["moved"]) for p in result["passes"]] == [
        ("container", 1, 3), ("container", 2, 0), ("object", 1, 40), ("object", 2, 1), ("object", 3, 0)]
    assert all(c["argv"][2:] == ["--once", "--devices", "d1,d2"] for c in calls)


def test_in_sync_from_the_first_pass_is_no_change(swift, run_module):
    conf_dir, _script, calls = swift
    result, failed = run_module(SwiftReplicateModule, {"conf_dir": str(conf_dir), "until_in_sync": True})
    assert not failed and not result["changed"] and result["in_sync"]
    assert len(calls) == 3


def test_still_moving_after_max_passes_fails_with_every_pass(swift, run_module):
    conf_dir, script, calls = swift
    script["object"] = [dict(IN_SYNC["object"], suffix_sync=5, remove=1)]
    result, failed = run_module(SwiftReplicateModule, {"conf_dir": str(conf_dir), "until_in_sync": True,
                                                       "servers": ["object"], "max_passes": 3})
    assert failed
    assert result["msg"] == "the object replicator still moved 6 after 3 passes"
    assert len(result["passes"]) == 3 and len(calls) == 3 and result["changed"]


def test_failures_in_the_last_pass_fail_the_task_and_name_the_nodes(swift, run_module):
    conf_dir, script, calls = swift
    nodes = {"10.0.30.12": {"d2": 4}}
    script["object"] = [dict(IN_SYNC["object"], failure=4, failure_nodes=nodes)]
    result, failed = run_module(SwiftReplicateModule, {"conf_dir": str(conf_dir), "servers": ["object"]})
    assert failed
    assert result["msg"] == "the object replicator's last pass failed 4 times (10.0.30.12)"
    assert result["passes"][0]["failure_nodes"] == nodes and not result["in_sync"]
    # A failure that a later pass gets past is not the outcome.
    calls.clear()
    script["object"] = [dict(IN_SYNC["object"], failure=4, failure_nodes=nodes), IN_SYNC["object"]]
    result, failed = run_module(SwiftReplicateModule, {"conf_dir": str(conf_dir), "servers": ["object"],
                                                       "until_in_sync": True})
    assert not failed and result["in_sync"] and [p["failures"] for p in result["passes"]] == [4, 0]


@pytest.mark.parametrize("figures, message", [
    (None, "command failed (rc=1)"),
    ("no recon", "the object replicator ran but wrote no figures of its pass"),
])
def test_a_replicator_that_breaks_or_writes_nothing_fails_the_task(swift, run_module, figures, message):
    conf_dir, script, _calls = swift
    script["object"] = [figures]
    result, failed = run_module(SwiftReplicateModule, {"conf_dir": str(conf_dir), "servers": ["object"]})
    assert failed and message in result["msg"]


@pytest.mark.parametrize("args, message", [
    ({"devices": ["d1", "../etc"]}, "devices must be Swift device names"),
    ({"devices": ["-rf"]}, "devices must be Swift device names"),
    ({"devices": ["d1,d2"]}, "devices must be Swift device names"),
    ({"max_passes": 0}, "max_passes must be between 1 and 50"),
    ({"max_passes": 51}, "max_passes must be between 1 and 50"),
    ({"servers": []}, "servers must name at least one of"),
    ({"servers": ["proxy"]}, "value of servers must be one or more of"),
])
def test_bad_input_is_refused_before_anything_runs(swift, run_module, args, message):
    conf_dir, _script, calls = swift
    result, failed = run_module(SwiftReplicateModule, dict(args, conf_dir=str(conf_dir)))
    assert failed and message in result["msg"], result
    assert calls == []


def test_a_host_without_the_server_is_refused(swift, run_module):
    conf_dir, _script, calls = swift
    (conf_dir / "object-server.conf").unlink()
    result, failed = run_module(SwiftReplicateModule, {"conf_dir": str(conf_dir)})
    assert failed and result["msg"] == "%s not found: this host runs no object server" % (
        conf_dir / "object-server.conf")
    assert calls == []


def test_a_user_the_host_lacks_is_refused(swift, run_module):
    conf_dir, _script, calls = swift
    (conf_dir / "object-server.conf").write_text("[DEFAULT]\nuser = nimbus-no-such-user\n")
    result, failed = run_module(SwiftReplicateModule, {"conf_dir": str(conf_dir), "servers": ["object"]})
    assert failed and "names a user this host does not have: nimbus-no-such-user" in result["msg"]
    assert calls == []


def test_check_mode_runs_nothing_and_says_what_would_run(swift, run_module):
    conf_dir, _script, calls = swift
    result, failed = run_module(SwiftReplicateModule, {"conf_dir": str(conf_dir), "servers": ["object"],
                                                       "devices": ["d2"]}, check_mode=True)
    assert not failed and result["skipped"] and not result["changed"] and result["in_sync"] is None
    assert result["commands"] == ["swift-object-replicator %s --once --devices d2"
                                  % (conf_dir / "object-server.conf")]
    assert calls == []
