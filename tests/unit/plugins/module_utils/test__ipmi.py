"""module_utils/_ipmi.py: the power planner's table, and the login's retries (no BMC needed)."""

import pytest

from ansible_collections.nimbus.cloud.plugins.module_utils import _ipmi
from ansible_collections.nimbus.cloud.plugins.module_utils._ipmi import Bmc, BmcError, power_plan

NEXT_BOOT_DEFAULT = {"device": "default", "persistent": False, "uefi": False}
NEXT_BOOT_NETWORK = {"device": "network", "persistent": False, "uefi": False}


@pytest.mark.parametrize("power, state, boot, boot_device, persistent, requests, after", [
    ("off", "on", NEXT_BOOT_DEFAULT, None, False, ["power on"], "on"),
    ("on", "on", NEXT_BOOT_DEFAULT, None, False, [], "on"),
    ("on", "off", NEXT_BOOT_DEFAULT, None, False, ["power off"], "off"),
    ("off", "off", NEXT_BOOT_DEFAULT, None, False, [], "off"),
    ("on", "soft_off", NEXT_BOOT_DEFAULT, None, False, ["power soft off"], "off"),
    ("off", "soft_off", NEXT_BOOT_DEFAULT, None, False, [], "off"),
    ("on", "reset", NEXT_BOOT_DEFAULT, None, False, ["power reset"], "on"),
    ("off", "reset", NEXT_BOOT_DEFAULT, None, False, ["power on"], "on"),
    ("on", "cycle", NEXT_BOOT_DEFAULT, None, False, ["power off", "power on"], "on"),
    ("off", "cycle", NEXT_BOOT_DEFAULT, None, False, ["power on"], "on"),
    ("on", None, NEXT_BOOT_DEFAULT, "network", False, ["boot device network"], "on"),
    ("on", None, NEXT_BOOT_NETWORK, "network", False, [], "on"),
    ("on", None, NEXT_BOOT_NETWORK, "network", True, ["boot device network (persistent)"], "on"),
    ("on", "cycle", NEXT_BOOT_DEFAULT, "network", False, ["boot device network", "power off", "power on"], "on"),
    ("off", "on", {"device": "floppy", "persistent": False, "uefi": False}, "disk", False,
     ["boot device disk", "power on"], "on"),
])
def test_power_plans(power, state, boot, boot_device, persistent, requests, after):
    plan = power_plan(power, state, boot, boot_device, persistent)
    assert plan.requests == requests and plan.power == after
    assert plan.sets_boot == any(r.startswith("boot device") for r in requests)
    if boot_device is not None:
        assert plan.boot == {"device": boot_device, "persistent": persistent}


def test_boot_devices_the_modules_do_not_name_read_as_unknown():
    assert _ipmi.boot_view({"device": "floppy", "persistent": True}) == {"device": "unknown", "persistent": True}
    assert _ipmi.boot_view({"device": "hd", "persistent": False}) == {"device": "disk", "persistent": False}


class FakeClock:
    def __init__(self):
        self.now = 100.0
        self.slept = []

    def sleep(self, seconds):
        self.slept.append(round(seconds, 3))
        self.now += seconds

    def __call__(self):
        return self.now


def options(**changes):
    base = dict(address="192.0.2.10", port=623, username="admin", password="Pass-word-1", privilege="operator",
                allow_insecure=False, timeout=5, retries=2, retry_interval=3.0)
    base.update(changes)
    return base


class Unanswered(Exception):
    """What pyghmi raises for a BMC that never answered: an IpmiException whose text is 'None'."""

    def __str__(self):
        return "None"


def test_an_unanswered_login_is_tried_again_no_sooner_than_the_interval(monkeypatch):
    clock = FakeClock()
    bmc = Bmc(options(), sleep=clock.sleep, clock=clock)
    attempts = []

    def login_once():
        attempts.append(clock.now)
        clock.now += 1.0  # each attempt takes a second
        raise Unanswered()

    monkeypatch.setattr(bmc, "_login_once", login_once)
    with pytest.raises(BmcError) as failed:
        bmc.power()
    assert failed.value.msg == ("BMC 192.0.2.10 port 623: no answer (is the address right, the BMC up and its LAN "
                                "channel enabled?)")
    assert failed.value.details == {"bmc": "BMC 192.0.2.10 port 623", "attempts": 3}
    assert attempts == [100.0, 103.0, 106.0] and clock.slept == [2.0, 2.0]


@pytest.mark.parametrize("error, message", [
    (Exception("Incorrect password provided"), "refused the user name or password"),
    (Exception("Unauthorized name"), "refused the user name or password"),
    (Exception("the BMC offers IPMI 1.5 only (no RMCP+): refused; allow_insecure accepts it"), "IPMI 1.5 only"),
])
def test_refusals_are_never_tried_again(monkeypatch, error, message):
    clock = FakeClock()
    bmc = Bmc(options(), sleep=clock.sleep, clock=clock)
    calls = []

    def login_once():
        calls.append(1)
        raise error

    monkeypatch.setattr(bmc, "_login_once", login_once)
    with pytest.raises(BmcError) as failed:
        bmc.power()
    assert message in failed.value.msg and len(calls) == 1 and clock.slept == []


def test_the_password_never_shows_even_when_the_library_puts_it_in_its_text(monkeypatch):
    bmc = Bmc(options(retries=0))

    def login_once():
        raise Exception("BMC said: bad credentials Pass-word-1 for admin")

    monkeypatch.setattr(bmc, "_login_once", login_once)
    with pytest.raises(BmcError) as failed:
        bmc.power()
    assert "Pass-word-1" not in failed.value.msg and "********" in failed.value.msg


def test_pyghmis_struct_error_becomes_the_documented_fix(monkeypatch):
    import struct

    bmc = Bmc(options(retries=3))

    def login_once():
        struct.pack("32B", *range(20))

    monkeypatch.setattr(bmc, "_login_once", login_once)
    with pytest.raises(BmcError) as failed:
        bmc.power()
    assert "other algorithms than the client's" in failed.value.msg and "cipher suite 3 or 17" in failed.value.msg
    assert failed.value.details["attempts"] == 1
