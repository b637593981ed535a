# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""RabbitMQ users through ``rabbitmqctl``, passwords on standard input.

``rabbitmqctl add_user``, ``change_password`` and ``authenticate_user`` read
the password from standard input when it is not an argument. Given as an
argument it would be in /proc while the command runs and, since the Debian
wrapper re-runs ``rabbitmqctl`` through ``su``, in the command line the
journal records for that session.

Every other value (user name, tags, virtual hosts, permission patterns) is an
argument, after ``--`` or as ``--vhost=VALUE``, so that one beginning with
``-`` is never read as an option.

Also the enabled_plugins file, which says which plugins are enabled without
a call to ``rabbitmq-plugins``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Dict, FrozenSet, Optional, Tuple

from ansible_collections.nimbus.cloud.plugins.module_utils._errors import CommandError, NimbusError, ValidationError

RABBITMQCTL = "rabbitmqctl"
# authenticate_user exits with EX_DATAERR for a wrong password or an unknown user.
RC_AUTH_FAILED = 65
PASSWORD_STEPS = ("add_user", "change_password")

# Debian's rabbitmqctl wrapper, run as root, joins its arguments into one string for `su -c`, each in double
# quotes with only `"` escaped: the shell then expands `$name`, `$(...)` and backquotes and eats backslashes
# before `\`, `$`, `"` or at the end. Such a value would reach RabbitMQ changed (another user, another
# pattern, or a command run as rabbitmq), so it is refused. `$` before anything else (`^$`, `a$|b`) and `\.`
# pass the shell unchanged.
SHELL_ACTIVE = re.compile(r'`|\\(?=[\\$`"]|\Z)|\$(?=[A-Za-z0-9_{(@*#?!$\[-])|[\x00-\x1f\x7f]')
TAG_SEPARATOR = re.compile(r"[,\s]")
# An Erlang atom as rabbitmq-plugins writes it, or quoted.
PLUGIN_ATOM = re.compile(r"\s*(?:'([^'\\]+)'|([a-z][A-Za-z0-9_@]*))\s*")


@dataclass(frozen=True)
class Permission:
    configure: str = ".*"
    write: str = ".*"
    read: str = ".*"


@dataclass
class DesiredUser:
    name: str
    password: Optional[str] = None
    update_password: str = "always"
    state: str = "present"
    # None: left as they are.
    tags: Optional[FrozenSet[str]] = None
    # vhost -> Permission; None: left as they are.
    permissions: Optional[Dict[str, Permission]] = None
    permissions_exclusive: bool = False


@dataclass
class ActualUser:
    exists: bool
    # None when the password was not checked (not asked for, or no user).
    password_matches: Optional[bool] = None
    tags: FrozenSet[str] = frozenset()
    # vhost -> Permission; None when not read (not asked for).
    permissions: Optional[Dict[str, Permission]] = None


@dataclass(frozen=True)
class Step:
    """One rabbitmqctl command on the user: ``command [--vhost=VHOST] -- NAME ARGS...``."""

    command: str
    vhost: Optional[str] = None
    args: Tuple[str, ...] = field(default=())


def permissions_from(entries):
    """vhost -> Permission from the module's list of dicts; ValidationError for an unusable entry."""
    permissions = {}
    for entry in entries:
        vhost = entry["vhost"]
        if not vhost:
            raise ValidationError("a permissions entry has an empty vhost")
        if vhost in permissions:
            raise ValidationError("vhost %s is listed twice in permissions" % vhost)
        permissions[vhost] = Permission(entry["configure_priv"], entry["write_priv"], entry["read_priv"])
    return permissions


def validate(desired):
    """Refuse what rabbitmqctl would get wrong, before any command runs."""
    if not desired.name:
        raise ValidationError("the user name is empty")
    _refuse_shell_active("the user name", desired.name)
    if desired.password is not None and desired.password != desired.password.strip():
        raise ValidationError("the password of RabbitMQ user %s begins or ends with white space, which "
                              "rabbitmqctl strips from standard input" % desired.name)
    for tag in sorted(desired.tags or ()):
        if not tag or TAG_SEPARATOR.search(tag):
            raise ValidationError("tag %r of RabbitMQ user %s is empty or holds a comma or white space"
                                  % (tag, desired.name))
        _refuse_shell_active("tag %r" % tag, tag)
    for vhost, permission in sorted((desired.permissions or {}).items()):
        _refuse_shell_active("vhost %r" % vhost, vhost)
        for kind in ("configure", "write", "read"):
            _refuse_shell_active("the %s_priv pattern of vhost %s" % (kind, vhost), getattr(permission, kind))


def _refuse_shell_active(what, value):
    if SHELL_ACTIVE.search(value):
        raise ValidationError("%s (%r) would be changed by the shell Debian's rabbitmqctl wrapper passes it through: "
                              "no control character, backquote, $ before a name, digit or bracket, or backslash "
                              "before \\ $ ` \" or at the end" % (what, value))


def needs_password_check(desired, exists):
    return exists and desired.state == "present" and desired.update_password == "always" \
        and desired.password is not None


def needs_permissions(desired, exists):
    return exists and desired.state == "present" and desired.permissions is not None


def plan(desired, actual):
    """The rabbitmqctl steps that take ``actual`` to ``desired``, in the order they run."""
    if desired.state == "absent":
        return [Step("delete_user")] if actual.exists else []
    steps = []
    if not actual.exists:
        steps.append(Step("add_user"))
    elif actual.password_matches is False:
        steps.append(Step("change_password"))
    current_tags = actual.tags if actual.exists else frozenset()
    if desired.tags is not None and frozenset(desired.tags) != current_tags:
        steps.append(Step("set_user_tags", args=tuple(sorted(desired.tags))))
    if desired.permissions is not None:
        current = (actual.permissions or {}) if actual.exists else {}
        for vhost, permission in sorted(desired.permissions.items()):
            if current.get(vhost) != permission:
                # rabbitmqctl's order: configure, write, read.
                steps.append(Step("set_permissions", vhost, (permission.configure, permission.write, permission.read)))
        if desired.permissions_exclusive:
            steps.extend(Step("clear_permissions", vhost) for vhost in sorted(set(current) - set(desired.permissions)))
    return steps


def outcome(desired, actual):
    """The user once the plan ran (in check mode: would run)."""
    if desired.state == "absent":
        return ActualUser(exists=False)
    tags = frozenset(desired.tags) if desired.tags is not None else (actual.tags if actual.exists else frozenset())
    permissions = None
    if desired.permissions is not None:
        kept = {} if desired.permissions_exclusive or not actual.exists else dict(actual.permissions or {})
        permissions = dict(kept, **desired.permissions)
    return ActualUser(exists=True, tags=tags, permissions=permissions)


def permission_list(permissions):
    """Permissions as the module's option gives them, sorted by vhost."""
    return [{"vhost": vhost, "configure_priv": p.configure, "write_priv": p.write, "read_priv": p.read}
            for vhost, p in sorted(permissions.items())]


def view(desired, user, password_changed=False):
    """What a diff shows: what the task manages, whether the password changes, never the password."""
    shown = {"name": desired.name, "state": "present" if user.exists else "absent"}
    if password_changed:
        shown["password_changed"] = True
    if desired.state == "present" and desired.tags is not None:
        shown["tags"] = sorted(user.tags)
    if desired.state == "present" and desired.permissions is not None:
        shown["permissions"] = permission_list(user.permissions or {})
    return shown


def command_line(name, step):
    argv = [RABBITMQCTL, "--quiet", step.command]
    if step.vhost is not None:
        argv.append("--vhost=" + step.vhost)
    return argv + ["--", name] + list(step.args)


class Rabbitmqctl:
    def __init__(self, runner):
        self.runner = runner

    def _json(self, argv, what):
        out = self.runner.read(argv).stdout
        try:
            return json.loads(out or "[]")
        except ValueError as e:
            raise NimbusError("cannot parse rabbitmqctl %s: %s" % (what, e), stdout=out)

    def users(self):
        """name -> tags, from one list_users."""
        listed = self._json([RABBITMQCTL, "--quiet", "list_users", "--formatter", "json"], "list_users")
        try:
            return {u["user"]: frozenset(u["tags"]) for u in listed}
        except (KeyError, TypeError) as e:
            raise NimbusError("cannot parse rabbitmqctl list_users: %r" % e, stdout=json.dumps(listed))

    def permissions(self, name):
        argv = [RABBITMQCTL, "--quiet", "list_user_permissions", "--formatter", "json", "--", name]
        listed = self._json(argv, "list_user_permissions")
        try:
            return {p["vhost"]: Permission(p["configure"], p["write"], p["read"]) for p in listed}
        except (KeyError, TypeError) as e:
            raise NimbusError("cannot parse rabbitmqctl list_user_permissions: %r" % e, stdout=json.dumps(listed))

    def authenticates(self, name, password):
        result = self.runner.read(command_line(name, Step("authenticate_user")), check_rc=False,
                                  data=_line(password), secrets=(password,))
        if result.ok:
            return True
        if result.rc == RC_AUTH_FAILED:
            return False
        raise CommandError(result.argv, result.rc, result.stdout, result.stderr)

    def read(self, desired):
        """The user's state, with only the commands ``desired`` needs."""
        users = self.users()
        exists = desired.name in users
        actual = ActualUser(exists=exists, tags=users.get(desired.name, frozenset()))
        if needs_password_check(desired, exists):
            actual.password_matches = self.authenticates(desired.name, desired.password)
        if needs_permissions(desired, exists):
            actual.permissions = self.permissions(desired.name)
        return actual

    def apply(self, desired, steps):
        for step in steps:
            argv = command_line(desired.name, step)
            if step.command in PASSWORD_STEPS:
                self.runner.change(argv, data=_line(desired.password), secrets=(desired.password,))
            else:
                self.runner.change(argv)


def _line(password):
    return password + "\n"


def parse_enabled_plugins(text):
    """The plugins an enabled_plugins file lists: an Erlang list of atoms ending with a full stop.

    ``rabbitmq-plugins`` writes ``[rabbitmq_management,rabbitmq_prometheus].``; a file written by hand may spread
    it over lines, quote the atoms and hold ``%`` comments. An empty text (no file) lists none.
    """
    body = re.sub(r"%[^\n]*", "", text).strip()
    if not body:
        return []
    match = re.fullmatch(r"\[(.*)\]\s*\.", body, re.S)
    if match is None:
        raise ValueError("not an Erlang list of plugin names ending with a full stop: %r" % text)
    inner = match.group(1)
    if not inner.strip():
        return []
    names = []
    for item in inner.split(","):
        atom = PLUGIN_ATOM.fullmatch(item)
        if atom is None:
            raise ValueError("%r is not a plugin name, in %r" % (item.strip(), text))
        names.append(atom.group(1) or atom.group(2))
    return names
