#!/usr/bin/python
# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: mariadb_galera_info
short_description: Read a MariaDB Galera node's cluster state
version_added: 0.1.0
description:
  - Reads the node's C(grastate.dat) and, when the server runs, its C(wsrep) status.
  - With O(recover_position=true), a stopped node whose saved seqno is C(-1) (it crashed) is asked for its last
    committed position with C(mariadbd --wsrep-recover), which replays InnoDB's redo log and commits nothing new.
  - The result feeds the P(nimbus.cloud.galera_start_plan#filter) filter, which decides which node may bootstrap.
author:
  - nimbus.cloud contributors (@nimbus-cloud)
extends_documentation_fragment:
  - nimbus.cloud.attributes
  - nimbus.cloud.attributes.info_module
options:
  datadir:
    description: The server's data directory, where C(grastate.dat) lives.
    type: path
    default: /var/lib/mysql
  login_unix_socket:
    description: The server's unix socket; the module connects as the OS user running it (root by socket auth).
    type: path
    default: /run/mysqld/mysqld.sock
  recover_position:
    description:
      - Recover the last committed position of a stopped node whose C(grastate.dat) says seqno C(-1).
      - Runs the server binary in recovery mode for a few seconds; never used while the server runs.
      - Recovery replays the redo log into the data files, so in check mode it is skipped and
        RV(galera.position_source) is C(skipped).
    type: bool
    default: false
  user:
    description: The OS user the server runs as, for O(recover_position).
    type: str
    default: mysql
requirements:
  - MariaDB server with the Galera provider installed on the node
"""

EXAMPLES = r"""
- name: Read every member's Galera state
  nimbus.cloud.mariadb_galera_info:
    recover_position: true
  register: galera

- name: Decide which node bootstraps
  ansible.builtin.set_fact:
    plan: "{{ dict(ansible_play_hosts | zip(ansible_play_hosts | map('extract', hostvars, ['galera', 'galera'])))
              | nimbus.cloud.galera_start_plan(ansible_play_hosts) }}"
  run_once: true
"""

RETURN = r"""
galera:
  description: The node's Galera state.
  returned: always
  type: dict
  contains:
    installed:
      description: Whether the MariaDB server is installed.
      type: bool
      sample: true
    running:
      description: Whether the server answers on its socket.
      type: bool
      sample: false
    wsrep_on:
      description: Whether the running server replicates with Galera; false for a standalone server.
      type: bool
      sample: true
    uuid:
      description: The cluster state UUID the node's data belongs to; null before it ever joined a cluster.
      type: str
      sample: 5ee99582-bb8d-11e2-b8e3-23de375c1d30
    seqno:
      description: The last committed sequence number; C(-1) when unknown.
      type: int
      sample: 42
    safe_to_bootstrap:
      description: Whether Galera marked this node as the last one to leave the cluster.
      type: bool
      sample: false
    position_source:
      description: Where RV(galera.seqno) came from; C(skipped) when recovery was asked for in check mode.
      type: str
      choices: [none, grastate, recovered, status, skipped]
      sample: recovered
    cluster_status:
      description: C(wsrep_cluster_status) of the running server (C(Primary) when healthy); null when stopped.
      type: str
      sample: Primary
    cluster_size:
      description: C(wsrep_cluster_size) of the running server; 0 when stopped.
      type: int
      sample: 3
    local_state:
      description: C(wsrep_local_state_comment) of the running server, such as C(Synced).
      type: str
      sample: Synced
    ready:
      description: C(wsrep_ready) of the running server.
      type: bool
      sample: true
commands:
  description: What a real run would do (commands, and the changes that are not commands).
  returned: in check mode
  type: list
  elements: str
  sample:
    - mariadbd --wsrep-recover
"""

from ansible_collections.nimbus.cloud.plugins.module_utils._base import NimbusModule
from ansible_collections.nimbus.cloud.plugins.module_utils._galera import read_node


class MariadbGaleraInfo(NimbusModule):
    argument_spec = dict(
        datadir=dict(type="path", default="/var/lib/mysql"),
        login_unix_socket=dict(type="path", default="/run/mysqld/mysqld.sock"),
        recover_position=dict(type="bool", default=False),
        user=dict(type="str", default="mysql"),
    )

    def run(self):
        node = read_node(
            self.runner,
            datadir=self.params["datadir"],
            socket=self.params["login_unix_socket"],
            recover=self.params["recover_position"],
            user=self.params["user"],
        )
        return {"galera": node.to_dict()}


def main():
    MariadbGaleraInfo.main()


if __name__ == "__main__":
    main()
