import pytest

from ansible_collections.nimbus.cloud.plugins.module_utils._errors import ValidationError
from ansible_collections.nimbus.cloud.plugins.module_utils._rabbitmq import (
    ActualUser, DesiredUser, Permission, Step, command_line, needs_password_check, needs_permissions, outcome,
    permissions_from, plan, validate)

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


@pytest.mark.parametrize("tag", ["", "a,b", "a b", "a\tb"])
def test_bad_tags(tag):
    with pytest.raises(ValidationError, match="tag"):
        validate(DesiredUser("u", tags=frozenset([tag])))
