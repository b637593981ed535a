#!/usr/bin/python
# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: volume_export
short_description: Serve a volume to an instance's compute host over iSCSI (the storage side of an attachment)
version_added: 0.2.0
description:
  - Runs on the storage host of the volume (the P(nimbus.cloud.volumes#role) role). Creates an iSCSI target in tgt
    for the volume, with the volume's file as LUN 1, open only to the compute host's address (O(initiator)) and
    to a CHAP account of its own, and records the attachment on the volume (status C(in-use)); or removes them.
  - The CHAP password is random, written to a root-only file (RV(secret_file)) and given to tgtd over its
    management socket, never on a command line (tgtadm would put it in its argv). Read the file with a task that
    has C(no_log) and pass it to M(nimbus.cloud.volume_attachment) on the compute host.
  - tgtd keeps targets in memory. After it restarts, the volumes role's restore puts back every attachment the
    records hold, and this module exports an attachment again when its target is missing.
  - A volume has one attachment. Exporting it to another server, or to the same server from another address, is
    refused. Only raw volumes are served (a qcow2 file grows under new clusters, a LUN cannot).
  - Removing the export is refused while the compute host is still logged in to the target; detach the volume
    from the instance first.
  - In check mode nothing changes; the result's RV(commands) lists what a real run would do.
author:
  - nimbus.cloud contributors (@nimbus-cloud)
extends_documentation_fragment:
  - nimbus.cloud.attributes
options:
  volume:
    description: The volume (its UUID or its name).
    type: str
    required: true
  server_id:
    description: The instance the volume is attached to (its name on the compute host, Nova's server id).
    type: str
    required: true
  host:
    description: The compute host of the instance, recorded with the attachment.
    type: str
  initiator:
    description: The compute host's IP address, the only one allowed to log in to the target. Required to export.
    type: str
  portal_address:
    description:
      - The address compute hosts reach this host's target at, returned in RV(connection). Left out, the role's
        C(volumes_iscsi_address), which must then not be C(0.0.0.0).
    type: str
  state:
    description: C(present) (exported) or C(absent).
    type: str
    choices: [present, absent]
    default: present
seealso:
  - module: nimbus.cloud.volume_attachment
  - module: nimbus.cloud.volume
"""

EXAMPLES = r"""
- name: Export the volume to the compute host of server web1
  nimbus.cloud.volume_export:
    volume: data
    server_id: web1
    host: cmp1
    initiator: 10.0.20.11
  register: export
"""

RETURN = r"""
volume:
  description: The volume after the task, with its attachments, as M(nimbus.cloud.volume) returns it.
  returned: always
  type: dict
connection:
  description: What the compute host needs to log in (everything but the password); empty when not exported.
  returned: always
  type: dict
  contains:
    portal: {description: "C(HOST:PORT) of the target.", type: str}
    iqn: {description: The target's name., type: str}
    lun: {description: The logical unit (1)., type: int}
    username: {description: The CHAP user., type: str}
  sample:
    portal: 10.0.20.5:3260
    iqn: iqn.2026-12.cloud.nimbus:volume-4d1c5b8e-2f59-4c1b-9a0e-6f7d9a3b2c11
    lun: 1
    username: volume-4d1c5b8e-2f59-4c1b-9a0e-6f7d9a3b2c11
secret_file:
  description: The root-only file that holds the attachment's CHAP password; empty when not exported.
  returned: always
  type: str
  sample: /etc/nimbus/volume-secrets/4d1c5b8e-2f59-4c1b-9a0e-6f7d9a3b2c11
commands:
  description: In check mode, what a real run would do.
  returned: check mode
  type: list
  elements: str
  sample: ["export volume 4d1c5b8e-2f59-4c1b-9a0e-6f7d9a3b2c11 to 10.0.20.11 (server web1) as target 1"]
"""

from ansible_collections.nimbus.cloud.plugins.module_utils import _tgt as tgtlib
from ansible_collections.nimbus.cloud.plugins.module_utils import _volumes as volumes
from ansible_collections.nimbus.cloud.plugins.module_utils._base import NimbusModule
from ansible_collections.nimbus.cloud.plugins.module_utils._errors import NimbusError
from ansible_collections.nimbus.cloud.plugins.module_utils._resource import apply_steps


class VolumeExportModule(NimbusModule):
    argument_spec = dict(
        volume=dict(type="str", required=True),
        server_id=dict(type="str", required=True),
        host=dict(type="str"),
        initiator=dict(type="str"),
        portal_address=dict(type="str"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    )
    required_if = (("state", "present", ("initiator",)),)

    def run(self):
        p = self.params
        initiator = volumes.check_export_input(p["server_id"], p["initiator"], p["portal_address"])
        storage = volumes.Storage(self.runner)
        with storage.lock():
            volume = storage.lookup("volume", p["volume"])
            attachment = None
            if p["state"] == "present":
                try:
                    live = set(storage.tgt().targets())
                except (tgtlib.TgtError, ConnectionError) as e:
                    raise NimbusError(str(e))
                plan, attachment = volumes.plan_export_present(storage, volume, p["server_id"], p["host"], initiator,
                                                               live)
                conn = volumes.connection(storage, volume, attachment, p["portal_address"])
            else:
                plan = volumes.plan_export_absent(storage, volume, p["server_id"])
                conn = {}
            apply_steps(self.runner, plan.steps)
        self.changed = plan.changed
        self.set_diff(plan.before, plan.after)
        after = plan.after
        if self.changed and not self.check_mode:
            after = storage.find_volume(volume.id).view()
        return {"volume": after, "connection": conn, "secret_file": attachment["secret_file"] if attachment else ""}


def main():
    VolumeExportModule.main()


if __name__ == "__main__":
    main()
