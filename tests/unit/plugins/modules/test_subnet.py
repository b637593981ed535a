import pytest

from ansible_collections.nimbus.cloud.plugins.modules.network import NetworkModule
from ansible_collections.nimbus.cloud.plugins.modules.port import PortModule
from ansible_collections.nimbus.cloud.plugins.modules.subnet import SubnetModule

from .. import cases
from . import netfake
from .netfake import run_case, tree

kernel = netfake.kernel

MODULES = {"network": NetworkModule, "subnet": SubnetModule, "port": PortModule}
NET = {"name": "demo-net", "segmentation_id": 1001}
SUBNET = {"name": "demo-subnet", "network": "demo-net", "cidr": "10.20.0.0/24"}


@pytest.fixture
def network(kernel, run_module):
    result, failed = run_module(NetworkModule, NET)
    assert not failed
    del kernel.ran[:]
    return kernel


@pytest.mark.parametrize("case", cases.params(__file__, "subnet_module.yaml"))
def test_subnet(case, network, run_module):
    run_case(dict(case, module="subnet"), network, run_module, MODULES)


def test_check_mode_creates_no_file_directory_or_lock_and_returns_commands(network, run_module):
    before = tree(network.tmp)
    result, failed = run_module(SubnetModule, SUBNET, check_mode=True)
    assert not failed and result["changed"] and network.ran == []
    assert tree(network.tmp) == before and not (network.tmp / "state").exists()
    assert "systemctl restart nimbus-dhcp@demo-net.service" in result["commands"]
    assert result["subnet"]["dhcp_server"] == "10.20.0.2"


def test_check_mode_on_an_existing_subnet_leaves_its_lock_and_records_alone(network, run_module):
    run_module(SubnetModule, SUBNET)
    lock = network.tmp / "state" / "demo-net" / "ipam.lock"
    assert lock.exists()
    lock.unlink()
    before = tree(network.tmp)
    result, failed = run_module(SubnetModule, dict(SUBNET, dns_servers=["10.20.0.1"]), check_mode=True)
    assert not failed and result["changed"] and tree(network.tmp) == before and not lock.exists()
    assert result["commands"][0].startswith("write the IPAM records of demo-net")


def test_dnsmasq_files_follow_the_subnet(network, run_module):
    run_module(SubnetModule, dict(SUBNET, dns_servers=["10.20.0.1"]))
    state = network.tmp / "state" / "demo-net"
    assert "dhcp-range=set:s-" in (state / "dnsmasq.conf").read_text()
    assert "option:dns-server,10.20.0.1" in (state / "opts").read_text()
    run_module(SubnetModule, {"name": "demo-subnet", "network": "demo-net", "dns_servers": []})
    assert "dns-server" not in (state / "opts").read_text()
