#!/usr/bin/python
# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: swift_ring_info
short_description: Read the Swift rings of a host, from their builders or their ring files
version_added: 0.2.0
description:
  - Lists the rings (V(account), V(container), V(object), V(object-N)) that have a C(<name>.builder) or a
    C(<name>.ring.gz) in O(builder_dir).
  - On the ring-builder host a ring is read from its builder (Swift's C(RingBuilder)) with its balance,
    dispersion and the time left before the next rebalance, and its ring file is compared with the builder's
    ring. Storage nodes have ring files but no builders; their rings are read from the ring file (C(RingData)).
author:
  - nimbus.cloud contributors (@nimbus-cloud)
requirements:
  - swift (Debian's C(python3-swift), 2.30 on bookworm)
extends_documentation_fragment:
  - nimbus.cloud.attributes
  - nimbus.cloud.attributes.info_module
options:
  builder_dir:
    description: Where the builders and ring files are.
    type: path
    default: /etc/swift
  name:
    description: Only this ring.
    type: str
seealso:
  - module: nimbus.cloud.swift_ring
"""

EXAMPLES = r"""
- name: Read the object ring
  nimbus.cloud.swift_ring_info:
    name: object
  register: rings

- name: Every ring file holds its builder's ring
  ansible.builtin.assert:
    that: item.ring_matches_builder is not false
  loop: "{{ rings.rings }}"
"""

RETURN = r"""
rings:
  description: One entry a ring, sorted by name; empty when nothing matches.
  returned: always
  type: list
  elements: dict
  contains:
    name: {description: "The ring.", type: str, sample: object}
    has_builder: {description: "Whether C(<name>.builder) exists.", type: bool}
    has_ring: {description: "Whether C(<name>.ring.gz) exists.", type: bool}
    builder: {description: "The builder's path, or null without one.", type: str}
    ring: {description: "The ring file's path, or null without one.", type: str}
    source: {description: "Where the figures come from, V(builder) or V(ring) (the ring file alone).", type: str}
    part_power: {description: "2^part_power partitions.", type: int}
    replicas: {description: "Replicas of each partition.", type: float}
    min_part_hours: {description: "The builder's min_part_hours; null without a builder.", type: int}
    min_part_seconds_left:
      description: Seconds before the builder allows the next rebalance; null without a builder.
      type: int
    balance: {description: "Swift's balance (percent); null without a builder or a device with weight.", type: float}
    dispersion: {description: "Swift's dispersion (percent); null without a builder.", type: float}
    devices:
      description: The devices (the builder's, else the ring file's), with the partition replicas each holds.
      type: list
      elements: dict
      sample: [{id: 0, region: 1, zone: 1, ip: 10.0.30.11, port: 6200, device: sdb, weight: 100.0, parts: 16384,
                replication_ip: 10.0.30.11, replication_port: 6200, meta: ""}]
    ring_sha256: {description: "SHA-256 of the ring file; null without one.", type: str}
    ring_matches_builder:
      description:
        - Whether the ring file has the builder's devices and partition assignments (its version aside); null
          unless both exist. False means the ring file is behind its builder.
      type: bool
"""

from ansible_collections.nimbus.cloud.plugins.module_utils import _swift_ring as sr
from ansible_collections.nimbus.cloud.plugins.module_utils._base import NimbusModule


class SwiftRingInfoModule(NimbusModule):
    returns_commands = False
    argument_spec = dict(
        builder_dir=dict(type="path", default="/etc/swift"),
        name=dict(type="str"),
    )

    def run(self):
        p = self.params
        if p["name"] is not None:
            sr.ring_files(p["builder_dir"], p["name"])
        self.require("swift", sr.SWIFT_IMPORT_ERROR)
        with sr.ring_lock(p["builder_dir"]):
            names = sr.ring_names(p["builder_dir"], only=p["name"])
            return {"rings": [sr.describe(sr.RingFiles(p["builder_dir"], n)) for n in names]}


def main():
    SwiftRingInfoModule.main()


if __name__ == "__main__":
    main()
