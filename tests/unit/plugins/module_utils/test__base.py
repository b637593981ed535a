import pytest

from ansible_collections.nimbus.cloud.plugins.module_utils._base import NimbusModule
from ansible_collections.nimbus.cloud.plugins.module_utils._errors import NimbusError, ValidationError


class Toy(NimbusModule):
    argument_spec = dict(
        name=dict(type="str", required=True),
        mode=dict(type="str", default="ok", choices=["ok", "fail", "missing", "diff"]),
    )

    def run(self):
        mode = self.params["mode"]
        if mode == "fail":
            raise ValidationError("name %s is taken" % self.params["name"], conflict=self.params["name"])
        if mode == "missing":
            self.require("libvirt-python", ImportError("No module named 'libvirt'"))
        if mode == "diff":
            self.changed = True
            self.set_diff({"state": "absent"}, {"state": "present"})
        return {"name": self.params["name"]}


class Outcome:
    def __init__(self, result, failed):
        self.result, self.failed = result, failed


@pytest.fixture
def run(run_module):
    return lambda args, **kw: Outcome(*run_module(Toy, args, **kw))


def test_result_gets_changed(run):
    out = run({"name": "a"})
    assert not out.failed
    assert out.result["changed"] is False and out.result["name"] == "a"


def test_collection_errors_become_fail_json_with_details(run):
    out = run({"name": "a", "mode": "fail"})
    assert out.failed
    assert out.result["msg"] == "name a is taken"
    assert out.result["conflict"] == "a"


def test_missing_library_names_it(run):
    out = run({"name": "a", "mode": "missing"})
    assert out.failed
    assert "libvirt-python" in out.result["msg"]
    assert "No module named" in out.result["exception"]


@pytest.mark.parametrize("diff", [True, False])
def test_diff_only_in_diff_mode(run, diff):
    out = run({"name": "a", "mode": "diff"}, diff=diff)
    assert out.result["changed"] is True
    assert ("diff" in out.result) is diff


def test_bad_arguments_fail_before_run(run):
    out = run({"mode": "ok"})
    assert out.failed and "name" in out.result["msg"]


def test_nimbus_error_keeps_details():
    err = NimbusError("boom", rc=2)
    assert err.msg == "boom" and err.details == {"rc": 2}


class Changer(NimbusModule):
    argument_spec = dict(path=dict(type="str", required=True))
    written = []

    def run(self):
        self.runner.apply("write %s" % self.params["path"], self.written.append, self.params["path"])
        self.changed = True
        return {}


class Reader(Changer):
    returns_commands = False

    def run(self):
        return {}


def test_check_mode_returns_what_a_real_run_would_do(run_module, monkeypatch):
    monkeypatch.setattr(Changer, "written", [])
    result, failed = run_module(Changer, {"path": "/etc/x"}, check_mode=True)
    assert not failed and result["changed"] and result["commands"] == ["write /etc/x"]
    assert Changer.written == []


def test_commands_only_in_check_mode_and_not_from_modules_that_only_read(run_module, monkeypatch):
    monkeypatch.setattr(Changer, "written", [])
    assert "commands" not in run_module(Changer, {"path": "/etc/x"})[0]
    assert Changer.written == ["/etc/x"]
    assert "commands" not in run_module(Reader, {"path": "/etc/x"}, check_mode=True)[0]
