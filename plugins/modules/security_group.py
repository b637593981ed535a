#!/usr/bin/python
# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: security_group
short_description: A nimbus.cloud security group and its rules, enforced with nftables on a compute host
version_added: 0.1.0
description:
  - Runs on every compute host whose instances use the group. The rules become the nftables chains
    C(sg-<name>-in) and C(sg-<name>-out) in table C(inet nimbus); M(nimbus.cloud.instance) makes each port's filter
    on the instance's tap jump to the chains of the port's groups.
  - A filtered port drops new inbound connections unless a rule of one of its groups accepts them, allows replies
    to what it sent (connection tracking), and drops what it sends from another MAC or address (anti-spoofing).
  - Egress is allowed unless O(allow_all_egress=false); then only what the egress rules accept leaves the port.
  - Rules are compared as a set; their order never matters. A changed group is rewritten in one atomic nftables
    transaction, and the tables are saved to C(/etc/nimbus/nftables.nft) for the next boot.
  - Every rule carries a digest of its text as its comment, so a rule added, removed or changed by hand in one of the
    group's chains is seen and the chain is rewritten.
  - A rule with O(rules[].remote_group) matches the addresses of that group's ports. Pass O(ports) (for example what
    M(nimbus.cloud.port_info) returns on the network node) to fill this group's member set on this host.
  - Options left out keep the group's current value (a new group takes the documented defaults), so a shorter task
    changes nothing. All of O(project), O(description), O(rules) and O(allow_all_egress) may be changed on an
    existing group; the group has no create-only attributes (O(name) names it).
  - Deleting a group that a port on this host still uses, or that another group's rules name, fails and changes
    nothing. Deleting the last group of a host with no filtered port removes the collection's tables.
  - In check mode nothing changes (no file, directory or table); the result's RV(commands) lists what a real run
    would do.
author:
  - nimbus.cloud contributors (@nimbus-cloud)
extends_documentation_fragment:
  - nimbus.cloud.attributes
options:
  name:
    description: Group name, unique in the cloud.
    type: str
    required: true
  state:
    description: Whether the group should exist on this host.
    type: str
    choices: [present, absent]
    default: present
  project:
    description: Project that owns the group. Updatable; left out, the group keeps its project.
    type: str
  description:
    description: Free text. Updatable; left out, the group keeps its description.
    type: str
  rules:
    description:
      - The group's rules (IPv4), compared as a set. Updatable; left out, an existing group keeps its rules and a new
        one has none.
    type: list
    elements: dict
    suboptions:
      direction:
        description: C(ingress) (to the port) or C(egress) (from it).
        type: str
        choices: [ingress, egress]
        default: ingress
      protocol:
        description: C(any), C(icmp), C(tcp), C(udp) or an IP protocol number.
        type: str
        default: any
      port_range_min:
        description: First TCP/UDP port, or the ICMP type.
        type: int
      port_range_max:
        description: Last TCP/UDP port (default the first), or the ICMP code.
        type: int
      remote_ip_prefix:
        description: Peer addresses (CIDR); left out, any.
        type: str
      remote_group:
        description: Peers are the ports of this group.
        type: str
  allow_all_egress:
    description:
      - Add a rule that lets everything out of the group's ports. Updatable; left out, an existing group keeps its
        setting and a new group allows all egress (V(true)).
    type: bool
  ports:
    description:
      - Ports of the cloud (dicts with C(security_groups) and C(fixed_ips)). The addresses of those in this group fill
        its member set for remote-group rules. Left out, the member set keeps its content.
    type: list
    elements: dict
seealso:
  - module: nimbus.cloud.port
  - module: nimbus.cloud.instance
"""

EXAMPLES = r"""
- name: Web servers - HTTP from anywhere, everything from each other
  nimbus.cloud.security_group:
    name: web
    project: demo
    rules:
      - {protocol: tcp, port_range_min: 80}
      - {protocol: any, remote_group: web}
    ports: "{{ hostvars[groups['network'][0]].cloud_ports.ports }}"

- name: Close egress; the group keeps its project, description and rules
  nimbus.cloud.security_group:
    name: web
    allow_all_egress: false

- name: Delete the group on this host
  nimbus.cloud.security_group:
    name: web
    state: absent
"""

RETURN = r"""
security_group:
  description: The group; empty after O(state=absent).
  returned: always
  type: dict
  contains:
    name: {description: Group name., type: str}
    project: {description: Owning project., type: str}
    description: {description: Free text., type: str}
    allow_all_egress: {description: Whether egress is open., type: bool}
    rules: {description: "The rules (sorted), including the implied egress rule.", type: list, elements: dict}
    members: {description: Addresses in the member set., type: list, elements: str}
  sample:
    name: web
    rules:
      - {direction: ingress, protocol: tcp, port_range_min: 80, port_range_max: null, remote_ip_prefix: null,
         remote_group: null}
commands:
  description: In check mode, what a real run would do (the nftables transaction, the save, the record).
  returned: in check mode
  type: list
  elements: str
  sample: ["nft -f -", "save the nimbus nftables to /etc/nimbus/nftables.nft",
           "write /etc/nimbus/security-groups/web.json"]
"""

from ansible_collections.nimbus.cloud.plugins.module_utils import _security_group as sg
from ansible_collections.nimbus.cloud.plugins.module_utils._names import validate_name
from ansible_collections.nimbus.cloud.plugins.module_utils._resource import ResourceModule


class SecurityGroupModule(ResourceModule):
    resource = "security_group"
    kind = sg.KIND
    updatable = sg.UPDATABLE
    create_only = sg.CREATE_ONLY
    defaults = sg.DEFAULTS
    argument_spec = dict(
        name=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        project=dict(type="str"),
        description=dict(type="str"),
        rules=dict(type="list", elements="dict", options=dict(
            direction=dict(type="str", choices=["ingress", "egress"], default="ingress"),
            protocol=dict(type="str", default="any"),
            port_range_min=dict(type="int"),
            port_range_max=dict(type="int"),
            remote_ip_prefix=dict(type="str"),
            remote_group=dict(type="str"),
        )),
        allow_all_egress=dict(type="bool"),
        ports=dict(type="list", elements="dict"),
    )

    def prepare(self):
        validate_name(self.params["name"], sg.KIND)

    def find(self):
        self.host = sg.read_host(self.runner)
        return self.host.find(self.params["name"])

    def plan_present(self, current):
        return sg.plan_present(self.host, self.params["name"], self.task(), self.params["ports"])

    def plan_absent(self, current):
        return sg.plan_absent(self.host, self.params["name"])


def main():
    SecurityGroupModule.main()


if __name__ == "__main__":
    main()
