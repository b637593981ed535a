#!/usr/bin/python
# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: volume_attachment
short_description: Attach a volume to an instance, or detach it, over iSCSI (Nova's volume attachments)
version_added: 0.2.0
description:
  - Runs on the compute host of the instance. Attaches a volume that a storage host exports (see
    M(nimbus.cloud.volume_export)) as a virtio disk, live when the instance runs and in its definition, through
    QEMU's own iSCSI initiator; or detaches it.
  - The disk's serial is the volume's UUID, so the guest finds it as C(/dev/disk/by-id/virtio-<first 20
    characters of the UUID>); the instance's domain XML is the compute host's record of the attachment, and the
    instance module keeps it when it redefines the instance.
  - The CHAP password goes into a private libvirt secret by a library call, never on a command line, and is
    removed with the attachment.
  - Idempotent. A volume already attached to the instance is left as it is (its device is returned); another
    target for it is refused (detach first). A missing instance, a device already in use or a detach the guest
    does not complete within O(timeout) fail with nothing changed.
  - In check mode nothing changes; the result's RV(commands) lists what a real run would do.
author:
  - nimbus.cloud contributors (@nimbus-cloud)
extends_documentation_fragment:
  - nimbus.cloud.attributes
  - nimbus.cloud.libvirt
options:
  instance:
    description: The instance (its libvirt domain name).
    type: str
    required: true
  volume_id:
    description: The volume's UUID.
    type: str
    required: true
  state:
    description: C(present) (attached) or C(absent) (detached).
    type: str
    choices: [present, absent]
    default: present
  portal:
    description:
      - The storage host's iSCSI portal, C(HOST:PORT) (the RV(nimbus.cloud.volume_export#module:connection) of
        M(nimbus.cloud.volume_export)). Required to attach.
    type: str
  iqn:
    description: The volume's target name. Required to attach.
    type: str
  lun:
    description: The logical unit.
    type: int
    default: 1
  username:
    description: The CHAP user name.
    type: str
  password:
    description: The CHAP password. Pass it from a task with C(no_log); it never reaches a command line.
    type: str
  device:
    description: The device to attach it as (C(vdb) to C(vdz)). Left out, the first free one.
    type: str
  timeout:
    description: Seconds to wait for the guest to let a detached disk go.
    type: int
    default: 60
seealso:
  - module: nimbus.cloud.volume_export
  - module: nimbus.cloud.volume
  - module: nimbus.cloud.instance
"""

EXAMPLES = r"""
- name: Export the volume to the instance's compute host
  nimbus.cloud.volume_export:
    volume: data
    server_id: "{{ server_id }}"
    initiator: "{{ hostvars[compute_host].ansible_host }}"
  delegate_to: "{{ groups['storage'][0] }}"
  register: export

- name: Read the attachment's CHAP password
  ansible.builtin.slurp:
    src: "{{ export.secret_file }}"
  delegate_to: "{{ groups['storage'][0] }}"
  register: chap
  no_log: true

- name: Attach it to the running instance
  nimbus.cloud.volume_attachment:
    instance: "{{ server_id }}"
    volume_id: "{{ export.volume.id }}"
    portal: "{{ export.connection.portal }}"
    iqn: "{{ export.connection.iqn }}"
    lun: "{{ export.connection.lun }}"
    username: "{{ export.connection.username }}"
    password: "{{ chap.content | b64decode | trim }}"
  no_log: false
"""

RETURN = r"""
attachment:
  description: The attachment after the task (empty when detached).
  returned: always
  type: dict
  contains:
    instance: {description: The instance., type: str}
    volume_id: {description: The volume., type: str}
    device: {description: "The disk's device in the instance, C(vdb) to C(vdz).", type: str}
    target: {description: "C(iscsi://PORTAL/IQN/LUN).", type: str}
  sample:
    instance: 6695eb01-f6a4-8304-79aa-97f2502e1901
    volume_id: 4d1c5b8e-2f59-4c1b-9a0e-6f7d9a3b2c11
    device: vdc
    target: iscsi://10.0.20.5:3260/iqn.2026-12.cloud.nimbus:volume-4d1c5b8e-2f59-4c1b-9a0e-6f7d9a3b2c11/1
commands:
  description: In check mode, what a real run would do.
  returned: check mode
  type: list
  elements: str
  sample: ["attach volume 4d1c5b8e-2f59-4c1b-9a0e-6f7d9a3b2c11 to web1 as vdc"]
"""

from ansible_collections.nimbus.cloud.plugins.module_utils import _libvirt as lv
from ansible_collections.nimbus.cloud.plugins.module_utils._base import NimbusModule
from ansible_collections.nimbus.cloud.plugins.module_utils._compute import (
    VOLUME_DEVICES, VolumeDisk, check_volume_target,
)
from ansible_collections.nimbus.cloud.plugins.module_utils._errors import ValidationError
from ansible_collections.nimbus.cloud.plugins.module_utils._names import validate_name
from ansible_collections.nimbus.cloud.plugins.module_utils._volumes import check_id


class VolumeAttachmentModule(NimbusModule):
    argument_spec = dict(
        instance=dict(type="str", required=True),
        volume_id=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        portal=dict(type="str"),
        iqn=dict(type="str"),
        lun=dict(type="int", default=1),
        username=dict(type="str"),
        password=dict(type="str", no_log=True),
        device=dict(type="str"),
        timeout=dict(type="int", default=60),
        uri=dict(type="str", default="qemu:///system"),
    )
    required_if = (("state", "present", ("portal", "iqn")),)
    required_together = (("username", "password"),)

    def run(self):
        self.require("libvirt-python", lv.LIBVIRT_IMPORT_ERROR)
        p = self.params
        name = validate_name(p["instance"])
        volume_id = check_id("volume", p["volume_id"])
        if p["state"] == "present":
            self.check_target(p)
        hv = lv.Hypervisor(self.runner, uri=p["uri"], settings={})
        with hv.lock():
            inst = hv.read(name)
            if inst is None:
                raise ValidationError("instance %s does not exist on this hypervisor" % name)
            if inst.boot_volume and inst.boot_volume.volume_id == volume_id:
                raise ValidationError("volume %s is the boot volume of instance %s: it is neither attached again "
                                      "nor detached" % (volume_id, name))
            current = next((v for v in inst.volumes if v.volume_id == volume_id), None)
            if p["state"] == "absent":
                after = None
                if current is not None:
                    hv.detach_volume(name, current, p["timeout"])
            else:
                after = self.attach(hv, inst, current, volume_id)
        before_view = self.view(name, current)
        after_view = self.view(name, after)
        self.changed = before_view != after_view
        self.set_diff(before_view, after_view)
        return {"attachment": after_view}

    @staticmethod
    def check_target(p):
        check_volume_target(p["portal"], p["iqn"], p["lun"], p["username"], "volume %s" % p["volume_id"])
        if p["device"] is not None and p["device"] not in VOLUME_DEVICES:
            raise ValidationError("device must be one of vdb to vdz, not %r" % p["device"])
        if p["timeout"] <= 0:
            raise ValidationError("timeout must be more than 0")

    def attach(self, hv, inst, current, volume_id):
        p = self.params
        wanted = VolumeDisk(volume_id=volume_id, device=p["device"], portal=p["portal"], iqn=p["iqn"], lun=p["lun"],
                            username=p["username"])
        if current is not None:
            if (current.portal, current.iqn, current.lun, current.username) != \
                    (wanted.portal, wanted.iqn, wanted.lun, wanted.username):
                raise ValidationError("volume %s is attached to %s from %s; detach it before attaching it from %s"
                                      % (volume_id, inst.name, current.view()["target"], wanted.view()["target"]))
            if p["device"] is not None and p["device"] != current.device:
                raise ValidationError("volume %s is attached to %s as %s, not %s"
                                      % (volume_id, inst.name, current.device, p["device"]))
            return current
        used = {"vda"} | ({"vdb"} if inst.seed_path else set()) | {v.device for v in inst.volumes}
        if wanted.device is None:
            free = [d for d in VOLUME_DEVICES if d not in used]
            if not free:
                raise ValidationError("instance %s has no free disk device left" % inst.name)
            wanted.device = free[0]
        elif wanted.device in used:
            raise ValidationError("device %s of instance %s is in use" % (wanted.device, inst.name))
        hv.attach_volume(inst.name, wanted, p["password"])
        return wanted

    @staticmethod
    def view(name, disk):
        if disk is None:
            return {}
        return {"instance": name, "volume_id": disk.volume_id, "device": disk.device, "target": disk.view()["target"]}


def main():
    VolumeAttachmentModule.main()


if __name__ == "__main__":
    main()
