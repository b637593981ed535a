import pytest
import yaml

from ansible_collections.nimbus.cloud.plugins.module_utils import _libvirt
from ansible_collections.nimbus.cloud.plugins.modules import instance as instance_module
from ansible_collections.nimbus.cloud.plugins.modules.instance_info import InstanceInfoModule
from ansible_collections.nimbus.cloud.tests.unit.plugins.modules import fake_libvirt

DOCUMENTED = sorted(yaml.safe_load(instance_module.RETURN)["instance"]["contains"])


@pytest.fixture
def host(monkeypatch, tmp_path):
    hv = fake_libvirt.install(monkeypatch, tmp_path)
    hv.add_instance("web1", project="demo", state="running", server_group="web")
    hv.add_instance("db1", project="ops", state="shutoff")
    hv.add_instance("web2", project="demo", state="paused", server_group="web")
    hv.conn.add_domain(fake_libvirt.unmanaged_xml("legacy", "0b7f3e56-5c6e-4d27-9c53-7f6b1b0c1a11"), "running")
    return hv


@pytest.mark.parametrize("filters, names", [
    ({}, ["db1", "web1", "web2"]),
    ({"name": ["web2", "web1"]}, ["web1", "web2"]),
    ({"project": "demo"}, ["web1", "web2"]),
    ({"state": ["running"]}, ["web1"]),
    ({"state": ["shutoff", "paused"]}, ["db1", "web2"]),
    ({"project": "demo", "state": ["shutoff"]}, []),
    ({"project": "nobody"}, []),
    ({"name": ["ghost"]}, []),
    # Left out unless asked for, even by name.
    ({"name": ["legacy"]}, []),
    ({"include_unmanaged": True}, ["db1", "legacy", "web1", "web2"]),
    ({"include_unmanaged": True, "state": ["running"]}, ["legacy", "web1"]),
])
def test_filters(host, run_module, filters, names):
    result, failed = run_module(InstanceInfoModule, filters)
    assert not failed and result["changed"] is False
    assert [i["name"] for i in result["instances"]] == names


def test_instances_are_returned_as_the_instance_module_returns_them(host, run_module):
    result = run_module(InstanceInfoModule, {"include_unmanaged": True}, check_mode=True)[0]
    assert result["changed"] is False
    by_name = {i["name"]: i for i in result["instances"]}
    for inst in result["instances"]:
        assert sorted(inst) == DOCUMENTED
    web1 = by_name["web1"]
    assert (web1["state"], web1["project"], web1["server_group"], web1["managed"]) == ("running", "demo", "web", True)
    assert (web1["vcpus"], web1["ram_mb"], web1["flavor"]["name"], web1["hypervisor"]) == (1, 512, "m1.tiny",
                                                                                           "compute1")
    assert web1["nics"][0]["device"].startswith("vnet") and web1["console"]["vnc"]["port"] >= 5900
    assert by_name["db1"]["nics"][0]["device"] is None and by_name["db1"]["console"]["vnc"] is None
    legacy = by_name["legacy"]
    assert (legacy["managed"], legacy["project"], legacy["flavor"], legacy["ram_mb"]) == (False, None, None, 512)
    assert legacy["nics"][0]["mac"] == "52:54:00:aa:bb:cc"


def test_empty_hypervisor(monkeypatch, tmp_path, run_module):
    fake_libvirt.install(monkeypatch, tmp_path)
    result, failed = run_module(InstanceInfoModule, {})
    assert not failed and result == {"instances": [], "changed": False}


def test_needs_no_settings_file(monkeypatch, tmp_path, run_module):
    fake_libvirt.install(monkeypatch, tmp_path)

    def no_settings(path=None):
        raise AssertionError("instance_info read the settings file")

    monkeypatch.setattr(_libvirt, "load_settings", no_settings)
    assert run_module(InstanceInfoModule, {})[1] is False
