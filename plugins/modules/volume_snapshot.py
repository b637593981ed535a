#!/usr/bin/python
# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: volume_snapshot
short_description: A snapshot of a volume on a nimbus.cloud storage host (Cinder's snapshots)
version_added: 0.2.0
description:
  - Runs on a storage host (the P(nimbus.cloud.volumes#role) role).
  - A snapshot of a qcow2 volume is an internal qcow2 snapshot in the volume's file, tagged with the snapshot's
    id (C(qemu-img snapshot)); a snapshot of a raw volume is a sparse copy in the pool's C(snapshots) directory.
    Either way its record is C(snapshots/<id>.json) in the pool.
  - A snapshot is taken, and deleted, only while its volume is not attached, so that the storage host never
    changes a file a guest is writing; detach the volume first (Cinder's C(--force) has no equivalent).
  - New volumes are made from a snapshot with M(nimbus.cloud.volume) and its O(nimbus.cloud.volume#module:snapshot)
    option. A volume with snapshots is deleted only with O(nimbus.cloud.volume#module:cascade=true).
  - The snapshot is found by O(id) when given, else by O(name). There are no create-only attributes besides
    its data; O(name) (with O(id)), O(description) and O(metadata) change on an existing snapshot, and options left
    out keep their current value.
  - In check mode nothing is written; the result's RV(commands) lists what a real run would do.
author:
  - nimbus.cloud contributors (@nimbus-cloud)
extends_documentation_fragment:
  - nimbus.cloud.attributes
options:
  name:
    description: The snapshot's name. Required to take a snapshot.
    type: str
  id:
    description: The snapshot's UUID; given to a new snapshot, it becomes its id.
    type: str
  volume:
    description: The volume (its UUID or its name). Required to take a snapshot.
    type: str
  state:
    description: C(present) or C(absent).
    type: str
    choices: [present, absent]
    default: present
  description:
    description: Free text.
    type: str
  metadata:
    description: Key and value strings, as the whole set.
    type: dict
seealso:
  - module: nimbus.cloud.volume
  - module: nimbus.cloud.volume_info
"""

EXAMPLES = r"""
- name: Snapshot a detached volume before an upgrade
  nimbus.cloud.volume_snapshot:
    name: data-before-upgrade
    volume: data

- name: A volume made from it
  nimbus.cloud.volume:
    name: data-copy
    snapshot: data-before-upgrade

- name: Delete the snapshot
  nimbus.cloud.volume_snapshot:
    name: data-before-upgrade
    state: absent
"""

RETURN = r"""
snapshot:
  description: The snapshot after the task (empty when absent).
  returned: always
  type: dict
  contains:
    id: {description: The snapshot's UUID (the qcow2 snapshot's tag)., type: str}
    name: {description: Its name., type: str}
    volume_id: {description: The volume it is of., type: str}
    size: {description: "The volume's size when taken, in GiB.", type: int}
    status: {description: C(available)., type: str}
    description: {description: Free text., type: str}
    project: {description: "The volume's project.", type: str}
    metadata: {description: Key and value strings., type: dict}
    created_at: {description: UTC time., type: str}
    updated_at: {description: UTC time., type: str}
  sample:
    id: 9a3e1f0c-7d52-4b8e-a1c6-0e2f4d6b8a10
    name: data-before-upgrade
    volume_id: 4d1c5b8e-2f59-4c1b-9a0e-6f7d9a3b2c11
    size: 10
    status: available
    description: ""
    project: demo
    metadata: {}
commands:
  description: In check mode, what a real run would do.
  returned: check mode
  type: list
  elements: str
  sample: ["take snapshot data-before-upgrade (9a3e1f0c-7d52-4b8e-a1c6-0e2f4d6b8a10) of volume 4d1c5b8e-2f59-4c1b-9a0e-6f7d9a3b2c11"]
"""

from ansible_collections.nimbus.cloud.plugins.module_utils import _volumes as volumes


class VolumeSnapshotModule(volumes.StorageResourceModule):
    resource = "snapshot"
    kind = "snapshot"
    updatable = volumes.SNAPSHOT_UPDATABLE
    argument_spec = dict(
        name=dict(type="str"),
        id=dict(type="str"),
        volume=dict(type="str"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        description=dict(type="str"),
        metadata=dict(type="dict"),
    )
    required_one_of = (("name", "id"),)

    def plan_present(self, current):
        p = self.params
        return volumes.plan_snapshot_present(self.storage, current, self.task(), p["volume"], snapshot_id=p["id"],
                                             name=p["name"])

    def plan_absent(self, current):
        return volumes.plan_snapshot_absent(self.storage, current)


def main():
    VolumeSnapshotModule.main()


if __name__ == "__main__":
    main()
