#!/usr/bin/python
# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: swift_replicate
short_description: Run Swift's replicators on a storage host, once or until its devices are in sync
version_added: 0.2.0
description:
  - Runs the account, container and object replicators of a Swift storage host (C(swift-*-replicator --once)).
    Each partition the host holds is compared with the other devices the ring puts it on, and what they lack is
    pushed to them; handoff partitions are pushed to their primaries and removed.
  - Each pass reports Swift's own figures, read from a recon cache of the pass's own (the replicator daemons
    write theirs after every pass of theirs).
  - With O(until_in_sync=true) a replicator runs again until one pass finds every partition in sync with its
    other devices (nothing pushed, nothing failed), at most O(max_passes) times; one pass is not always enough,
    as a push can race a write or a daemon's pass, or fail against a busy peer.
  - The task fails when a replicator's last pass counted failures (a device that could not be reached or
    written), or, with O(until_in_sync=true), when its last pass still pushed something.
author:
  - nimbus.cloud contributors (@nimbus-cloud)
requirements:
  - swift (Debian's C(swift-account), C(swift-container), C(swift-object); 2.30 on bookworm)
extends_documentation_fragment:
  - nimbus.cloud.attributes
attributes:
  check_mode:
    support: partial
    details: Whether a pass would push anything is known only by running it. In check mode nothing runs and the
      task is skipped, with the commands a real run would start.
  diff_mode:
    support: none
options:
  servers:
    description: The replicators to run, in this order.
    type: list
    elements: str
    choices: [account, container, object]
    default: [account, container, object]
  devices:
    description: Only these devices of the host (the replicators' C(--devices)); all of them when not given.
    type: list
    elements: str
  conf_dir:
    description: Where the servers' C(<server>-server.conf) are.
    type: path
    default: /etc/swift
  until_in_sync:
    description: Repeat each replicator's pass until one finds everything in sync.
    type: bool
    default: false
  max_passes:
    description: The most passes a replicator runs with O(until_in_sync=true) (1 to 50).
    type: int
    default: 5
notes:
  - Run it on every storage host, the host whose device was refilled too (its other devices may hold handoffs).
    Each host pushes the partitions it holds.
seealso:
  - module: nimbus.cloud.swift_ring
"""

EXAMPLES = r"""
- name: Push back every replica a replaced disk lacks
  nimbus.cloud.swift_replicate:
    until_in_sync: true
  register: replication

- name: One object replication pass of one device
  nimbus.cloud.swift_replicate:
    servers: [object]
    devices: [sdc]
"""

RETURN = r"""
passes:
  description: Every pass run, in order.
  returned: always
  type: list
  elements: dict
  contains:
    server: {description: "Whose replicator.", type: str, sample: object}
    pass: {description: "The how-manyeth pass of that replicator in this task.", type: int, sample: 1}
    moved:
      description:
        - What the pass pushed or removed. Objects, suffix directories rsynced and handoff partitions removed;
          accounts and containers, databases rsynced, sent as row diffs, merged, given timestamps or removed.
      type: int
    failures: {description: "Swift's failure count of the pass.", type: int}
    failure_nodes: {description: "Address to device to failures, as Swift counts them.", type: dict}
    in_sync: {description: "Nothing moved and nothing failed.", type: bool}
    seconds: {description: "How long the pass took.", type: float}
    stats: {description: "Swift's figures of the pass (C(replication_stats) of its recon cache).", type: dict}
in_sync:
  description: Whether every replicator's last pass found everything in sync; null in check mode.
  returned: always
  type: bool
"""

from ansible_collections.nimbus.cloud.plugins.module_utils import _swift_replication as repl
from ansible_collections.nimbus.cloud.plugins.module_utils._base import NimbusModule


class SwiftReplicateModule(NimbusModule):
    argument_spec = dict(
        servers=dict(type="list", elements="str", choices=list(repl.SERVERS), default=list(repl.SERVERS)),
        devices=dict(type="list", elements="str"),
        conf_dir=dict(type="path", default="/etc/swift"),
        until_in_sync=dict(type="bool", default=False),
        # not a password: the most replication passes
        max_passes=dict(type="int", default=5, no_log=False),
    )

    def run(self):
        p = self.params
        repl.check_request(p["servers"], p["devices"], p["max_passes"])
        passes = repl.replicate(self.runner, p["conf_dir"], p["servers"], p["devices"], p["until_in_sync"],
                                p["max_passes"])
        if self.check_mode:
            return {"skipped": True, "msg": "the replicators run only outside check mode", "passes": [],
                    "in_sync": None}
        return repl.outcome(passes, p["until_in_sync"])


def main():
    SwiftReplicateModule.main()


if __name__ == "__main__":
    main()
