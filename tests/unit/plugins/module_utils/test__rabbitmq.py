import subprocess

import pytest

from ansible_collections.nimbus.cloud.plugins.module_utils._errors import ValidationError
from ansible_collections.nimbus.cloud.plugins.module_utils._rabbitmq import (
    ActualUser, DesiredUser, Permission, Step, command_line, needs_password_check, needs_permissions, outcome,
    parse_enabled_plugins, permissions_from, plan, validate)

ALL = Permission()
READ_ONLY = Permission("", "", ".*")

# desired (password, update_password, state), actual (exists, password matches), check asked, plan
PLANS = [
    (("pw", "always", "present"), (False, None), False, [Step("add_user")]),
    (("pw", "on_create", "present"), (False, None), False, [Step("add_user")]),
    (("pw", "always", "present"), (True, True), True, []),
    (("pw", "always", "present"), (True, False), True, [Step("change_password")]),
    (("pw", "on_create", "present"), (True, None), False, []),
    ((None, "always", "absent"), (True, None), False, [Step("delete_user")]),
    ((None, "always", "absent"), (False, None), False, []),
    (("pw", "always", "absent"), (True, None), False, [Step("delete_user")]),
]


@pytest.mark.parametrize("desired, actual, check, steps", PLANS)
def test_plan(desired, actual, check, steps):
    want = DesiredUser("nimbus", *desired)
    assert needs_password_check(want, actual[0]) is check
    assert plan(want, ActualUser(*actual)) == steps


# desired tags, permissions, exclusive; actual tags, permissions (None: user absent); plan
TAGS_AND_PERMISSIONS = [
    pytest.param(None, None, False, {"a"}, {"/": ALL}, [], id="nothing managed"),
    pytest.param({"b", "a"}, None, False, {"a", "b"}, {}, [], id="same tags in another order"),
    pytest.param({"a"}, None, False, {"a", "b"}, {}, [Step("set_user_tags", args=("a",))], id="a tag less"),
    pytest.param(set(), None, False, {"a"}, {}, [Step("set_user_tags")], id="no tag"),
    pytest.param(None, {"/": ALL}, False, set(), {"/": ALL, "/x": READ_ONLY}, [], id="other vhost kept"),
    pytest.param(None, {"/": ALL}, True, set(), {"/": ALL, "/x": READ_ONLY}, [Step("clear_permissions", "/x")],
                 id="other vhost cleared"),
    pytest.param(None, {"/": Permission("c", "w", "r")}, False, set(), {"/": ALL},
                 [Step("set_permissions", "/", ("c", "w", "r"))], id="patterns differ"),
    pytest.param(None, {"/x": READ_ONLY}, True, set(), {"/": ALL},
                 [Step("set_permissions", "/x", ("", "", ".*")), Step("clear_permissions", "/")],
                 id="moved to another vhost"),
    pytest.param({"m"}, {"/": ALL}, True, None, None,
                 [Step("add_user"), Step("set_user_tags", args=("m",)), Step("set_permissions", "/", (".*",) * 3)],
                 id="new user"),
    pytest.param(set(), {}, True, None, None, [Step("add_user")], id="new user with nothing more"),
]


@pytest.mark.parametrize("tags, permissions, exclusive, actual_tags, actual_permissions, steps",
                         TAGS_AND_PERMISSIONS)
def test_plan_tags_and_permissions(tags, permissions, exclusive, actual_tags, actual_permissions, steps):
    exists = actual_permissions is not None
    want = DesiredUser("nimbus", "pw", "on_create", "present", tags=None if tags is None else frozenset(tags),
                       permissions=permissions, permissions_exclusive=exclusive)
    have = ActualUser(exists, None, frozenset(actual_tags or ()), actual_permissions)
    assert needs_permissions(want, exists) is (exists and permissions is not None)
    assert plan(want, have) == steps
    after = outcome(want, have)
    # Once the plan ran, there is nothing left to do.
    assert plan(want, after) == []


def test_outcome_keeps_what_is_not_managed():
    have = ActualUser(True, None, frozenset({"a"}), {"/": ALL, "/x": READ_ONLY})
    after = outcome(DesiredUser("nimbus", "pw", permissions={"/": READ_ONLY}), have)
    assert after.tags == {"a"} and after.permissions == {"/": READ_ONLY, "/x": READ_ONLY}
    assert outcome(DesiredUser("nimbus", state="absent"), have) == ActualUser(False)


def test_command_lines_keep_values_out_of_the_options():
    assert command_line("-u", Step("set_permissions", "-v", ("-c", "", "r"))) == [
        "rabbitmqctl", "--quiet", "set_permissions", "--vhost=-v", "--", "-u", "-c", "", "r"]
    assert command_line("-u", Step("set_user_tags", args=("-t",))) == [
        "rabbitmqctl", "--quiet", "set_user_tags", "--", "-u", "-t"]


def entry(vhost="/", configure=".*", write=".*", read=".*"):
    return {"vhost": vhost, "configure_priv": configure, "write_priv": write, "read_priv": read}


def test_permissions_from_entries():
    assert permissions_from([entry("/x", "c", "w", "r"), entry()]) == {"/x": Permission("c", "w", "r"), "/": ALL}


@pytest.mark.parametrize("entries, message", [
    ([entry("")], "empty vhost"),
    ([entry(None)], "empty vhost"),
    ([entry("/x"), entry("/x", read="")], "listed twice"),
])
def test_unusable_permissions(entries, message):
    with pytest.raises(ValidationError, match=message):
        permissions_from(entries)


# Values Debian's rabbitmqctl wrapper hands to `su -c` unchanged, values its shell would change, and control
# characters, refused as well.
PASS_THE_SHELL = ["nimbus", "-dash", "^$", "a$|b", "amq\\.gen.*$", "^(a|b)$", "", ".*", "it's", 'say "hi"', "a$",
                  "%2F", "x=y", "$", "a\\.b\\w"]
CHANGED_BY_THE_SHELL = ["$HOME", "$(id)", "`id`", "a\\", 'a\\"b', "$1", "${x}", "a\\$b", "a\\\\b", "$$", "$-"]
CONTROL = ["x\ny", "tab\there", "nul\x00"]


def through_the_wrapper(values):
    """What a root rabbitmqctl gets from Debian's wrapper: each argument double-quoted, `"` escaped, for sh -c.

    None when the quotes no longer match and the shell refuses the line.
    """
    line = " ".join('"%s"' % v.replace('"', '\\"') for v in values)
    shell = subprocess.run(["sh", "-c", "printf '%s\\0' " + line], capture_output=True, check=False)
    return shell.stdout.decode().split("\0")[:-1] if shell.returncode == 0 else None


def test_the_values_let_through_pass_the_shell_unchanged():
    assert through_the_wrapper(PASS_THE_SHELL) == PASS_THE_SHELL
    for value in PASS_THE_SHELL:
        validate(DesiredUser(value or "u", permissions={value or "/": Permission(value, value, value)}))


@pytest.mark.parametrize("value", CHANGED_BY_THE_SHELL)
def test_the_shell_would_change_the_values_refused(value):
    assert through_the_wrapper([value, "end"]) != [value, "end"]


@pytest.mark.parametrize("value", CHANGED_BY_THE_SHELL + CONTROL)
def test_values_the_shell_would_change_are_refused(value):
    for desired in (DesiredUser(value), DesiredUser("u", tags=frozenset(["t" + value.strip()])),
                    DesiredUser("u", permissions={value: ALL}), DesiredUser("u", permissions={"/": Permission(value)})):
        with pytest.raises(ValidationError):
            validate(desired)


@pytest.mark.parametrize("tag", ["", "a,b", "a b", "a\tb"])
def test_bad_tags(tag):
    with pytest.raises(ValidationError, match="tag"):
        validate(DesiredUser("u", tags=frozenset([tag])))


@pytest.mark.parametrize("text, plugins", [
    ("", []),
    ("[].\n", []),
    ("[rabbitmq_management,rabbitmq_prometheus].\n", ["rabbitmq_management", "rabbitmq_prometheus"]),
    ("% written by hand\n[\n  rabbitmq_management,\n  'rabbitmq_shovel' % comment\n] .\n",
     ["rabbitmq_management", "rabbitmq_shovel"]),
])
def test_enabled_plugins(text, plugins):
    assert parse_enabled_plugins(text) == plugins


@pytest.mark.parametrize("text", ["rabbitmq_management", "[rabbitmq_management]", "[a b].", "[a,].", "[-a]."])
def test_unreadable_enabled_plugins(text):
    with pytest.raises(ValueError):
        parse_enabled_plugins(text)
