#!/usr/bin/python
# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: swift_ring
short_description: A Swift ring (account, container or object) on the ring-builder host, placed by Swift's RingBuilder
version_added: 0.2.0
description:
  - Runs on the Swift ring-builder host. Keeps C(<builder_dir>/<name>.builder) and C(<name>.ring.gz) in step with the
    listed devices through Swift's own C(RingBuilder) (Debian's C(python3-swift)); all placement is Swift's.
  - Devices are known by their address, port and device name. Missing devices are added, weights move toward the
    given ones (by at most O(weight_step) a run), and devices no longer listed are drained to weight 0 and removed
    once they hold no partition.
  - "One replica per partition: a Swift rebalance moves at most one replica of a partition (also with
    O(min_part_hours=0)), except for devices removed while they hold partitions, whose partitions all move at once.
    This module therefore removes a device only once rebalances have emptied it, and it compares every rebalance
    with the assignment before it: a rebalance that would move two replicas of a partition is refused and nothing
    is written."
  - A rebalance runs when devices, weights or replicas changed (or the builder has unbalanced changes) and
    min_part_hours have passed since the last one; before that, the run changes no weight and reports
    RV(waiting_until). With nothing to change, a rebalance is tried on a copy and kept only when Swift would save it
    (partitions moved and balance or dispersion changed by 1 or more); otherwise nothing is written.
  - The builder is backed up to C(<builder_dir>/backups/<UTC time>.<name>.builder) before it is changed. The ring
    file is written when it differs from the builder's ring, with the bytes C(RingData.save) writes.
  - The partition power cannot change here (Swift's increase is a procedure of its own), nor a device's region or
    zone (remove the device, then add it again).
  - A ring file whose builder is missing is never replaced by a new ring (a new builder would place every partition
    anew); restore the builder from its backups, or remove the ring with O(state=absent) first.
  - In check mode the same plan is computed on a copy of the builder and nothing is written.
author:
  - nimbus.cloud contributors (@nimbus-cloud)
requirements:
  - swift (Debian's C(python3-swift), 2.30 on bookworm)
extends_documentation_fragment:
  - nimbus.cloud.attributes
options:
  name:
    description: The ring, V(account), V(container), V(object) or V(object-N) (storage policy N's object ring).
    type: str
    required: true
  builder_dir:
    description: Where the builder, the ring file and the C(backups) directory are.
    type: path
    default: /etc/swift
  state:
    description: V(absent) backs the builder (or a lone ring file) up, then removes the builder and the ring file.
    type: str
    choices: [present, absent]
    default: present
  part_power:
    description:
      - The ring has 2^part_power partitions. Required to create a ring; an existing ring's is never changed.
    type: int
  replicas:
    description: Replicas of each partition (may be fractional). Required to create a ring; changed through Swift's
      C(set_replicas).
    type: float
  min_part_hours:
    description:
      - Hours before a partition that moved may move again, and between rebalances. A new ring gets 1 when this
        is not given; an existing ring keeps its own.
    type: int
  devices:
    description:
      - Every device the ring should have, as the whole set. Required with O(state=present).
      - At least O(replicas) of them, in at least O(replicas) distinct region and zone pairs, need a weight above 0.
    type: list
    elements: dict
    suboptions:
      region:
        description: Swift region.
        type: int
        default: 1
      zone:
        description: Swift zone in its region. A device's zone and region cannot change in place.
        type: int
        required: true
      ip:
        description: The storage node's IPv4 or IPv6 address.
        type: str
        required: true
      port:
        description: The storage server's port (1 to 65535).
        type: int
        required: true
      device:
        description: The device's directory under the node's devices path (letters, digits, C(.), C(_), C(-)).
        type: str
        required: true
      weight:
        description: Relative weight, 0 or more (0 keeps the device in the ring with no partition).
        type: float
        required: true
      replication_ip:
        description: Address of the replication network; the O(devices[].ip) when a device is added without it.
        type: str
      replication_port:
        description: Port on the replication network; the O(devices[].port) when a device is added without it.
        type: int
      meta:
        description: Free text Swift keeps with the device.
        type: str
  weight_step:
    description:
      - Most a device's weight changes in one run. A new device starts at min(step, weight); a device no longer
        listed goes down by step to 0. Unset, weights reach their target at once.
      - Rebalances wait for min_part_hours, so a ramp of N steps takes at least N runs min_part_hours apart.
    type: float
  rebalance:
    description:
      - Rebalance after changes (when min_part_hours allow) and write the ring file.
      - With V(false) the builder is changed (weights still by O(weight_step) a run) but neither rebalanced nor
        written to the ring file, and no device is removed.
    type: bool
    default: true
  seed:
    description: Seed of Swift's rebalance, for the same placement from the same builder.
    type: int
notes:
  - Without O(seed) the placement Swift picks is random, so in check mode RV(parts_moved) and RV(ring_sha256) may
    differ from what the real run then does; with a seed they are the same.
seealso:
  - module: nimbus.cloud.swift_ring_info
  - name: Swift's ring overview
    description: Partitions, replicas, weights, min_part_hours and how the builder places them.
    link: https://docs.openstack.org/swift/latest/overview_ring.html
"""

EXAMPLES = r"""
- name: The object ring of three zones
  nimbus.cloud.swift_ring:
    name: object
    part_power: 14
    replicas: 3
    min_part_hours: 1
    devices:
      - {zone: 1, ip: 10.0.30.11, port: 6200, device: sdb, weight: 100}
      - {zone: 2, ip: 10.0.30.12, port: 6200, device: sdb, weight: 100}
      - {zone: 3, ip: 10.0.30.13, port: 6200, device: sdb, weight: 100}

- name: A fourth node joins gradually, 25 a run (run it every min_part_hours until remaining is empty)
  nimbus.cloud.swift_ring:
    name: object
    weight_step: 25
    devices:
      - {zone: 1, ip: 10.0.30.11, port: 6200, device: sdb, weight: 100}
      - {zone: 2, ip: 10.0.30.12, port: 6200, device: sdb, weight: 100}
      - {zone: 3, ip: 10.0.30.13, port: 6200, device: sdb, weight: 100}
      - {zone: 4, ip: 10.0.30.14, port: 6200, device: sdb, weight: 100}
  register: ring

- name: Report what is left to do
  ansible.builtin.debug:
    msg: "{{ ring.remaining | length }} devices still ramping; next rebalance {{ ring.waiting_until or 'now' }}"
"""

RETURN = r"""
builder:
  description: The builder file's path.
  returned: always
  type: str
  sample: /etc/swift/object.builder
ring:
  description: The ring file's path.
  returned: always
  type: str
  sample: /etc/swift/object.ring.gz
devices:
  description: The ring's devices after the task (empty when absent), by id.
  returned: always
  type: list
  elements: dict
  contains:
    id: {description: Swift's device id., type: int}
    region: {description: Region., type: int}
    zone: {description: Zone., type: int}
    ip: {description: Address., type: str}
    port: {description: Port., type: int}
    device: {description: Device name., type: str}
    weight: {description: Weight now (on the way to its target when ramping)., type: float}
    parts: {description: Partition replicas assigned to it., type: int}
    replication_ip: {description: Replication address., type: str}
    replication_port: {description: Replication port., type: int}
    meta: {description: Free text., type: str}
  sample: [{id: 0, region: 1, zone: 1, ip: 10.0.30.11, port: 6200, device: sdb, weight: 100.0, parts: 16384,
            replication_ip: 10.0.30.11, replication_port: 6200, meta: ""}]
added:
  description: Devices added by this run, with the weight they start at.
  returned: always
  type: list
  elements: dict
  sample: [{id: 3, region: 1, zone: 4, ip: 10.0.30.14, port: 6200, device: sdb, weight: 25.0}]
removed:
  description: Devices removed by this run (with O(state=absent), every device the builder had).
  returned: always
  type: list
  elements: dict
  sample: [{id: 2, region: 1, zone: 3, ip: 10.0.30.13, port: 6200, device: sdb}]
reweighted:
  description: Weight changes of this run.
  returned: always
  type: list
  elements: dict
  sample: [{id: 3, ip: 10.0.30.14, port: 6200, device: sdb, from: 25.0, to: 50.0}]
remaining:
  description:
    - Devices whose weight is not yet their target after this run; a device no longer listed stays here with target
      0 until it is removed. Empty when the ring is where the task wants it.
  returned: always
  type: list
  elements: dict
  sample: [{ip: 10.0.30.14, port: 6200, device: sdb, weight: 50.0, target: 100.0}]
rebalanced:
  description: Whether this run rebalanced the ring.
  returned: always
  type: bool
parts_moved:
  description: Partition replicas the rebalance assigned to another device (Swift's count).
  returned: always
  type: int
  sample: 4096
moved_share:
  description: RV(parts_moved) over partitions x replicas.
  returned: always
  type: float
  sample: 0.083333
balance:
  description: Swift's balance after the task (the worst device's deviation from its share, in percent).
  returned: always
  type: float
  sample: 0.01
dispersion:
  description: Swift's dispersion after the task (percent of partition replicas not optimally dispersed).
  returned: always
  type: float
  sample: 0.0
waiting_until:
  description: When changes are waiting for min_part_hours, the UTC time the next rebalance may run; else null.
  returned: always
  type: str
  sample: "2026-03-01T12:00:00Z"
backup:
  description: The backup this run made of the builder (or of a lone ring file when absent), or null.
  returned: always
  type: str
  sample: /etc/swift/backups/20260301T110000.123456Z.object.builder
ring_sha256:
  description: SHA-256 of the ring file written, or of the current one when none is written; null when there is none.
  returned: always
  type: str
commands:
  description: In check mode, what a real run would do.
  returned: check mode
  type: list
  elements: str
  sample: ["back up /etc/swift/object.builder to /etc/swift/backups/20260301T110000.123456Z.object.builder",
           "write /etc/swift/object.builder", "write /etc/swift/object.ring.gz"]
"""

import datetime
import time

from ansible_collections.nimbus.cloud.plugins.module_utils import _swift_ring as sr
from ansible_collections.nimbus.cloud.plugins.module_utils._base import NimbusModule

DEVICE_OPTIONS = dict(
    region=dict(type="int", default=1),
    zone=dict(type="int", required=True),
    ip=dict(type="str", required=True),
    port=dict(type="int", required=True),
    device=dict(type="str", required=True),
    weight=dict(type="float", required=True),
    replication_ip=dict(type="str"),
    replication_port=dict(type="int"),
    meta=dict(type="str"),
)


class SwiftRingModule(NimbusModule):
    argument_spec = dict(
        name=dict(type="str", required=True),
        builder_dir=dict(type="path", default="/etc/swift"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        part_power=dict(type="int"),
        replicas=dict(type="float"),
        min_part_hours=dict(type="int"),
        devices=dict(type="list", elements="dict", options=DEVICE_OPTIONS),
        weight_step=dict(type="float"),
        rebalance=dict(type="bool", default=True),
        seed=dict(type="int"),
    )
    required_if = (("state", "present", ("devices",)),)

    def run(self):
        p = self.params
        files = sr.ring_files(p["builder_dir"], p["name"])
        desired = None
        if p["state"] == "present":
            desired = sr.Desired(devices=sr.parse_devices(p["devices"]), part_power=p["part_power"],
                                 replicas=p["replicas"], min_part_hours=p["min_part_hours"],
                                 weight_step=p["weight_step"], rebalance=p["rebalance"], seed=p["seed"])
        self.require("swift", sr.SWIFT_IMPORT_ERROR)
        now = time.time()
        with sr.ring_lock(files.directory):
            if desired is None:
                out = sr.plan_absent(files)
            else:
                out = sr.plan_present(files, desired, sr.load_builder(files.builder), now)
            backup = sr.commit(self.runner, out, datetime.datetime.fromtimestamp(now, datetime.timezone.utc))
        self.changed = out.changed
        result, after = sr.result(out, backup)
        self.set_diff(out.before, after)
        return result


def main():
    SwiftRingModule.main()


if __name__ == "__main__":
    main()
