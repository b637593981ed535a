import pytest

from ansible_collections.nimbus.cloud.plugins.modules.instance_action import InstanceActionModule
from ansible_collections.nimbus.cloud.tests.unit.plugins.modules import fake_libvirt


@pytest.fixture
def host(monkeypatch, tmp_path):
    return fake_libvirt.install(monkeypatch, tmp_path)


def act(run_module, action, check_mode=False, **extra):
    return run_module(InstanceActionModule, dict({"name": "web1", "action": action}, **extra), check_mode=check_mode,
                      diff=True)


# state before, managed save image, action, extra options, libvirt calls, state after
ACTS = [
    ("shutoff", False, "start", {}, ["create"], "running"),
    ("crashed", False, "start", {}, ["create"], "running"),
    ("running", False, "shutdown", {}, ["shutdown"], "shutoff"),
    ("running", False, "shutdown", {"shutdown_timeout": 0}, ["destroy"], "shutoff"),
    ("paused", False, "shutdown", {}, ["destroy"], "shutoff"),
    ("pmsuspended", False, "shutdown", {}, ["destroy"], "shutoff"),
    ("running", False, "reboot", {}, ["reboot"], "running"),
    ("running", False, "reboot", {"reboot_type": "hard"}, ["reset"], "running"),
    ("running", False, "pause", {}, ["suspend"], "paused"),
    ("paused", False, "unpause", {}, ["resume"], "running"),
    ("running", False, "suspend", {}, ["managedSave"], "shutoff"),
    ("paused", False, "suspend", {}, ["managedSave"], "shutoff"),
    ("shutoff", True, "resume", {}, ["create"], "running"),
    ("paused", False, "resume", {}, ["resume"], "running"),
    ("pmsuspended", False, "resume", {}, ["pMWakeup"], "running"),
]

ALREADY_DONE = [
    ("running", False, "start"),
    ("shutoff", False, "shutdown"),
    ("paused", False, "pause"),
    ("running", False, "unpause"),
    ("shutoff", True, "suspend"),
    ("running", False, "resume"),
]

REFUSED = [
    ("shutoff", False, "reboot", "cannot reboot instance web1 while it is shutoff"),
    ("paused", False, "start", "cannot start instance web1 while it is paused"),
    ("shutoff", False, "pause", "cannot pause instance web1 while it is shutoff"),
    ("shutoff", False, "suspend", "cannot suspend instance web1 while it is shutoff"),
    ("shutoff", False, "resume", "cannot resume instance web1: it is shut off and was not suspended"),
]


def ids(rows):
    return ["%s-%s%s" % (row[2], row[0], "-saved" if row[1] else "") for row in rows]


@pytest.mark.parametrize("state, saved, action, extra, calls, after", ACTS, ids=ids(ACTS))
def test_action(host, run_module, state, saved, action, extra, calls, after):
    host.add_instance("web1", state=state, managed_save=saved)
    result, failed = act(run_module, action, **extra)
    assert not failed, result.get("msg")
    assert result["changed"] is True
    assert host.conn.calls("web1") == calls
    assert result["instance"]["state"] == after
    assert result["diff"] == {"before": {"state": state}, "after": {"state": after}}


@pytest.mark.parametrize("state, saved, action, extra, calls, after", ACTS, ids=ids(ACTS))
def test_action_in_check_mode(host, run_module, state, saved, action, extra, calls, after):
    host.add_instance("web1", state=state, managed_save=saved)
    result, failed = act(run_module, action, check_mode=True, **extra)
    assert not failed and result["changed"] is True
    assert host.conn.log == []
    assert host.conn.domains["web1"].state_no == fake_libvirt.STATE_NUMBERS[state]
    assert result["instance"]["state"] == after
    assert result["diff"] == {"before": {"state": state}, "after": {"state": after}}


@pytest.mark.parametrize("check_mode", [False, True], ids=["real", "check"])
@pytest.mark.parametrize("state, saved, action", ALREADY_DONE, ids=ids(ALREADY_DONE))
def test_action_already_done_changes_nothing(host, run_module, state, saved, action, check_mode):
    host.add_instance("web1", state=state, managed_save=saved)
    result, failed = act(run_module, action, check_mode=check_mode)
    assert not failed and result["changed"] is False
    assert host.conn.log == [] and result["instance"]["state"] == state


def test_reboot_always_acts(host, run_module):
    host.add_instance("web1", state="running")
    assert [act(run_module, "reboot")[0]["changed"] for dummy in range(2)] == [True, True]
    assert host.conn.calls("web1") == ["reboot", "reboot"]


@pytest.mark.parametrize("state, saved, action, message", REFUSED, ids=ids(REFUSED))
def test_action_that_cannot_apply_fails(host, run_module, state, saved, action, message):
    host.add_instance("web1", state=state, managed_save=saved)
    result, failed = act(run_module, action)
    assert failed and result["msg"] == message
    assert host.conn.log == []


def test_missing_instance(host, run_module):
    result, failed = act(run_module, "start")
    assert failed and result["msg"] == "instance web1 does not exist on this hypervisor"


def test_invalid_name(host, run_module):
    result, failed = run_module(InstanceActionModule, {"name": "../web1", "action": "start"})
    assert failed and "invalid instance name" in result["msg"]


def test_libvirt_error_is_reported(host, run_module):
    host.add_instance("web1", state="running")
    host.conn.failures["suspend"] = fake_libvirt.libvirtError("internal error: guest agent is busy")
    result, failed = act(run_module, "pause")
    assert failed and result["msg"] == "libvirt could not pause web1: internal error: guest agent is busy"
