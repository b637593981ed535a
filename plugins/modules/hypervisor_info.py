#!/usr/bin/python
# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: hypervisor_info
short_description: Read a nimbus.cloud hypervisor's capacity, usage and instances
version_added: 0.1.0
description:
  - Reports the total, reserved, used and free vCPUs, RAM and disk of the hypervisor the task runs on, with the
    allocation ratios the P(nimbus.cloud.kvm#role) role recorded, and the instances placed there.
  - Capacity follows Nova's placement service. Capacity is (total - reserved) x ratio. Used is the sum of every
    domain's allocation, stopped ones included. Free is capacity - used.
  - The result is what the M(nimbus.cloud.place) scheduler reads.
author:
  - nimbus.cloud contributors (@nimbus-cloud)
extends_documentation_fragment:
  - nimbus.cloud.attributes
  - nimbus.cloud.libvirt
  - nimbus.cloud.attributes.info_module
options: {}
seealso:
  - module: nimbus.cloud.instance
"""

EXAMPLES = r"""
- name: Read every compute host
  nimbus.cloud.hypervisor_info:
  register: hv

- name: Show free memory
  ansible.builtin.debug:
    msg: "{{ hv.hypervisor.hostname }} has {{ hv.hypervisor.ram_mb.free }} MiB to place"
"""

RETURN = r"""
hypervisor:
  description: The hypervisor's resources and instances.
  returned: always
  type: dict
  contains:
    hostname: {description: Host name libvirt reports., type: str, returned: always, sample: compute1}
    virt_type: {description: C(kvm) or C(qemu) (software emulation)., type: str, returned: always, sample: kvm}
    nested: {description: Whether nested virtualisation is enabled in the KVM module., type: bool, returned: always}
    availability_zone: {description: Availability zone., type: str, returned: always, sample: nova}
    aggregates: {description: Host aggregates., type: list, elements: str, returned: always, sample: [ssd]}
    cpu_model: {description: CPU architecture libvirt reports., type: str, returned: always, sample: x86_64}
    vcpus:
      description: Physical CPUs (total), reserved, ratio, capacity, used and free vCPUs.
      type: dict
      returned: always
      sample: {total: 8, reserved: 0, ratio: 4.0, capacity: 32, used: 3, free: 29}
    ram_mb:
      description: Memory in MiB, with the same keys as RV(hypervisor.vcpus).
      type: dict
      returned: always
      sample: {total: 16000, reserved: 512, ratio: 1.0, capacity: 15488, used: 2048, free: 13440}
    disk_gb:
      description: Disk of the instances directory in GiB, with the same keys; used counts flavor disk sizes.
      type: dict
      returned: always
      sample: {total: 100, reserved: 0, ratio: 1.0, capacity: 100, used: 20, free: 80}
    instances:
      description: Every domain on the host with its allocation (managed false for domains made elsewhere).
      type: list
      elements: dict
      returned: always
      sample: [{name: web1, uuid: 7f1c1f0e-8a7b-4b8e-9a57-0d0c0e6a7c11, project: demo, state: running, vcpus: 1,
                ram_mb: 2048, disk_gb: 20, server_group: null, managed: true}]
"""

from ansible_collections.nimbus.cloud.plugins.module_utils import _libvirt as lv
from ansible_collections.nimbus.cloud.plugins.module_utils._base import NimbusModule


class HypervisorInfoModule(NimbusModule):
    returns_commands = False
    argument_spec = dict(
        uri=dict(type="str", default="qemu:///system"),
    )

    def run(self):
        self.require("libvirt-python", lv.LIBVIRT_IMPORT_ERROR)
        hv = lv.Hypervisor(self.runner, uri=self.params["uri"])
        return {"hypervisor": lv.hypervisor_summary(hv)}


def main():
    HypervisorInfoModule.main()


if __name__ == "__main__":
    main()
