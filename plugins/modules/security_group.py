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
  - A rule with O(rules[].remote_group) matches the addresses of that group's ports. Pass O(ports) (for example what
    M(nimbus.cloud.port_info) returns on the network node) to fill this group's member set on this host.
  - Deleting a group that a port on this host still uses, or that another group's rules name, fails and changes
    nothing.
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
    description: Project that owns the group.
    type: str
  description:
    description: Free text.
    type: str
  rules:
    description: The group's rules (IPv4). Left out, an existing group keeps its rules; a new one has none.
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
    description: Add a rule that lets everything out of the group's ports.
    type: bool
    default: true
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
"""

from ansible_collections.nimbus.cloud.plugins.module_utils import _nftables as nft
from ansible_collections.nimbus.cloud.plugins.module_utils._base import NimbusModule
from ansible_collections.nimbus.cloud.plugins.module_utils._errors import ValidationError
from ansible_collections.nimbus.cloud.plugins.module_utils._files import Records
from ansible_collections.nimbus.cloud.plugins.module_utils._names import validate_name

RECORD_DIR = "/etc/nimbus/security-groups"


class SecurityGroupModule(NimbusModule):
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
        allow_all_egress=dict(type="bool", default=True),
        ports=dict(type="list", elements="dict"),
    )

    def run(self):
        p = self.params
        name = validate_name(p["name"], "security group")
        old = records().read(name)
        ruleset = nft.read(self.runner)
        before = old or {}
        if p["state"] == "absent":
            if old is None and not nft.delete_group_lines(ruleset, name):
                return {"security_group": {}}
            self.check_unused(name, ruleset)
            lines = nft.delete_group_lines(ruleset, name)
            nft.apply(self.runner, lines)
            self.runner.apply("remove the record of %s" % name, records().remove, name)
            self.changed = True
            self.set_diff(before, {})
            return {"security_group": {}}
        raw_rules = p["rules"] if p["rules"] is not None else (old or {}).get("given_rules", [])
        rules = nft.build_rules(raw_rules, p["allow_all_egress"])
        members = nft.group_members(name, p["ports"]) if p["ports"] is not None else None
        lines = nft.base_script(ruleset) + nft.group_lines(ruleset, name, rules, members)
        if members is None:
            members = ruleset.sets.get(nft.members_set(name), [])
        after = {
            "name": name, "project": p["project"] if p["project"] is not None else (old or {}).get("project"),
            "description": p["description"] if p["description"] is not None else (old or {}).get("description"),
            "allow_all_egress": p["allow_all_egress"], "rules": [r.view() for r in rules], "members": members,
        }
        record = dict(after, given_rules=[{k: v for k, v in r.items() if v is not None} for r in raw_rules])
        if lines:
            nft.apply(self.runner, lines)
            self.changed = True
        if old != record:
            self.runner.apply("write the record of %s" % name, records().write, name, record)
            self.changed = True
        self.set_diff(view(before), after)
        return {"security_group": after}

    def check_unused(self, name, ruleset):
        users = sorted(set(ruleset.jumps_to(nft.group_chain(name, "ingress")) +
                           ruleset.jumps_to(nft.group_chain(name, "egress"))))
        if users:
            ports = sorted({u[5:13] for u in users})
            raise ValidationError("security group %s is used by ports on this host (ids %s...); unplug them first"
                                  % (name, ", ".join(ports)))
        naming = sorted(other["name"] for other in records().all() if other["name"] != name
                        and any(r.get("remote_group") == name for r in other.get("rules", [])))
        if naming:
            raise ValidationError("security group %s is named by the rules of %s" % (name, ", ".join(naming)))


def view(record):
    return {k: v for k, v in record.items() if k != "given_rules"}


def records():
    return Records(RECORD_DIR)


def main():
    SecurityGroupModule.main()


if __name__ == "__main__":
    main()
