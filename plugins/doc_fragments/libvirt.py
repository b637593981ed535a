# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Every compute module talks to libvirt on the hypervisor the task runs on.
    DOCUMENTATION = r"""
options:
  uri:
    description: libvirt connection URI on the hypervisor.
    type: str
    default: qemu:///system
requirements:
  - python3-libvirt on the hypervisor (the P(nimbus.cloud.kvm#role) role installs it)
"""
