import pytest

from ansible_collections.nimbus.cloud.plugins.module_utils import _network as nw
from ansible_collections.nimbus.cloud.plugins.modules.network import NetworkModule
from ansible_collections.nimbus.cloud.plugins.modules.port import PortModule
from ansible_collections.nimbus.cloud.plugins.modules.subnet import SubnetModule

from .. import cases
from . import netfake
from .netfake import run_case, tree

kernel = netfake.kernel

MODULES = {"network": NetworkModule, "subnet": SubnetModule, "port": PortModule}
PORT = {"name": "vm1-eth0", "network": "demo-net", "project": "demo", "device_id": "vm1", "hostname": "vm1"}


@pytest.fixture
def subnet(kernel, run_module):
    for module, args in ((NetworkModule, {"name": "demo-net", "segmentation_id": 1001}),
                         (SubnetModule, {"name": "demo-subnet", "network": "demo-net", "cidr": "10.20.0.0/24",
                                         "allocation_pools": [{"start": "10.20.0.10", "end": "10.20.0.20"}]})):
        result, failed = run_module(module, args)
        assert not failed, result
    del kernel.ran[:]
    return kernel


@pytest.mark.parametrize("case", cases.params(__file__, "port_module.yaml"))
def test_port(case, subnet, run_module):
    run_case(dict(case, module="port"), subnet, run_module, MODULES)


def test_check_mode_creates_no_file_directory_or_lock_and_returns_commands(subnet, run_module):
    (subnet.tmp / "state" / "demo-net" / "ipam.lock").unlink()
    before = tree(subnet.tmp)
    result, failed = run_module(PortModule, PORT, check_mode=True)
    assert not failed and result["changed"] and subnet.ran == [] and tree(subnet.tmp) == before
    assert result["commands"] == ["write the IPAM records of demo-net in %s" % (subnet.tmp / "state" / "demo-net"),
                                  "systemctl reload nimbus-dhcp@demo-net.service"]


def test_the_reservation_reaches_dnsmasq(subnet, run_module):
    result, failed = run_module(PortModule, PORT)
    hosts = (subnet.tmp / "state" / "demo-net" / "hosts").read_text().splitlines()
    assert "%s,10.20.0.11,vm1" % result["port"]["mac"] in hosts


def test_a_network_without_subnets_cannot_hold_ports(kernel, run_module):
    run_module(NetworkModule, {"name": "demo-net", "segmentation_id": 1001})
    before = tree(kernel.tmp)
    result, failed = run_module(PortModule, PORT)
    assert failed and "network demo-net has no subnet on this host" in result["msg"] and tree(kernel.tmp) == before


def test_without_dnsmasq_running_nothing_is_reloaded(subnet, run_module):
    subnet.active.discard(nw.DHCP_UNIT % "demo-net")
    result, failed = run_module(PortModule, PORT)
    assert not failed and result["changed"] and subnet.ran == []
