"""nimbus.cloud.services: one systemctl show, then only the verbs that differ, batched and ordered."""

import pytest

from ansible_collections.nimbus.cloud.plugins.modules.services import ServicesModule

SHOW = ("systemctl", "show", "--property=Id,LoadState,ActiveState,UnitFileState", "--")


def block(name, active="active", file_state="enabled", load="loaded"):
    return "Id=%s\nLoadState=%s\nActiveState=%s\nUnitFileState=%s\n" % (name, load, active, file_state)


def answer(table, *blocks):
    names = tuple(b.split("\n", 1)[0][3:] for b in blocks)
    table[SHOW + names] = (0, "\n".join(blocks), "")


def argvs(calls):
    return [tuple([c["argv"][0].rsplit("/", 1)[1]] + c["argv"][1:]) for c in calls]


def test_converged_units_cost_one_read(run_module, fake_commands):
    table, calls = fake_commands
    answer(table, block("libvirtd.socket"), block("dbus.service", file_state="static"))
    units = [{"name": "libvirtd.socket", "state": "started", "enabled": True},
             {"name": "dbus.service", "state": "started", "enabled": True}]
    result, failed = run_module(ServicesModule, {"units": units}, diff=True)
    assert not failed, result.get("msg")
    assert not result["changed"] and result["started"] == []
    assert argvs(calls) == [SHOW + ("libvirtd.socket", "dbus.service")]
    assert result["diff"]["before"] == result["diff"]["after"]


def test_stops_and_disables_before_enabling_and_starting_each_verb_once(run_module, fake_commands):
    table, calls = fake_commands
    answer(table, block("mariadb.service", "inactive", "disabled"), block("mariadb.socket", "active", "enabled"),
           block("other.service", "failed", "disabled"))
    for verb, names in (("stop", ("mariadb.socket",)), ("disable", ("mariadb.socket",)),
                        ("enable", ("mariadb.service", "other.service")),
                        ("start", ("mariadb.service", "other.service"))):
        table[("systemctl", verb, "--") + names] = (0, "", "")
    units = [{"name": "mariadb.service", "state": "started", "enabled": True},
             {"name": "mariadb.socket", "state": "stopped", "enabled": False},
             {"name": "other.service", "state": "started", "enabled": True}]
    result, failed = run_module(ServicesModule, {"units": units}, diff=True)
    assert not failed, result.get("msg")
    assert result["changed"]
    assert result["started"] == ["mariadb.service", "other.service"]
    assert [c[1] for c in argvs(calls)[1:]] == ["stop", "disable", "enable", "start"]
    assert result["diff"]["after"]["mariadb.socket"] == {"state": "stopped", "enabled": False}
    assert result["units"][2]["active_state"] == "failed"


def test_check_mode_plans_without_acting_even_for_a_unit_not_installed_yet(run_module, fake_commands):
    table, calls = fake_commands
    answer(table, block("nimbus-api.service", "inactive", "", load="not-found"))
    result, failed = run_module(ServicesModule, {"units": [{"name": "nimbus-api.service", "state": "started",
                                                            "enabled": True}]}, check_mode=True)
    assert not failed, result.get("msg")
    assert result["changed"] and result["started"] == ["nimbus-api.service"]
    assert result["commands"] == ["systemctl enable -- nimbus-api.service", "systemctl start -- nimbus-api.service"]
    assert argvs(calls) == [SHOW + ("nimbus-api.service",)]


def test_left_alone_when_not_asked(run_module, fake_commands):
    table, calls = fake_commands
    answer(table, block("a.service", "inactive", "disabled"))
    result, failed = run_module(ServicesModule, {"units": [{"name": "a.service"}]})
    assert not failed and not result["changed"]


@pytest.mark.parametrize("units, message", [
    ([{"name": "--now"}], "not a unit name"),
    ([{"name": "-H evil"}], "not a unit name"),
    ([{"name": "nimbus-dhcp@.service", "state": "started"}], "needs an instance"),
    ([{"name": "a b.service"}], "not a unit name"),
    ([{"name": "a.service"}, {"name": "a.service"}], "listed twice"),
])
def test_bad_names_run_nothing(run_module, fake_commands, units, message):
    table, calls = fake_commands
    result, failed = run_module(ServicesModule, {"units": units})
    assert failed and message in result["msg"]
    assert calls == []


def test_a_missing_or_masked_unit_fails_before_any_change(run_module, fake_commands):
    table, calls = fake_commands
    answer(table, block("a.service", "inactive", "disabled"), block("gone.service", "inactive", "", "not-found"))
    result, failed = run_module(ServicesModule, {"units": [{"name": "a.service", "state": "started"},
                                                           {"name": "gone.service", "state": "started"}]})
    assert failed and "gone.service is not-found" in result["msg"]
    assert len(calls) == 1
    table.clear()
    calls.clear()
    answer(table, block("m.service", "inactive", "masked"))
    result, failed = run_module(ServicesModule, {"units": [{"name": "m.service", "enabled": True}]})
    assert failed and "masked" in result["msg"] and len(calls) == 1


def test_daemon_reload_first(run_module, fake_commands):
    table, calls = fake_commands
    table[("systemctl", "daemon-reload")] = (0, "", "")
    answer(table, block("a.service"))
    result, failed = run_module(ServicesModule, {"units": [{"name": "a.service", "state": "started"}],
                                                 "daemon_reload": True})
    assert not failed and result["changed"]
    assert argvs(calls)[0] == ("systemctl", "daemon-reload")
