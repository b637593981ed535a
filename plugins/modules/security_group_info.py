#!/usr/bin/python
# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: security_group_info
short_description: List the nimbus.cloud security groups defined on a compute host
version_added: 0.1.0
description:
  - Reads the security group records of the compute host the task runs on (see M(nimbus.cloud.security_group)),
    filtered by name and project.
  - Each group is returned with the rules it enforces (the implied egress rule included when
    C(allow_all_egress) is on), sorted, as M(nimbus.cloud.security_group) returns them.
  - A group is defined on every compute host whose instances use it; the API service's security groups view
    (Neutron's security groups) lists each name once.
  - Returns an empty list when nothing matches.
author:
  - nimbus.cloud contributors (@nimbus-cloud)
extends_documentation_fragment:
  - nimbus.cloud.attributes
  - nimbus.cloud.attributes.info_module
options:
  name:
    description: Only these groups.
    type: list
    elements: str
  project:
    description: Only groups of this project.
    type: str
seealso:
  - module: nimbus.cloud.security_group
"""

EXAMPLES = r"""
- name: The security groups of project demo on this host
  nimbus.cloud.security_group_info:
    project: demo
  register: demo_groups
"""

RETURN = r"""
security_groups:
  description: The matching groups, sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    name: {description: Group name., type: str}
    project: {description: Owning project., type: str}
    description: {description: Free text., type: str}
    allow_all_egress: {description: Whether egress is open., type: bool}
    rules: {description: "The enforced rules, sorted, including the implied egress rule.", type: list, elements: dict}
  sample:
    - name: web
      project: demo
      description: web servers
      allow_all_egress: true
      rules:
        - {direction: egress, protocol: any, port_range_min: null, port_range_max: null, remote_ip_prefix: null,
           remote_group: null}
        - {direction: ingress, protocol: tcp, port_range_min: 80, port_range_max: null, remote_ip_prefix: null,
           remote_group: null}
"""

from dataclasses import asdict

from ansible_collections.nimbus.cloud.plugins.module_utils import _security_group as sg
from ansible_collections.nimbus.cloud.plugins.module_utils._base import NimbusModule


class SecurityGroupInfoModule(NimbusModule):
    returns_commands = False
    argument_spec = dict(
        name=dict(type="list", elements="str"),
        project=dict(type="str"),
    )

    def run(self):
        p = self.params
        found = []
        for record in sorted(sg.records().load_all(), key=lambda r: r.name):
            if p["name"] is not None and record.name not in p["name"]:
                continue
            if p["project"] is not None and record.project != p["project"]:
                continue
            group = asdict(record)
            del group["given_rules"]
            found.append(group)
        return {"security_groups": found}


def main():
    SecurityGroupInfoModule.main()


if __name__ == "__main__":
    main()
