"""nimbus.cloud.baremetal_power against BMCs speaking IPMI 2.0 on loopback (tests/support/ipmi_bmc.py): what each
task sends the machine, check mode sending nothing, and BMCs that must be refused."""

import json

import pytest

from ansible_collections.nimbus.cloud.plugins.module_utils import _ipmi
from ansible_collections.nimbus.cloud.plugins.modules.baremetal_power import BaremetalPowerModule
from ansible_collections.nimbus.cloud.tests.unit.plugins.modules.bmc_fixture import (
    PASSWORD, bmc_options, free_udp_port)

pytestmark = pytest.mark.skipif(_ipmi.PYGHMI_IMPORT_ERROR is not None, reason="pyghmi is not installed")


def power(run_module, bmc, check_mode=False, **args):
    result, failed = run_module(BaremetalPowerModule, dict(args, bmc=bmc.options()), check_mode=check_mode)
    assert not failed, result
    assert PASSWORD not in json.dumps(result)
    return result


def test_on_with_a_boot_device_in_check_mode_then_for_real_then_unchanged(run_module, start_bmc):
    bmc = start_bmc()
    predicted = power(run_module, bmc, check_mode=True, state="on", boot_device="network")
    assert predicted["changed"] and predicted["requests"] == ["boot device network", "power on"]
    assert (predicted["previous_power"], predicted["power"]) == ("off", "on")
    assert predicted["boot_device"] == {"device": "network", "persistent": False}
    assert predicted["session"] == {"ipmi_version": "2.0", "cipher_suite": 3}
    assert bmc.journal() == []

    done = power(run_module, bmc, state="on", boot_device="network")
    assert done["changed"] and done["requests"] == predicted["requests"]
    assert (done["power"], done["boot_device"]) == ("on", predicted["boot_device"])
    assert bmc.journal() == ["bootdev", "network", "on"]

    again = power(run_module, bmc, state="on", boot_device="network")
    assert not again["changed"] and again["requests"] == [] and again["power"] == "on"
    assert power(run_module, bmc, check_mode=True, state="on", boot_device="network")["changed"] is False
    assert bmc.journal() == ["bootdev", "network", "on"]


@pytest.mark.parametrize("start, state, sent, after", [
    ("on", "cycle", ["off", "on"], "on"),
    ("off", "cycle", ["on"], "on"),
    ("on", "reset", ["reset"], "on"),
    ("off", "reset", ["on"], "on"),
    ("on", "off", ["off"], "off"),
    ("on", "soft_off", ["shutdown"], "off"),
])
def test_each_state_sends_what_it_says(run_module, start_bmc, start, state, sent, after):
    bmc = start_bmc(power=start)
    result = power(run_module, bmc, state=state)
    assert result["changed"] and (result["previous_power"], result["power"]) == (start, after)
    assert bmc.journal() == sent


@pytest.mark.parametrize("state", ["cycle", "reset"])
def test_reset_and_cycle_act_on_every_run(run_module, start_bmc, state):
    bmc = start_bmc(power="on")
    assert power(run_module, bmc, state=state)["changed"]
    assert power(run_module, bmc, state=state)["changed"]
    assert len(bmc.journal()) == (4 if state == "cycle" else 2)


def test_soft_off_that_the_machine_ignores_fails_after_the_wait(run_module, start_bmc):
    bmc = start_bmc(power="on", acpi=False)
    result, failed = run_module(BaremetalPowerModule, {"bmc": bmc.options(), "state": "soft_off", "wait": 2})
    assert failed and "still not off 2 s after power shutdown" in result["msg"] and "state=off forces it" in \
        result["msg"]
    assert bmc.journal() == ["shutdown"]


def test_a_persistent_boot_device_is_sent_and_a_bmc_that_drops_persistence_is_asked_again(run_module, start_bmc):
    # pyghmi's BMC, like virtualbmc, always reports a boot device as for the next boot only: the module cannot
    # see that a persistent one holds, so it sends it again (reported as a change).
    bmc = start_bmc()
    for run in range(2):
        result = power(run_module, bmc, boot_device="disk", persistent=True)
        assert result["changed"] and result["requests"] == ["boot device disk (persistent)"], run
    assert bmc.journal() == ["bootdev", "hd", "bootdev", "hd"]


def test_a_bmc_that_answers_another_suite_than_proposed_is_followed(run_module, start_bmc):
    """pyghmi's own BMC server answers suite 3 to a proposal of 17, which broke pyghmi's client with
    struct.error: the module proposes suite 3 again and goes on."""
    bmc = start_bmc(suites="stock")
    result = power(run_module, bmc, state="on")
    assert result["session"]["cipher_suite"] == 3 and bmc.journal() == ["on"]


def failure(run_module, options, **args):
    result, failed = run_module(BaremetalPowerModule, dict({"bmc": options, "state": "on"}, **args))
    assert failed, result
    assert PASSWORD not in json.dumps(result) and "wrong-Pass-1" not in json.dumps(result)
    return result


def test_cipher_suite_zero_is_refused_and_allowing_it_says_pyghmi_cannot(run_module, start_bmc):
    bmc = start_bmc(suites="none")
    refused = failure(run_module, bmc.options())
    assert refused["msg"].startswith("BMC 127.0.0.1 port %d: the BMC chose a session without authentication"
                                     % bmc.port)
    assert "refused; allow_insecure accepts it" in refused["msg"]
    allowed = failure(run_module, bmc.options(allow_insecure=True))
    assert "pyghmi's client cannot hold a session without authentication" in allowed["msg"]
    assert bmc.journal() == []


def test_a_wrong_password_fails_at_once_without_retries_and_without_the_password(run_module, start_bmc):
    bmc = start_bmc()
    result = failure(run_module, bmc.options(password="wrong-Pass-1", retries=3, retry_interval=5))
    assert result["msg"] == ("BMC 127.0.0.1 port %d: refused the user name or password (not tried again: BMCs "
                             "lock accounts out)" % bmc.port)
    assert result["attempts"] == 1 and bmc.journal() == []


def test_an_unknown_user_fails_within_the_timeout(run_module, start_bmc):
    bmc = start_bmc()
    result = failure(run_module, bmc.options(username="nobody", timeout=2))
    assert "no session after 2 s" in result["msg"] and "check bmc.username" in result["msg"]


def test_a_bmc_that_does_not_answer_is_named(run_module):
    port = free_udp_port()
    result = failure(run_module, bmc_options(port))
    assert result["msg"] == ("BMC 127.0.0.1 port %d: no answer (is the address right, the BMC up and its LAN "
                             "channel enabled?)" % port)


@pytest.mark.parametrize("change, message", [
    ({"address": "10.0.0.1; reboot"}, "bmc.address '10.0.0.1; reboot' is neither an IP address nor a host name"),
    ({"address": "-oProxyCommand=x"}, "is neither an IP address nor a host name"),
    ({"port": 0}, "bmc.port must be 1-65535"),
    ({"username": "a" * 17}, "bmc.username must be 1-16 printable ASCII characters"),
    ({"username": "root\nadmin"}, "bmc.username must be 1-16"),
    ({"username": "admin\n"}, "bmc.username must be 1-16"),
    ({"address": "bmc.example\n"}, "is neither an IP address nor a host name"),
    ({"password": "x" * 21}, "bmc.password must be 1-20 printable ASCII characters"),
    ({"password": "pass word"}, "bmc.password must be 1-20"),
    ({"password": "Pass-word-1\n"}, "bmc.password must be 1-20"),
    ({"timeout": 0}, "bmc.timeout must be at least 1 second"),
    ({"retries": -1}, "cannot be negative"),
])
def test_bad_bmc_options_are_refused_before_any_packet(run_module, change, message):
    # Port 9 on loopback: nothing would answer, and the check comes first anyway.
    result, failed = run_module(BaremetalPowerModule, {"bmc": dict(bmc_options(9), **change), "state": "on"})
    assert failed and message in result["msg"]
    assert "x" * 21 not in result["msg"] and "pass word" not in result["msg"]


def test_a_task_needs_a_state_or_a_boot_device(run_module):
    result, failed = run_module(BaremetalPowerModule, {"bmc": bmc_options(9)})
    assert failed and "one of the following is required: state, boot_device" in result["msg"]
