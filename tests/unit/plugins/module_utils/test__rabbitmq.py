import pytest

from ansible_collections.nimbus.cloud.plugins.module_utils._rabbitmq import (
    ActualUser, DesiredUser, needs_password_check, plan)

# desired (password, update_password, state), actual (exists, password matches), check asked, plan
PLANS = [
    (("pw", "always", "present"), (False, None), False, ["add_user"]),
    (("pw", "on_create", "present"), (False, None), False, ["add_user"]),
    (("pw", "always", "present"), (True, True), True, []),
    (("pw", "always", "present"), (True, False), True, ["change_password"]),
    (("pw", "on_create", "present"), (True, None), False, []),
    ((None, "always", "absent"), (True, None), False, ["delete_user"]),
    ((None, "always", "absent"), (False, None), False, []),
    (("pw", "always", "absent"), (True, None), False, ["delete_user"]),
]


@pytest.mark.parametrize("desired, actual, check, steps", PLANS)
def test_plan(desired, actual, check, steps):
    want = DesiredUser("nimbus", *desired)
    assert needs_password_check(want, actual[0]) is check
    assert plan(want, ActualUser(*actual)) == steps
