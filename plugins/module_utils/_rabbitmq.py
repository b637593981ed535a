# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""RabbitMQ users through ``rabbitmqctl``, passwords on standard input.

``rabbitmqctl add_user``, ``change_password`` and ``authenticate_user`` read
the password from standard input when it is not an argument. Given as an
argument it would be in /proc while the command runs and, since the Debian
wrapper re-runs ``rabbitmqctl`` through ``su``, in the command line the
journal records for that session.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional

from ansible_collections.nimbus.cloud.plugins.module_utils._errors import CommandError, NimbusError

RABBITMQCTL = "rabbitmqctl"
# authenticate_user exits with EX_DATAERR for a wrong password or an unknown user.
RC_AUTH_FAILED = 65


@dataclass
class DesiredUser:
    name: str
    password: Optional[str] = None
    update_password: str = "always"
    state: str = "present"


@dataclass
class ActualUser:
    exists: bool
    # None when the password was not checked (not asked for, or no user).
    password_matches: Optional[bool] = None


def needs_password_check(desired, exists):
    return exists and desired.state == "present" and desired.update_password == "always" \
        and desired.password is not None


def plan(desired, actual):
    """The rabbitmqctl commands that take ``actual`` to ``desired``."""
    if desired.state == "absent":
        return ["delete_user"] if actual.exists else []
    if not actual.exists:
        return ["add_user"]
    if actual.password_matches is False:
        return ["change_password"]
    return []


def view(name, exists, password_changed=False):
    """What a diff shows: whether the password changes, never the password."""
    shown = {"name": name, "state": "present" if exists else "absent"}
    if password_changed:
        shown["password_changed"] = True
    return shown


class Rabbitmqctl:
    def __init__(self, runner):
        self.runner = runner

    def _argv(self, *args):
        return [RABBITMQCTL, "--quiet"] + list(args)

    def users(self):
        out = self.runner.read(self._argv("list_users", "--formatter", "json")).stdout
        try:
            return {u["user"] for u in json.loads(out or "[]")}
        except (ValueError, KeyError, TypeError) as e:
            raise NimbusError("cannot parse rabbitmqctl list_users: %s" % e, stdout=out)

    def authenticates(self, name, password):
        result = self.runner.read(self._argv("authenticate_user", name), check_rc=False,
                                  data=_line(password), secrets=(password,))
        if result.ok:
            return True
        if result.rc == RC_AUTH_FAILED:
            return False
        raise CommandError(result.argv, result.rc, result.stdout, result.stderr)

    def read(self, desired):
        exists = desired.name in self.users()
        actual = ActualUser(exists=exists)
        if needs_password_check(desired, exists):
            actual.password_matches = self.authenticates(desired.name, desired.password)
        return actual

    def apply(self, desired, steps):
        for step in steps:
            if step == "delete_user":
                self.runner.change(self._argv(step, desired.name))
            else:
                self.runner.change(self._argv(step, desired.name), data=_line(desired.password),
                                   secrets=(desired.password,))


def _line(password):
    return password + "\n"
