#!/usr/bin/python
# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: volume
short_description: A volume on a nimbus.cloud storage host (Cinder's volumes)
version_added: 0.2.0
description:
  - Runs on a storage host (the P(nimbus.cloud.volumes#role) role). A volume is a file in the pool of its volume
    type's backend, named by its UUID, with a JSON record beside it (name, size, type, format, project, metadata,
    source, attachments).
  - A new volume is blank (O(size)), or made from an image of the image store (O(image), pulled and checked by
    its sha512 as hypervisors pull them), a snapshot (O(snapshot)), another volume (O(source_volume)) or a backup
    (O(backup), whose file's sha256 is checked first). The volume is at least as large as its source.
  - The volume is found by O(id) when given, else by O(name); several volumes of one name need O(id).
  - O(size) only grows an existing volume, and only while it is not attached; a smaller size is refused.
  - The create-only attributes are O(volume_type) and O(project), fixed once the volume exists; O(name) (with
    O(id)), O(description), O(metadata) and O(bootable) change. Options left out keep their current value.
  - A create or an extend that would take the backend past its capacity (the sum of its volumes' sizes) is
    refused before anything is made. A failure or a full disk leaves nothing behind.
  - An attached volume cannot be deleted; a volume with snapshots only with O(cascade=true), which deletes them.
  - In check mode nothing is written; the result's RV(commands) lists what a real run would do.
author:
  - nimbus.cloud contributors (@nimbus-cloud)
extends_documentation_fragment:
  - nimbus.cloud.attributes
options:
  name:
    description: The volume's name. Required to create a volume.
    type: str
  id:
    description:
      - The volume's UUID. Given to a new volume, it becomes its id (the API service passes Cinder's id this way);
        left out, a new volume gets a random one.
    type: str
  state:
    description: C(present) or C(absent).
    type: str
    choices: [present, absent]
    default: present
  size:
    description:
      - Size in GiB. Required for a blank volume or one made from an image; defaults to the source's size for the
        other sources. A larger size extends an existing volume.
    type: int
  volume_type:
    description: The volume type (its backend and format). Left out, the storage host's default type.
    type: str
  project:
    description: The project that owns the volume.
    type: str
  description:
    description: Free text.
    type: str
  metadata:
    description: Key and value strings, as the whole set.
    type: dict
  bootable:
    description: Whether the volume holds a system an instance can boot. Volumes made from an image are.
    type: bool
  image:
    description: Make the new volume from this image of the image store (its UUID or its name).
    type: str
  snapshot:
    description: Make the new volume from this snapshot (its UUID or its name).
    type: str
  source_volume:
    description: Make the new volume as a copy of this volume (its UUID or its name), which must not be attached.
    type: str
  backup:
    description: Restore this backup (its UUID or its name) into the new volume.
    type: str
  cascade:
    description: With O(state=absent), delete the volume's snapshots too.
    type: bool
    default: false
notes:
  - The source options are read only when the volume is made; on an existing volume they are ignored.
seealso:
  - module: nimbus.cloud.volume_info
  - module: nimbus.cloud.volume_snapshot
  - module: nimbus.cloud.volume_backup
"""

EXAMPLES = r"""
- name: A blank 10 GiB volume for project demo
  nimbus.cloud.volume:
    name: data
    size: 10
    project: demo
    metadata:
      purpose: database

- name: A bootable volume from an image of the image store
  nimbus.cloud.volume:
    name: root-disk
    size: 2
    image: debian-12
    project: demo

- name: Grow it
  nimbus.cloud.volume:
    name: data
    size: 20

- name: Delete a volume and its snapshots
  nimbus.cloud.volume:
    name: data
    state: absent
    cascade: true
"""

RETURN = r"""
volume:
  description: The volume after the task (empty when absent).
  returned: always
  type: dict
  contains:
    id: {description: The volume's UUID (also its file's name)., type: str}
    name: {description: The volume's name., type: str}
    size: {description: GiB., type: int}
    volume_type: {description: Its type., type: str}
    backend: {description: The backend (pool) it is in., type: str}
    format: {description: C(qcow2) or C(raw)., type: str}
    status: {description: C(available) or C(in-use)., type: str}
    description: {description: Free text., type: str}
    project: {description: Owner., type: str}
    metadata: {description: Key and value strings., type: dict}
    bootable: {description: Whether it holds a bootable system., type: bool}
    source:
      description: "Where it was made from: C(image:<id>), C(snapshot:<id>), C(volume:<id>), C(backup:<id>), or null."
      type: str
    attachments: {description: "The instances it is attached to, with their host and device.", type: list}
    created_at: {description: UTC time., type: str}
    updated_at: {description: UTC time., type: str}
  sample:
    id: 4d1c5b8e-2f59-4c1b-9a0e-6f7d9a3b2c11
    name: data
    size: 10
    volume_type: standard
    backend: file
    format: qcow2
    status: available
    description: ""
    project: demo
    metadata: {purpose: database}
    bootable: false
    source: null
    attachments: []
commands:
  description: In check mode, what a real run would do (the steps of the plan).
  returned: check mode
  type: list
  elements: str
  sample: ["create volume data (4d1c5b8e-2f59-4c1b-9a0e-6f7d9a3b2c11): 10 GiB qcow2, type standard"]
"""

from ansible_collections.nimbus.cloud.plugins.module_utils import _volumes as volumes
from ansible_collections.nimbus.cloud.plugins.module_utils._errors import ValidationError


class VolumeModule(volumes.StorageResourceModule):
    resource = "volume"
    kind = "volume"
    updatable = volumes.UPDATABLE
    create_only = volumes.CREATE_ONLY
    defaults = volumes.DEFAULTS
    argument_spec = dict(
        name=dict(type="str"),
        id=dict(type="str"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        size=dict(type="int"),
        volume_type=dict(type="str"),
        project=dict(type="str"),
        description=dict(type="str"),
        metadata=dict(type="dict"),
        bootable=dict(type="bool"),
        image=dict(type="str"),
        snapshot=dict(type="str"),
        source_volume=dict(type="str"),
        backup=dict(type="str"),
        cascade=dict(type="bool", default=False),
    )
    mutually_exclusive = (volumes.SOURCES,)
    required_one_of = (("name", "id"),)

    def prepare(self):
        volumes.check_size(self.params["size"])
        if self.params["state"] == "absent" and self.params["size"] is not None:
            raise ValidationError("size is for state=present")
        super().prepare()

    def plan_present(self, current):
        p = self.params
        source = next(((k, p[k]) for k in volumes.SOURCES if p[k] is not None), None)
        task = self.task()
        if current is None:
            task["name"] = p["name"]
        return volumes.plan_volume_present(self.storage, current, task, p["size"], source, volume_id=p["id"],
                                           name=p["name"])

    def plan_absent(self, current):
        return volumes.plan_volume_absent(self.storage, current, cascade=self.params["cascade"])


def main():
    VolumeModule.main()


if __name__ == "__main__":
    main()
