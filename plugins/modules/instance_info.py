#!/usr/bin/python
# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: instance_info
short_description: List the instances on a nimbus.cloud hypervisor
version_added: 0.1.0
description:
  - Lists the instances (libvirt domains made by M(nimbus.cloud.instance)) on the hypervisor the task runs on, filtered
    by name, project and state.
  - Returns an empty list when nothing matches.
  - Domains not made by this collection are left out unless O(include_unmanaged=true).
author:
  - nimbus.cloud contributors (@nimbus-cloud)
extends_documentation_fragment:
  - nimbus.cloud.attributes
  - nimbus.cloud.libvirt
  - nimbus.cloud.attributes.info_module
options:
  name:
    description: Only these instance names.
    type: list
    elements: str
  project:
    description: Only instances of this project.
    type: str
  state:
    description: Only instances in one of these libvirt states (for example C(running), C(shutoff), C(paused)).
    type: list
    elements: str
  include_unmanaged:
    description: Also list domains not made by this collection (their project and flavor are null).
    type: bool
    default: false
seealso:
  - module: nimbus.cloud.instance
"""

EXAMPLES = r"""
- name: List the running instances of project demo
  nimbus.cloud.instance_info:
    project: demo
    state: [running]
  register: demo

- name: Show their MAC addresses
  ansible.builtin.debug:
    msg: "{{ demo.instances | map(attribute='nics') | flatten | map(attribute='mac') }}"
"""

RETURN = r"""
instances:
  description: The matching instances, sorted by name, each as M(nimbus.cloud.instance) returns C(instance).
  returned: always
  type: list
  elements: dict
  sample:
    - name: web1
      uuid: 7f1c1f0e-8a7b-4b8e-9a57-0d0c0e6a7c11
      state: running
      project: demo
      vcpus: 1
      ram_mb: 2048
"""

from ansible_collections.nimbus.cloud.plugins.module_utils import _libvirt as lv
from ansible_collections.nimbus.cloud.plugins.module_utils._base import NimbusModule


class InstanceInfoModule(NimbusModule):
    returns_commands = False
    argument_spec = dict(
        name=dict(type="list", elements="str"),
        project=dict(type="str"),
        state=dict(type="list", elements="str"),
        include_unmanaged=dict(type="bool", default=False),
        uri=dict(type="str", default="qemu:///system"),
    )

    def run(self):
        self.require("libvirt-python", lv.LIBVIRT_IMPORT_ERROR)
        p = self.params
        hv = lv.Hypervisor(self.runner, uri=p["uri"], settings={})
        hostname = hv.hostname()
        found = []
        for inst in hv.list_instances():
            if not (inst.managed or p["include_unmanaged"]):
                continue
            if p["name"] is not None and inst.name not in p["name"]:
                continue
            if p["project"] is not None and inst.project != p["project"]:
                continue
            if p["state"] is not None and inst.state not in p["state"]:
                continue
            found.append(inst.view(hostname))
        return {"instances": sorted(found, key=lambda i: i["name"])}


def main():
    InstanceInfoModule.main()


if __name__ == "__main__":
    main()
