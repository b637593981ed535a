#!/usr/bin/python
# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: volume_backup
short_description: A backup of a volume on a nimbus.cloud storage host (Cinder's backups)
version_added: 0.2.0
description:
  - Runs on a storage host (the P(nimbus.cloud.volumes#role) role).
  - A backup is a compressed qcow2 copy of the volume in the storage host's backup directory
    (C(volumes_backup_dir)), with its record beside it. The record holds the sha256 of the backup file, and a
    restore checks it before anything is made.
  - A volume is backed up only while it is not attached (a guest may be writing it); detach it, or back up a
    volume made from a snapshot of it.
  - Restore a backup into a new volume with M(nimbus.cloud.volume) and its O(nimbus.cloud.volume#module:backup)
    option.
  - The backup is found by O(id) when given, else by O(name). There are no create-only attributes besides its
    data, which never changes; O(name) (with O(id)) and O(description) change on an existing backup, and options
    left out keep their current value.
  - In check mode nothing is written; the result's RV(commands) lists what a real run would do.
author:
  - nimbus.cloud contributors (@nimbus-cloud)
extends_documentation_fragment:
  - nimbus.cloud.attributes
options:
  name:
    description: The backup's name. Required to take a backup.
    type: str
  id:
    description: The backup's UUID; given to a new backup, it becomes its id.
    type: str
  volume:
    description: The volume (its UUID or its name). Required to take a backup.
    type: str
  state:
    description: C(present) or C(absent).
    type: str
    choices: [present, absent]
    default: present
  description:
    description: Free text.
    type: str
notes:
  - Backups go to a directory of the storage host; an object store container is a later backend.
seealso:
  - module: nimbus.cloud.volume
  - module: nimbus.cloud.volume_info
"""

EXAMPLES = r"""
- name: Back up a detached volume
  nimbus.cloud.volume_backup:
    name: data-nightly
    volume: data

- name: Restore it into a new volume
  nimbus.cloud.volume:
    name: data-restored
    backup: data-nightly
"""

RETURN = r"""
backup:
  description: The backup after the task (empty when absent). C(sha256) and C(bytes) are null in check mode.
  returned: always
  type: dict
  contains:
    id: {description: The backup's UUID (its file's name)., type: str}
    name: {description: Its name., type: str}
    volume_id: {description: The volume it is of., type: str}
    size: {description: "The volume's size, in GiB.", type: int}
    status: {description: C(available)., type: str}
    description: {description: Free text., type: str}
    project: {description: "The volume's project.", type: str}
    sha256: {description: sha256 of the backup file., type: str}
    bytes: {description: Bytes of the backup file., type: int}
    created_at: {description: UTC time., type: str}
    updated_at: {description: UTC time., type: str}
  sample:
    id: 2c7b9e14-5a3d-4f60-8b21-d9e0c3a4f5b6
    name: data-nightly
    volume_id: 4d1c5b8e-2f59-4c1b-9a0e-6f7d9a3b2c11
    size: 10
    status: available
    description: ""
    project: demo
    sha256: 3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
    bytes: 196608
commands:
  description: In check mode, what a real run would do.
  returned: check mode
  type: list
  elements: str
  sample: ["back up volume 4d1c5b8e-2f59-4c1b-9a0e-6f7d9a3b2c11 into backup data-nightly (2c7b9e14-5a3d-4f60-8b21-d9e0c3a4f5b6)"]
"""

from ansible_collections.nimbus.cloud.plugins.module_utils import _volumes as volumes


class VolumeBackupModule(volumes.StorageResourceModule):
    resource = "backup"
    kind = "backup"
    updatable = volumes.BACKUP_UPDATABLE
    argument_spec = dict(
        name=dict(type="str"),
        id=dict(type="str"),
        volume=dict(type="str"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        description=dict(type="str"),
    )
    required_one_of = (("name", "id"),)

    def plan_present(self, current):
        p = self.params
        return volumes.plan_backup_present(self.storage, current, self.task(), p["volume"], backup_id=p["id"],
                                           name=p["name"])

    def plan_absent(self, current):
        return volumes.plan_backup_absent(self.storage, current)


def main():
    VolumeBackupModule.main()


if __name__ == "__main__":
    main()
