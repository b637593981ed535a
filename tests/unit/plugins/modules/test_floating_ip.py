"""floating_ip: table-driven cases on the simulated network node of test_router (check mode, real, repeat)."""

import pytest

from ansible_collections.nimbus.cloud.plugins.modules.floating_ip import FloatingIpModule
from ansible_collections.nimbus.cloud.plugins.modules.router import RouterModule
from ansible_collections.nimbus.cloud.tests.unit.plugins import cases
from ansible_collections.nimbus.cloud.tests.unit.plugins.modules import test_router as node_cases

cloud = node_cases.cloud

ROUTER = {"name": "r1", "external_network": "public", "interfaces": [{"network": "demo-net", "subnet": "demo-subnet"}]}


@pytest.mark.parametrize("case", cases.params(__file__, "floating_ip_cases.yaml"))
def test_floating_ip(case, cloud, run_module):
    case = dict(case, setup=[{"module": "router", "args": ROUTER}] + case.get("setup", []))
    node_cases.run_case(case, cloud, run_module, "floating_ip")


def test_check_mode_returns_commands_and_writes_nothing(cloud, run_module):
    node, log, tmp_path = cloud
    run_module(RouterModule, ROUTER)
    state = node.state()
    result, failed = run_module(FloatingIpModule, {"name": "f1", "router": "r1"}, check_mode=True)
    assert not failed and result["changed"] and result["floating_ip"]["floating_ip"] == "198.51.100.101"
    assert result["commands"][:2] == ["reserve fip-f1 on public", "write %s/floating-ips/f1.json" % tmp_path]
    assert not (tmp_path / "floating-ips").exists() and node.state() == state
