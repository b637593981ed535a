import json

import pytest

from ansible_collections.nimbus.cloud.plugins.modules.network import NetworkModule
from ansible_collections.nimbus.cloud.plugins.modules.port import PortModule
from ansible_collections.nimbus.cloud.plugins.modules.subnet import SubnetModule

from .. import cases
from . import netfake
from .netfake import net8, run_case, tree

kernel = netfake.kernel

MODULES = {"network": NetworkModule, "subnet": SubnetModule, "port": PortModule}


@pytest.mark.parametrize("case", cases.params(__file__, "network_module.yaml"))
def test_network(case, kernel, run_module):
    run_case(dict(case, module="network"), kernel, run_module, MODULES)


def test_check_mode_creates_no_file_directory_or_lock_and_returns_commands(kernel, run_module):
    before = tree(kernel.tmp)
    result, failed = run_module(NetworkModule, {"name": "demo-net", "segmentation_id": 5}, check_mode=True)
    assert not failed and result["changed"] and tree(kernel.tmp) == before and kernel.ran == []
    assert "ip link add nb-%s mtu 1450 type bridge nf_call_iptables 1" % net8("demo-net") in result["commands"]
    assert not (kernel.tmp / "etc" / "networks").exists()


def test_the_record_holds_what_other_hosts_and_modules_read(kernel, run_module):
    run_module(NetworkModule, {"name": "demo-net", "segmentation_id": 5, "project": "demo",
                               "vxlan_peers": ["10.89.0.3", "10.89.0.2"]})
    record = json.loads((kernel.tmp / "etc" / "networks" / "demo-net.json").read_text())
    assert record["peers"] == ["10.89.0.3"] and record["local_ip"] == "10.89.0.2" and record["project"] == "demo"
    assert record["bridge"] == "nb-" + net8("demo-net") and record["mtu"] == 1450


def test_without_the_bridges_role_the_module_says_so(kernel, run_module):
    (kernel.tmp / "etc" / "bridges.json").unlink()
    result, failed = run_module(NetworkModule, {"name": "demo-net", "segmentation_id": 5})
    assert failed and "apply the nimbus.cloud.bridges role" in result["msg"] and kernel.ran == []
