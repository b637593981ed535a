#!/usr/bin/python
# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: services
short_description: Several systemd units started, stopped, enabled or disabled in one task
version_added: 0.1.0
description:
  - Reads the state of every listed unit with one C(systemctl show) and runs C(systemctl stop), C(disable),
    C(enable) and C(start) (in that order, each once for all the units it concerns) only for what differs. On a
    converged host that is one command, where a loop of M(ansible.builtin.systemd_service) queries systemd once
    per unit.
  - Every unit must be loaded (installed) before anything changes; a missing or masked unit fails the task with
    nothing done. In check mode a missing unit (from a package or unit file an earlier task would install) is
    planned as a stopped, disabled unit.
author:
  - nimbus.cloud contributors (@nimbus-cloud)
extends_documentation_fragment:
  - nimbus.cloud.attributes
options:
  units:
    description: The units.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Unit name, such as C(libvirtd.socket); without a suffix systemd reads C(.service).
        type: str
        required: true
      state:
        description:
          - V(started) runs the unit if it does not run (an active, activating or reloading unit is left alone);
            V(stopped) stops it if it runs. Omitted, whether it runs is left alone.
          - Restarts and reloads belong in handlers (M(ansible.builtin.systemd_service)), which run only on a change.
        type: str
        choices: [started, stopped]
      enabled:
        description:
          - Whether the unit starts at boot. Omitted, left alone. A static, indirect or generated unit counts as
            enabled and is never disabled.
        type: bool
  daemon_reload:
    description: Run C(systemctl daemon-reload) first (for unit files changed by an earlier task).
    type: bool
    default: false
notes:
  - Runs with the host's systemd; C(systemctl) must be on the path.
seealso:
  - module: ansible.builtin.systemd_service
"""

EXAMPLES = r"""
- name: Listen on the libvirt sockets and enable libvirtd
  nimbus.cloud.services:
    units:
      - {name: virtlogd.socket, state: started, enabled: true}
      - {name: libvirtd.socket, state: started, enabled: true}
      - {name: libvirtd.service, enabled: true}

- name: Turn off MariaDB's socket activation, then run MariaDB
  nimbus.cloud.services:
    units:
      - {name: mariadb.socket, state: stopped, enabled: false}
      - {name: mariadb.service, state: started, enabled: true}
  register: mariadb_units

- name: Restart only what was running before (a unit started just now already has its configuration)
  ansible.builtin.debug:
    msg: "{{ mariadb_units.started }}"
"""

RETURN = r"""
units:
  description: Every unit, in order, with what it was before the task and what was (or would be) done.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The unit's name as given.
      type: str
    active_state:
      description: systemd's C(ActiveState) before the task.
      type: str
    unit_file_state:
      description: systemd's C(UnitFileState) before the task.
      type: str
    steps:
      description: The systemctl verbs run for the unit, among C(stop), C(disable), C(enable) and C(start).
      type: list
      elements: str
  sample:
    - {name: libvirtd.socket, active_state: active, unit_file_state: enabled, steps: []}
started:
  description: The units this task started (or in check mode would start).
  returned: always
  type: list
  elements: str
  sample: [nimbus-api.service]
commands:
  description: What a real run would do.
  returned: in check mode
  type: list
  elements: str
  sample:
    - systemctl start -- nimbus-api.service
"""

from ansible_collections.nimbus.cloud.plugins.module_utils import _systemd as sd
from ansible_collections.nimbus.cloud.plugins.module_utils._base import NimbusModule
from ansible_collections.nimbus.cloud.plugins.module_utils._errors import ValidationError


class ServicesModule(NimbusModule):
    argument_spec = dict(
        units=dict(type="list", elements="dict", required=True, options=dict(
            name=dict(type="str", required=True),
            state=dict(type="str", choices=["started", "stopped"]),
            enabled=dict(type="bool"),
        )),
        daemon_reload=dict(type="bool", default=False),
    )

    def run(self):
        desired = [sd.DesiredUnit(u["name"], u["state"], u["enabled"]) for u in self.params["units"]]
        for unit in desired:
            sd.check_name(unit.name)
        if len({u.name for u in desired}) != len(desired):
            raise ValidationError("a unit is listed twice")
        systemctl = sd.Systemctl(self.runner)
        if self.params["daemon_reload"]:
            systemctl.daemon_reload()
            self.changed = True
        plans = [sd.UnitPlan(d, f, sd.unit_steps(d, f, self.check_mode))
                 for d, f in zip(desired, systemctl.show([u.name for u in desired]))]
        systemctl.apply(plans)
        self.changed = self.changed or any(p.steps for p in plans)
        self.set_diff({p.desired.name: sd.view(p.found) for p in plans},
                      {p.desired.name: sd.view(p.found, p.steps) for p in plans})
        return {
            "units": [{"name": p.desired.name, "active_state": p.found.active_state,
                       "unit_file_state": p.found.unit_file_state, "steps": p.steps} for p in plans],
            "started": [p.desired.name for p in plans if "start" in p.steps],
        }


def main():
    ServicesModule.main()


if __name__ == "__main__":
    main()
