# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""systemd units read in one ``systemctl show`` and changed only where they differ.

A converge that asks ``ansible.builtin.systemd_service`` about five units runs
five modules, each querying systemd; on a host where everything already runs
that is the whole cost of the task. Reading every unit's state with one
command and batching the changes keeps a converged host at one round trip.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import List, Optional

from ansible_collections.nimbus.cloud.plugins.module_utils._errors import NimbusError, ValidationError

# A unit name systemctl takes as such: never an option (no leading '-'), no template without an instance.
_UNIT = re.compile(r"^[A-Za-z0-9_:.\\][A-Za-z0-9_:.\\@-]*$")
# `systemctl is-enabled` exits 0 for these: nothing to enable.
ENABLED_STATES = {"enabled", "enabled-runtime", "static", "alias", "indirect", "generated"}
# Nothing to disable: `systemctl disable` would change nothing.
DISABLED_STATES = {"disabled", "static", "indirect", "generated", "masked", "masked-runtime", ""}
RUNNING_STATES = {"active", "activating", "reloading", "refreshing"}
PROPERTIES = ("Id", "LoadState", "ActiveState", "UnitFileState")


@dataclass
class DesiredUnit:
    name: str
    state: Optional[str] = None  # started, stopped or None (left alone)
    enabled: Optional[bool] = None  # None: left alone


@dataclass
class FoundUnit:
    load_state: str
    active_state: str
    unit_file_state: str

    @property
    def running(self):
        return self.active_state in RUNNING_STATES


@dataclass
class UnitPlan:
    desired: DesiredUnit
    found: FoundUnit
    steps: List[str] = field(default_factory=list)


def check_name(name):
    if not _UNIT.match(name) or name.endswith("@") or "@." in name:
        raise ValidationError("%r is not a unit name systemctl can act on (a template needs an instance, "
                              "as in nimbus-dhcp@net1.service)" % name)


def parse_show(text, count):
    """``systemctl show`` output for ``count`` units (blocks in argument order) as FoundUnit."""
    blocks = [b for b in text.strip().split("\n\n") if b.strip()]
    if len(blocks) != count:
        raise NimbusError("systemctl show returned %d units for %d names" % (len(blocks), count), stdout=text)
    found = []
    for block in blocks:
        values = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        found.append(FoundUnit(values.get("LoadState", ""), values.get("ActiveState", ""),
                               values.get("UnitFileState", "")))
    return found


def unit_steps(desired, found, check_mode=False):
    """The systemctl verbs that take ``found`` to ``desired``, in the order they run.

    In check mode a unit that is not there yet (its package or unit file comes from a task that did not
    run) is planned as a stopped, disabled one; for real it is an error.
    """
    if found.load_state == "not-found" and check_mode:
        found = FoundUnit("not-found", "inactive", "disabled")
    elif found.load_state != "loaded":
        raise ValidationError("unit %s is %s on the host" % (desired.name, found.load_state or "unknown"))
    steps = []
    if desired.state == "stopped" and found.running:
        steps.append("stop")
    if desired.enabled is False and found.unit_file_state not in DISABLED_STATES:
        steps.append("disable")
    if desired.enabled is True and found.unit_file_state not in ENABLED_STATES:
        if found.unit_file_state.startswith("masked"):
            raise ValidationError("unit %s is masked; unmask it to enable it" % desired.name)
        steps.append("enable")
    if desired.state == "started" and not found.running:
        steps.append("start")
    return steps


# Stops and disables run before enables and starts: a socket is turned off before the service
# that takes over its port starts.
VERB_ORDER = ("stop", "disable", "enable", "start")


def view(found, steps=()):
    """A diff's view of a unit: running and enabled, as they are or will be after ``steps``."""
    running, enabled = found.running, found.unit_file_state in ENABLED_STATES
    if "stop" in steps:
        running = False
    if "start" in steps:
        running = True
    if "disable" in steps:
        enabled = False
    if "enable" in steps:
        enabled = True
    return {"state": "started" if running else "stopped", "enabled": enabled}


class Systemctl:
    def __init__(self, runner):
        self.runner = runner

    def daemon_reload(self):
        self.runner.change(["systemctl", "daemon-reload"])

    def show(self, names):
        argv = ["systemctl", "show", "--property=" + ",".join(PROPERTIES), "--"] + list(names)
        return parse_show(self.runner.read(argv).stdout, len(names))

    def apply(self, plans):
        for verb in VERB_ORDER:
            names = [p.desired.name for p in plans if verb in p.steps]
            if names:
                self.runner.change(["systemctl", verb, "--"] + names)
