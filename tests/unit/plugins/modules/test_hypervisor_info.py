import types

import pytest
import yaml

from ansible_collections.nimbus.cloud.plugins.module_utils import _libvirt
from ansible_collections.nimbus.cloud.plugins.module_utils._compute import Flavor
from ansible_collections.nimbus.cloud.plugins.modules import hypervisor_info
from ansible_collections.nimbus.cloud.plugins.modules.hypervisor_info import HypervisorInfoModule
from ansible_collections.nimbus.cloud.tests.unit.plugins.modules import fake_libvirt

GIB = 1024 ** 3
DOCUMENTED = sorted(yaml.safe_load(hypervisor_info.RETURN)["hypervisor"]["contains"])
LOAD_SETTINGS = _libvirt.load_settings


@pytest.fixture
def host(monkeypatch, tmp_path):
    hv = fake_libvirt.install(monkeypatch, tmp_path, memory_mb=8192, cpus=4)
    statvfs = _libvirt.os.statvfs

    def disk_of_100_gib(path):
        if path == str(hv.instances):
            return types.SimpleNamespace(f_blocks=100 * GIB // 4096, f_frsize=4096)
        return statvfs(path)

    monkeypatch.setattr(_libvirt.os, "statvfs", disk_of_100_gib)
    return hv


def test_empty_hypervisor(host, run_module):
    result, failed = run_module(HypervisorInfoModule, {}, check_mode=True)
    assert not failed and result["changed"] is False
    hv = result["hypervisor"]
    assert sorted(hv) == DOCUMENTED
    assert (hv["hostname"], hv["virt_type"], hv["nested"], hv["availability_zone"], hv["aggregates"],
            hv["cpu_model"]) == ("compute1", "qemu", False, "nova", [], "x86_64")
    assert hv["vcpus"] == {"total": 4, "reserved": 0, "ratio": 4.0, "capacity": 16, "used": 0, "free": 16}
    assert hv["ram_mb"] == {"total": 8192, "reserved": 512, "ratio": 1.0, "capacity": 7680, "used": 0, "free": 7680}
    assert hv["disk_gb"] == {"total": 100, "reserved": 0, "ratio": 1.0, "capacity": 100, "used": 0, "free": 100}
    assert hv["instances"] == []


def test_every_domain_counts_stopped_and_foreign_ones_too(host, run_module):
    host.add_instance("web1", state="running", server_group="web", flavor=Flavor(1, 512, 10, "m1.tiny"))
    host.add_instance("db1", state="shutoff", project="ops", flavor=Flavor(2, 1024, 20, "m1.small"))
    host.conn.add_domain(fake_libvirt.unmanaged_xml("legacy", "0b7f3e56-5c6e-4d27-9c53-7f6b1b0c1a11",
                                                    memory_kib=262144), "running")
    hv = run_module(HypervisorInfoModule, {})[0]["hypervisor"]
    assert (hv["vcpus"]["used"], hv["vcpus"]["free"]) == (4, 12)
    assert (hv["ram_mb"]["used"], hv["ram_mb"]["free"]) == (1792, 5888)
    assert (hv["disk_gb"]["used"], hv["disk_gb"]["free"]) == (30, 70)
    assert hv["instances"] == [
        {"name": "db1", "uuid": host.conn.domains["db1"].UUIDString(), "project": "ops", "state": "shutoff",
         "vcpus": 2, "ram_mb": 1024, "disk_gb": 20, "server_group": None, "managed": True},
        {"name": "legacy", "uuid": "0b7f3e56-5c6e-4d27-9c53-7f6b1b0c1a11", "project": None, "state": "running",
         "vcpus": 1, "ram_mb": 256, "disk_gb": 0, "server_group": None, "managed": False},
        {"name": "web1", "uuid": host.conn.domains["web1"].UUIDString(), "project": "demo", "state": "running",
         "vcpus": 1, "ram_mb": 512, "disk_gb": 10, "server_group": "web", "managed": True},
    ]


def test_settings_are_reported(host, run_module):
    host.settings.update(virt_type="kvm", nested=True, availability_zone="az2", aggregates=["gpu", "ssd"],
                         allocation_ratios={"vcpus": 16.0, "ram_mb": 1.5, "disk_gb": 1.15},
                         reserved={"vcpus": 1, "ram_mb": 1024, "disk_gb": 0})
    hv = run_module(HypervisorInfoModule, {})[0]["hypervisor"]
    assert (hv["virt_type"], hv["nested"], hv["availability_zone"]) == ("kvm", True, "az2")
    assert hv["aggregates"] == ["gpu", "ssd"]
    assert (hv["vcpus"]["capacity"], hv["ram_mb"]["capacity"], hv["disk_gb"]["capacity"]) == (48, 10752, 115)


def test_missing_settings_file(host, run_module, monkeypatch, tmp_path):
    missing = str(tmp_path / "etc" / "hypervisor.json")
    monkeypatch.setattr(_libvirt, "load_settings", lambda: LOAD_SETTINGS(missing))
    result, failed = run_module(HypervisorInfoModule, {})
    assert failed and result["msg"].startswith(missing + " is missing: this host is not a nimbus.cloud hypervisor")
