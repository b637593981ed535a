"""nimbus.cloud.baremetal_node_info against a BMC on loopback (tests/support/ipmi_bmc.py)."""

import json

import pytest

from ansible_collections.nimbus.cloud.plugins.module_utils import _ipmi
from ansible_collections.nimbus.cloud.plugins.modules.baremetal_node_info import BaremetalNodeInfoModule
from ansible_collections.nimbus.cloud.tests.unit.plugins.modules.bmc_fixture import (
    PASSWORD, bmc_options, free_udp_port)

pytestmark = pytest.mark.skipif(_ipmi.PYGHMI_IMPORT_ERROR is not None, reason="pyghmi is not installed")


def test_reads_power_boot_device_sensors_and_fru_and_changes_nothing(run_module, start_bmc):
    bmc = start_bmc(power="on")
    for check_mode in (False, True):
        result, failed = run_module(BaremetalNodeInfoModule, {"bmc": bmc.options()}, check_mode=check_mode)
        assert not failed, result
        assert PASSWORD not in json.dumps(result) and "commands" not in result and not result["changed"]
        assert (result["power"], result["boot_device"]) == ("on", {"device": "default", "persistent": False})
        assert result["session"] == {"ipmi_version": "2.0", "cipher_suite": 3}
        assert (result["device"]["firmware"], result["device"]["ipmi_version"]) == ("1.00", "2.0")
        system = result["inventory"]["System"]
        assert (system["Manufacturer"], system["Product name"], system["Serial Number"]) == (
            "nimbus.cloud", "Test Machine", "TM-0001")
        assert result["sensors"] == [{"name": "Inlet Temp", "type": "Temperature", "value": 31.0, "units": "°C",
                                      "health": "ok", "states": [], "unavailable": False}]
        assert "sensors_error" not in result and "inventory_error" not in result
    assert bmc.journal() == []


@pytest.mark.parametrize("temperature, health", [(82, "warning"), (90, "critical")])
def test_a_sensor_past_its_thresholds_reads_unhealthy(run_module, start_bmc, temperature, health):
    bmc = start_bmc(temperature=temperature)
    result, failed = run_module(BaremetalNodeInfoModule, {"bmc": bmc.options(), "inventory": False})
    assert not failed and [(s["value"], s["health"]) for s in result["sensors"]] == [(float(temperature), health)]


def test_a_bmc_without_sensor_records_or_fru_is_reported_not_failed(run_module, start_bmc):
    """pyghmi's own BMC keeps neither (virtualbmc neither): what could be read is returned, with the BMC's
    answer for the rest."""
    bmc = start_bmc(bare=True)
    result, failed = run_module(BaremetalNodeInfoModule, {"bmc": bmc.options()})
    assert not failed, result
    assert result["sensors"] == [] and result["sensors_error"].endswith(
        "reading the sensors failed: Invalid command (IPMI completion code 0xc1)")
    assert "reading the FRU inventory failed" in result["inventory_error"]
    assert set(result["inventory"]) <= {"System"}


def test_sections_left_out_are_not_asked_for(run_module, start_bmc):
    bmc = start_bmc()
    result, failed = run_module(BaremetalNodeInfoModule, {"bmc": bmc.options(), "sensors": False,
                                                          "inventory": False})
    assert not failed and result["sensors"] == [] and result["inventory"] == {}
    assert "sensors_error" not in result and "inventory_error" not in result


def test_a_bmc_that_does_not_answer_fails_the_task(run_module):
    port = free_udp_port()
    result, failed = run_module(BaremetalNodeInfoModule, {"bmc": bmc_options(port)})
    assert failed and result["msg"].startswith("BMC 127.0.0.1 port %d: no answer" % port)
