import glob
import importlib
import os

import pytest
import yaml

from ansible_collections.nimbus.cloud.plugins.module_utils import _resource
from ansible_collections.nimbus.cloud.plugins.module_utils._errors import ValidationError
from ansible_collections.nimbus.cloud.plugins.module_utils._files import Records

MODULES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "plugins", "modules")


def resource_modules():
    found = []
    for path in sorted(glob.glob(os.path.join(MODULES, "*.py"))):
        name = os.path.basename(path)[:-3]
        module = importlib.import_module("ansible_collections.nimbus.cloud.plugins.modules." + name)
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, _resource.ResourceModule) \
                    and value is not _resource.ResourceModule:
                found.append(pytest.param(module, value, id=name))
    return found


def test_the_network_family_runs_on_the_state_machine():
    names = {p.id for p in resource_modules()}
    assert {"network", "subnet", "port", "router", "floating_ip", "security_group"} <= names


@pytest.mark.parametrize("module, cls", resource_modules())
def test_attributes_left_out_mean_not_given(module, cls):
    """An updatable attribute with a spec default would be "given" on every run and reset what a task left out."""
    attributes = tuple(cls.updatable) + tuple(cls.create_only)
    assert attributes and not set(cls.updatable) & set(cls.create_only)
    docs = yaml.safe_load(module.DOCUMENTATION)["options"]
    for attr in attributes:
        assert attr in cls.argument_spec, attr
        assert cls.argument_spec[attr].get("default") is None, attr
        assert "default" not in docs[attr], attr
        assert not cls.argument_spec[attr].get("required"), attr


@pytest.mark.parametrize("module, cls", resource_modules())
def test_documentation_says_what_can_change(module, cls):
    doc = yaml.safe_load(module.DOCUMENTATION)
    text = " ".join(doc["description"])
    assert "left out" in text.lower() and "current value" in text
    said = [line for line in doc["description"] if "create-only" in line.lower()]
    assert said, "the description names the create-only attributes (or says there are none)"
    for attr in cls.create_only:
        assert any("O(%s)" % attr in line for line in said), attr


def test_desired_compares_only_what_the_task_gives():
    current = {"mtu": 1450, "shared": True, "type": "vxlan"}
    assert _resource.desired("network", "n", current, {"mtu": 1400}, ("type",)) == dict(current, mtu=1400)
    assert _resource.desired("network", "n", current, {}, ("type",)) == current
    new = _resource.desired("network", "n", None, {"mtu": 1400}, (), {"shared": False})
    assert new == {"mtu": 1400, "shared": False}


def test_a_create_only_attribute_that_differs_is_refused():
    with pytest.raises(ValidationError, match=r"network n: type 'vxlan' -> 'vlan' cannot change"):
        _resource.desired("network", "n", {"type": "vxlan"}, {"type": "vlan"}, ("type",))
    assert _resource.desired("network", "n", {"type": "vxlan"}, {"type": "vxlan"}, ("type",)) == {"type": "vxlan"}


def test_given_ignores_none_but_keeps_empty_values():
    params = {"a": None, "b": "", "c": [], "d": False, "e": 0}
    assert _resource.given(params, ("a", "b", "c", "d", "e")) == {"b": "", "c": [], "d": False, "e": 0}


class Runner:
    def __init__(self, check_mode):
        self.check_mode = check_mode
        self.planned = []
        self.ran = []

    def change(self, argv, check_rc=True, data=None):
        if self.check_mode:
            self.planned.append(" ".join(argv))
            return None
        self.ran.append((argv, data))
        return True

    def apply(self, description, func, *args):
        if self.check_mode:
            self.planned.append(description)
            return None
        return func(*args)


@pytest.mark.parametrize("check_mode", [True, False])
def test_steps_go_through_the_gate(tmp_path, check_mode):
    records = Records(str(tmp_path / "records"))
    steps = [_resource.Command(["ip", "link", "add", "x", "type", "dummy"]),
             _resource.WriteFile(str(tmp_path / "f"), "text\n"),
             _resource.WriteRecord(records, "r", {"name": "r"}),
             _resource.Call("touch g", (tmp_path / "g").touch)]
    runner = Runner(check_mode)
    _resource.apply_steps(runner, steps)
    described = _resource.describe(steps)
    assert described == ["ip link add x type dummy", "write %s" % (tmp_path / "f"),
                         "write %s" % records.path("r"), "touch g"]
    if check_mode:
        assert runner.planned == described and runner.ran == [] and os.listdir(tmp_path) == []
    else:
        assert runner.ran == [(["ip", "link", "add", "x", "type", "dummy"], None)]
        assert sorted(os.listdir(tmp_path)) == ["f", "g", "records"] and records.read("r") == {"name": "r"}
        _resource.apply_steps(runner, [_resource.RemoveRecord(records, "r"),
                                       _resource.RemoveFile(str(tmp_path / "f")),
                                       _resource.RemoveTree(str(tmp_path / "records"))])
        assert sorted(os.listdir(tmp_path)) == ["g"]
