import pytest

from ansible_collections.nimbus.cloud.plugins.modules.rabbitmq_user import RabbitmqUserModule

PASSWORD = "mq-Secret-4xQ"
OLD = "mq-Old-9zW"
LIST = ("rabbitmqctl", "--quiet", "list_users", "--formatter", "json")
AUTH = ("rabbitmqctl", "--quiet", "authenticate_user", "nimbus")
ADD = ("rabbitmqctl", "--quiet", "add_user", "nimbus")
CHANGE = ("rabbitmqctl", "--quiet", "change_password", "nimbus")
DELETE = ("rabbitmqctl", "--quiet", "delete_user", "nimbus")
WITH_NIMBUS = '[{"user":"nimbus","tags":[]},{"user":"guest","tags":["administrator"]}]'
WITHOUT = '[{"user":"guest","tags":["administrator"]}]'
DENIED = (65, "", 'Error:\nError: failed to authenticate user "nimbus"\nuser \'nimbus\' - invalid credentials')

# id, arguments, users listed, authenticate_user answer (None: not asked), commands that change, changed,
# state after, diff after
CASES = [
    ("create", {"password": PASSWORD}, WITHOUT, None, [ADD], True, "present",
     {"name": "nimbus", "state": "present", "password_changed": True}),
    ("same-password", {"password": PASSWORD}, WITH_NIMBUS, (0, "Success", ""), [], False, "present",
     {"name": "nimbus", "state": "present"}),
    ("other-password", {"password": PASSWORD}, WITH_NIMBUS, DENIED, [CHANGE], True, "present",
     {"name": "nimbus", "state": "present", "password_changed": True}),
    ("on-create-existing", {"password": PASSWORD, "update_password": "on_create"}, WITH_NIMBUS, None, [], False,
     "present", {"name": "nimbus", "state": "present"}),
    ("on-create-new", {"password": PASSWORD, "update_password": "on_create"}, WITHOUT, None, [ADD], True,
     "present", {"name": "nimbus", "state": "present", "password_changed": True}),
    ("delete", {"state": "absent"}, WITH_NIMBUS, None, [DELETE], True, "absent",
     {"name": "nimbus", "state": "absent"}),
    ("already-absent", {"state": "absent"}, WITHOUT, None, [], False, "absent",
     {"name": "nimbus", "state": "absent"}),
]
IDS = [c[0] for c in CASES]


def prepare(table, users, auth, changes):
    table[LIST] = (0, users, "")
    if auth is not None:
        table[AUTH] = auth
    for argv in changes:
        table[argv] = (0, "", "")


def argvs(calls):
    return [tuple([c["argv"][0].rsplit("/", 1)[1]] + c["argv"][1:]) for c in calls]


@pytest.mark.parametrize("name, args, users, auth, changes, changed, state, after", CASES, ids=IDS)
def test_user(run_module, fake_commands, name, args, users, auth, changes, changed, state, after):
    table, calls = fake_commands
    prepare(table, users, auth, changes)
    result, failed = run_module(RabbitmqUserModule, dict(args, name="nimbus"), diff=True)
    assert not failed, result.get("msg")
    assert (result["changed"], result["state"], result["user"]) == (changed, state, "nimbus")
    assert result["password_changed"] == ("password_changed" in after)
    assert argvs(calls) == [LIST] + ([AUTH] if auth is not None else []) + changes
    assert result["diff"]["after"] == after


@pytest.mark.parametrize("name, args, users, auth, changes, changed, state, after", CASES, ids=IDS)
def test_user_in_check_mode(run_module, fake_commands, name, args, users, auth, changes, changed, state, after):
    table, calls = fake_commands
    prepare(table, users, auth, [])
    result, failed = run_module(RabbitmqUserModule, dict(args, name="nimbus"), check_mode=True, diff=True)
    assert not failed, result.get("msg")
    assert (result["changed"], result["state"]) == (changed, state)
    # Only reads run: the check of the password included.
    assert argvs(calls) == [LIST] + ([AUTH] if auth is not None else [])


@pytest.mark.parametrize("name, args, users, auth, changes, changed, state, after", CASES, ids=IDS)
def test_password_only_on_standard_input(run_module, fake_commands, name, args, users, auth, changes, changed,
                                         state, after):
    table, calls = fake_commands
    prepare(table, users, auth, changes)
    result, failed = run_module(RabbitmqUserModule, dict(args, name="nimbus"), diff=True)
    assert not failed
    for call in calls:
        assert PASSWORD not in " ".join(call["argv"])
        assert call["environ_update"]["LANG"] == "C"
    fed = [c["data"] for c in calls if c.get("data") is not None]
    assert fed == [PASSWORD + "\n"] * len([a for a in argvs(calls) if a in (AUTH, ADD, CHANGE)])
    assert PASSWORD not in repr(result)


def test_a_failing_check_is_an_error_not_a_wrong_password(run_module, fake_commands):
    table, calls = fake_commands
    table[LIST] = (0, WITH_NIMBUS, "")
    table[AUTH] = (69, "", "Error: unable to perform an operation on node 'rabbit@mq1' (%s)" % PASSWORD)
    result, failed = run_module(RabbitmqUserModule, {"name": "nimbus", "password": PASSWORD})
    assert failed and result["rc"] == 69
    assert "unable to perform an operation" in result["msg"] and PASSWORD not in repr(result)
    assert argvs(calls) == [LIST, AUTH]


@pytest.mark.parametrize("password", [" " + PASSWORD, PASSWORD + "\n", PASSWORD + " "])
def test_white_space_around_the_password_is_refused(run_module, fake_commands, password):
    table, calls = fake_commands
    result, failed = run_module(RabbitmqUserModule, {"name": "nimbus", "password": password})
    assert failed and "white space" in result["msg"]
    assert calls == []


def test_present_needs_a_password(run_module, fake_commands):
    result, failed = run_module(RabbitmqUserModule, {"name": "nimbus"})
    assert failed and "password" in result["msg"]


def test_unreadable_user_list(run_module, fake_commands):
    table = fake_commands[0]
    table[LIST] = (0, "not json", "")
    result, failed = run_module(RabbitmqUserModule, {"name": "nimbus", "password": PASSWORD})
    assert failed and "list_users" in result["msg"]
