#!/usr/bin/python
# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: instance_action
short_description: Reboot, shut down, start, pause or suspend an instance
version_added: 0.1.0
description:
  - Runs one imperative action on an instance on the hypervisor the task runs on, as C(openstack server reboot),
    C(stop) or C(suspend) do.
  - This module is imperative. O(action=reboot) always acts and reports a change. The other actions do nothing,
    and report no change, when the instance is already in the state the action leads to, for example
    O(action=start) on a running instance.
  - To describe the state an instance should be in, use M(nimbus.cloud.instance) with O(nimbus.cloud.instance#module:state).
  - An action that cannot apply to the instance's state fails and changes nothing, for example a reboot of a stopped
    instance.
author:
  - nimbus.cloud contributors (@nimbus-cloud)
extends_documentation_fragment:
  - nimbus.cloud.attributes
  - nimbus.cloud.libvirt
options:
  name:
    description: Name of the instance.
    type: str
    required: true
  action:
    description:
      - C(start) boots a stopped instance.
      - C(shutdown) sends the ACPI power button, then powers the instance off after O(shutdown_timeout) seconds.
      - C(reboot) restarts it, see O(reboot_type).
      - C(pause) freezes its vCPUs in memory and C(unpause) lets them run again.
      - C(suspend) saves its memory to disk and stops it (libvirt managed save). C(resume) restores it, and also
        wakes an instance the guest suspended itself.
    type: str
    required: true
    choices: [start, shutdown, reboot, pause, unpause, suspend, resume]
  reboot_type:
    description: C(soft) asks the guest through ACPI; C(hard) resets the virtual machine at once.
    type: str
    choices: [soft, hard]
    default: soft
  shutdown_timeout:
    description: For O(action=shutdown), seconds to wait for the guest before powering it off.
    type: int
    default: 60
seealso:
  - module: nimbus.cloud.instance
"""

EXAMPLES = r"""
- name: Hard-reboot a stuck instance
  nimbus.cloud.instance_action:
    name: web1
    action: reboot
    reboot_type: hard

- name: Suspend an instance to disk before host maintenance
  nimbus.cloud.instance_action:
    name: web1
    action: suspend
"""

RETURN = r"""
instance:
  description: The instance after the action, as M(nimbus.cloud.instance) returns it.
  returned: always
  type: dict
  sample: {name: web1, state: paused}
commands:
  description: What a real run would do (commands, and the changes that are not commands).
  returned: in check mode
  type: list
  elements: str
  sample:
    - stop web1
"""

from ansible_collections.nimbus.cloud.plugins.module_utils import _libvirt as lv
from ansible_collections.nimbus.cloud.plugins.module_utils._base import NimbusModule
from ansible_collections.nimbus.cloud.plugins.module_utils._names import validate_name
from ansible_collections.nimbus.cloud.plugins.module_utils._errors import ValidationError


class InstanceActionModule(NimbusModule):
    argument_spec = dict(
        name=dict(type="str", required=True),
        action=dict(type="str", required=True, choices=sorted(lv.ACTIONS)),
        reboot_type=dict(type="str", default="soft", choices=["soft", "hard"]),
        shutdown_timeout=dict(type="int", default=60),
        uri=dict(type="str", default="qemu:///system"),
    )

    def run(self):
        self.require("libvirt-python", lv.LIBVIRT_IMPORT_ERROR)
        p = self.params
        name = validate_name(p["name"])
        hv = lv.Hypervisor(self.runner, uri=p["uri"], settings={})
        with hv.lock():
            before = hv.read(name)
            if before is None:
                raise ValidationError("instance %s does not exist on this hypervisor" % name)
            self.changed = lv.run_action(hv, before, p["action"], p["reboot_type"], p["shutdown_timeout"])
            after = hv.read(name)
        hostname = hv.hostname()
        predicted = lv.ACTION_RESULTS[p["action"]] if self.changed and self.check_mode else after.state
        self.set_diff({"state": before.state}, {"state": predicted})
        # Check mode returns the instance as it would be, like the instance module.
        view = after.view(hostname)
        view["state"] = predicted
        return {"instance": view}


def main():
    InstanceActionModule.main()


if __name__ == "__main__":
    main()
