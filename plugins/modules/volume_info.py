#!/usr/bin/python
# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: volume_info
short_description: The volumes, snapshots and backups of a nimbus.cloud storage host
version_added: 0.2.0
description:
  - Runs on a storage host (the P(nimbus.cloud.volumes#role) role) and reads the records of its volumes, their
    snapshots and its backups; it changes nothing.
  - The API service's resource views read volumes through it.
author:
  - nimbus.cloud contributors (@nimbus-cloud)
extends_documentation_fragment:
  - nimbus.cloud.attributes
  - nimbus.cloud.attributes.info_module
options:
  name:
    description: Only the volumes, snapshots and backups of these names.
    type: list
    elements: str
  id:
    description: Only those of these ids.
    type: list
    elements: str
  project:
    description: Only those of this project.
    type: str
seealso:
  - module: nimbus.cloud.volume
  - module: nimbus.cloud.volume_snapshot
  - module: nimbus.cloud.volume_backup
"""

EXAMPLES = r"""
- name: Every volume of project demo
  nimbus.cloud.volume_info:
    project: demo
  register: demo_volumes
"""

RETURN = r"""
volumes:
  description: The volumes, sorted by name, with the keys M(nimbus.cloud.volume) returns.
  returned: always
  type: list
  elements: dict
snapshots:
  description: The snapshots, sorted by name, with the keys M(nimbus.cloud.volume_snapshot) returns.
  returned: always
  type: list
  elements: dict
backups:
  description: The backups, sorted by name, with the keys M(nimbus.cloud.volume_backup) returns.
  returned: always
  type: list
  elements: dict
volume_types:
  description: The volume types of this storage host, each with its backend, its format and whether it is the default.
  returned: always
  type: list
  elements: dict
  sample: [{name: standard, backend: file, format: qcow2, default: true}]
"""

from ansible_collections.nimbus.cloud.plugins.module_utils import _volumes as volumes
from ansible_collections.nimbus.cloud.plugins.module_utils._base import NimbusModule


class VolumeInfoModule(NimbusModule):
    returns_commands = False
    argument_spec = dict(
        name=dict(type="list", elements="str"),
        id=dict(type="list", elements="str"),
        project=dict(type="str"),
    )

    def run(self):
        p = self.params
        storage = volumes.Storage(self.runner)

        def wanted(record):
            return ((p["name"] is None or record.name in p["name"]) and (p["id"] is None or record.id in p["id"])
                    and (p["project"] is None or record.project == p["project"]))

        def listed(records):
            return [r.view() for r in sorted((r for r in records if wanted(r)), key=lambda r: (r.name, r.id))]

        default = storage.settings.get("default_type")
        types = [{"name": name, "backend": spec.get("backend"), "format": spec.get("format", "qcow2"),
                  "default": name == default} for name, spec in sorted(storage.types.items())]
        return {"volumes": listed(storage.volumes()), "snapshots": listed(storage.snapshots()),
                "backups": listed(storage.backups()), "volume_types": types}


def main():
    VolumeInfoModule.main()


if __name__ == "__main__":
    main()
