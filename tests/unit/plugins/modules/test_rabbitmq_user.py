import json

import pytest

from ansible_collections.nimbus.cloud.plugins.modules.rabbitmq_user import RabbitmqUserModule

PASSWORD = "mq-Secret-4xQ"
OLD = "mq-Old-9zW"
CTL = ("rabbitmqctl", "--quiet")
LIST = CTL + ("list_users", "--formatter", "json")
AUTH = CTL + ("authenticate_user", "--", "nimbus")
PERMS = CTL + ("list_user_permissions", "--formatter", "json", "--", "nimbus")
ADD = CTL + ("add_user", "--", "nimbus")
CHANGE = CTL + ("change_password", "--", "nimbus")
DELETE = CTL + ("delete_user", "--", "nimbus")
WITH_NIMBUS = '[{"user":"nimbus","tags":[]},{"user":"guest","tags":["administrator"]}]'
WITHOUT = '[{"user":"guest","tags":["administrator"]}]'
OK = (0, "Success", "")
DENIED = (65, "", 'Error:\nError: failed to authenticate user "nimbus"\nuser \'nimbus\' - invalid credentials')

# id, arguments, users listed, authenticate_user answer (None: not asked), commands that change, changed,
# state after, diff after
CASES = [
    ("create", {"password": PASSWORD}, WITHOUT, None, [ADD], True, "present",
     {"name": "nimbus", "state": "present", "password_changed": True}),
    ("same-password", {"password": PASSWORD}, WITH_NIMBUS, OK, [], False, "present",
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
    assert "permissions" not in result


@pytest.mark.parametrize("name, args, users, auth, changes, changed, state, after", CASES, ids=IDS)
def test_user_in_check_mode(run_module, fake_commands, name, args, users, auth, changes, changed, state, after):
    table, calls = fake_commands
    prepare(table, users, auth, [])
    result, failed = run_module(RabbitmqUserModule, dict(args, name="nimbus"), check_mode=True, diff=True)
    assert not failed, result.get("msg")
    assert (result["changed"], result["state"]) == (changed, state)
    # Only reads run: the check of the password included.
    assert argvs(calls) == [LIST] + ([AUTH] if auth is not None else [])
    assert result["commands"] == [" ".join(argv) for argv in changes]


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


def users_json(tags):
    return json.dumps([{"user": "nimbus", "tags": tags}, {"user": "guest", "tags": ["administrator"]}])


def perms_json(*entries):
    return json.dumps([{"vhost": v, "configure": c, "write": w, "read": r} for v, c, w, r in entries])


def perm(vhost="/nimbus", configure=".*", write=".*", read=".*"):
    return {"vhost": vhost, "configure_priv": configure, "write_priv": write, "read_priv": read}


def set_tags(*tags):
    return CTL + ("set_user_tags", "--", "nimbus") + tags


def set_perms(vhost, configure, write, read):
    return CTL + ("set_permissions", "--vhost=" + vhost, "--", "nimbus", configure, write, read)


def clear_perms(vhost):
    return CTL + ("clear_permissions", "--vhost=" + vhost, "--", "nimbus")


NIMBUS_ALL = ("/nimbus", ".*", ".*", ".*")
OTHER_READ = ("/other", "", "", "^r$")
MANAGED = {"password": PASSWORD, "tags": ["management"], "permissions": [{"vhost": "/nimbus"}]}

# id, arguments, tags listed (None: no user), authenticate_user answer (None: not asked), permissions listed
# (None: not asked), commands that change, tags after, permissions after (None: not returned)
MANAGED_CASES = [
    pytest.param(MANAGED, ["management"], OK, [NIMBUS_ALL], [], ["management"], [perm()], id="no-op"),
    pytest.param(dict(MANAGED, tags=["b", "a"]), ["a", "b"], OK, [NIMBUS_ALL], [], ["a", "b"], [perm()],
                 id="tags in another order"),
    pytest.param(MANAGED, ["administrator"], OK, [NIMBUS_ALL], [set_tags("management")], ["management"], [perm()],
                 id="tag difference"),
    pytest.param(dict(MANAGED, tags=[]), ["management"], OK, [NIMBUS_ALL], [set_tags()], [], [perm()],
                 id="tags removed"),
    pytest.param(dict(MANAGED, permissions=[perm(configure="^c$", write="^w$", read="^r$")]), ["management"], OK,
                 [NIMBUS_ALL], [set_perms("/nimbus", "^c$", "^w$", "^r$")], ["management"],
                 [perm(configure="^c$", write="^w$", read="^r$")], id="permission difference"),
    pytest.param(MANAGED, ["management"], OK, [], [set_perms(*NIMBUS_ALL)], ["management"], [perm()],
                 id="no permission yet"),
    pytest.param(MANAGED, ["management"], OK, [NIMBUS_ALL, OTHER_READ], [], ["management"],
                 [perm(), perm("/other", "", "", "^r$")], id="other vhost kept"),
    pytest.param(dict(MANAGED, permissions_exclusive=True), ["management"], OK, [NIMBUS_ALL, OTHER_READ],
                 [clear_perms("/other")], ["management"], [perm()], id="exclusive removal"),
    pytest.param(dict(MANAGED, update_password="on_create", tags=None), ["x"], None, [NIMBUS_ALL], [], ["x"],
                 [perm()], id="tags left alone, no password check"),
    pytest.param(dict(MANAGED, permissions=None), ["management"], OK, None, [], ["management"], None,
                 id="permissions left alone, not read"),
    pytest.param(MANAGED, None, None, None, [ADD, set_tags("management"), set_perms(*NIMBUS_ALL)], ["management"],
                 [perm()], id="new user"),
    pytest.param(dict(MANAGED, password=OLD), ["administrator"], DENIED, [OTHER_READ],
                 [CHANGE, set_tags("management"), set_perms(*NIMBUS_ALL)], ["management"],
                 [perm(), perm("/other", "", "", "^r$")], id="everything differs"),
    pytest.param(dict(MANAGED, state="absent", password=None), ["management"], None, None, [DELETE], [], None,
                 id="absent ignores tags and permissions"),
]


def prepare_managed(table, tags, auth, perms, changes):
    table[LIST] = (0, users_json(tags) if tags is not None else WITHOUT, "")
    if auth is not None:
        table[AUTH] = auth
    if perms is not None:
        table[PERMS] = (0, perms_json(*perms), "")
    for argv in changes:
        table[argv] = (0, "", "")


def reads(auth, perms):
    return [LIST] + ([AUTH] if auth is not None else []) + ([PERMS] if perms is not None else [])


def managed_args(args):
    return dict({k: v for k, v in args.items() if v is not None}, name="nimbus")


@pytest.mark.parametrize("args, tags, auth, perms, changes, tags_after, perms_after", MANAGED_CASES)
def test_tags_and_permissions(run_module, fake_commands, args, tags, auth, perms, changes, tags_after, perms_after):
    table, calls = fake_commands
    prepare_managed(table, tags, auth, perms, changes)
    result, failed = run_module(RabbitmqUserModule, managed_args(args), diff=True)
    assert not failed, result.get("msg")
    # Exactly the reads the task needs, then only the changes.
    assert argvs(calls) == reads(auth, perms) + changes
    assert result["changed"] == bool(changes)
    assert result["tags"] == tags_after
    assert result.get("permissions") == perms_after
    after = result["diff"]["after"]
    if args.get("state") != "absent":
        assert after.get("tags") == (tags_after if args.get("tags") is not None else None)
        assert after.get("permissions") == perms_after
    if not changes:
        assert result["diff"]["before"] == after


@pytest.mark.parametrize("args, tags, auth, perms, changes, tags_after, perms_after", MANAGED_CASES)
def test_tags_and_permissions_in_check_mode(run_module, fake_commands, args, tags, auth, perms, changes, tags_after,
                                            perms_after):
    table, calls = fake_commands
    prepare_managed(table, tags, auth, perms, [])
    result, failed = run_module(RabbitmqUserModule, managed_args(args), check_mode=True, diff=True)
    assert not failed, result.get("msg")
    assert argvs(calls) == reads(auth, perms)
    assert result["commands"] == [" ".join(argv) for argv in changes]
    assert (result["changed"], result["tags"], result.get("permissions")) == (bool(changes), tags_after, perms_after)


@pytest.mark.parametrize("args, tags, auth, perms, changes, tags_after, perms_after", MANAGED_CASES)
def test_no_password_in_the_result_the_diff_or_argv(run_module, fake_commands, args, tags, auth, perms, changes,
                                                    tags_after, perms_after):
    table, calls = fake_commands
    prepare_managed(table, tags, auth, perms, changes)
    result, failed = run_module(RabbitmqUserModule, managed_args(args), diff=True)
    assert not failed
    for secret in (PASSWORD, OLD):
        assert not any(secret in " ".join(c["argv"]) for c in calls)
        assert secret not in repr(result)
    fed = {c["data"] for c in calls if c.get("data") is not None}
    assert fed <= {args["password"] + "\n"} if args.get("password") else fed == set()


def test_values_beginning_with_a_dash_are_not_options(run_module, fake_commands):
    table, calls = fake_commands
    user = CTL + ("list_users", "--formatter", "json")
    table[user] = (0, '[{"user":"-n","tags":[]}]', "")
    table[CTL + ("authenticate_user", "--", "-n")] = OK
    table[CTL + ("list_user_permissions", "--formatter", "json", "--", "-n")] = (0, "[]", "")
    tags = CTL + ("set_user_tags", "--", "-n", "--help", "-q")
    perms = CTL + ("set_permissions", "--vhost=-p", "--", "-n", "-c", "-w", "-r")
    table[tags] = table[perms] = (0, "", "")
    result, failed = run_module(RabbitmqUserModule, {
        "name": "-n", "password": PASSWORD, "tags": ["-q", "--help"],
        "permissions": [{"vhost": "-p", "configure_priv": "-c", "write_priv": "-w", "read_priv": "-r"}]})
    assert not failed, result.get("msg")
    assert argvs(calls)[-2:] == [tags, perms]


@pytest.mark.parametrize("args, message", [
    ({"tags": ["a,b"]}, "comma or white space"),
    ({"tags": ["a b"]}, "comma or white space"),
    ({"tags": [""]}, "empty"),
    ({"tags": ["$(reboot)"]}, "shell"),
    ({"permissions": [{"vhost": ""}]}, "empty vhost"),
    ({"permissions": [{"vhost": "/x"}, {"vhost": "/x", "read_priv": ""}]}, "vhost /x is listed twice"),
    ({"permissions": [{}, {"read_priv": ""}]}, "vhost / is listed twice"),
    ({"permissions": [{"vhost": "/`id`"}]}, "shell"),
    ({"permissions": [{"write_priv": "^$HOME"}]}, "write_priv pattern of vhost /"),
    ({"name": "a\\"}, "shell"),
    ({"name": ""}, "empty"),
])
def test_bad_input_is_refused_before_anything_runs(run_module, fake_commands, args, message):
    table, calls = fake_commands
    result, failed = run_module(RabbitmqUserModule, dict({"name": "nimbus", "password": PASSWORD}, **args))
    assert failed and message in result["msg"], result["msg"]
    assert calls == []


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


@pytest.mark.parametrize("command, out", [(LIST, "not json"), (LIST, '[{"name":"nimbus"}]'), (PERMS, "[{}]")])
def test_unreadable_output(run_module, fake_commands, command, out):
    table = fake_commands[0]
    prepare_managed(table, [], OK, [], [])
    table[command] = (0, out, "")
    result, failed = run_module(RabbitmqUserModule, dict(MANAGED, name="nimbus"))
    assert failed and "cannot parse rabbitmqctl %s" % command[2] in result["msg"]
