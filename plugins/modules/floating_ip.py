#!/usr/bin/python
# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: floating_ip
short_description: A nimbus.cloud floating IP - an external address with 1:1 NAT to a port
version_added: 0.1.0
description:
  - Runs on the network node. Takes an address from the router's external network (an IPAM port
    C(fip-<name>) there, so nothing else gets it), puts it on the router's gateway interface, and, when a port is
    given, translates it 1:1 to the port's fixed address in the router's namespace (DNAT in, SNAT out).
  - Inbound traffic still meets the port's security groups, as in Neutron.
  - Without a port the address is held but leads nowhere; giving or changing O(port) later re-points it, and
    O(port={}) disassociates it again.
  - Only the options a task gives are compared; an option left out keeps the floating IP's current value.
    O(port), O(fixed_ip) and O(project) can be updated; O(router) and O(floating_ip) are create-only (a task that
    gives another value fails before anything changes; delete and recreate the floating IP instead).
author:
  - nimbus.cloud contributors (@nimbus-cloud)
extends_documentation_fragment:
  - nimbus.cloud.attributes
options:
  name:
    description: Name of the floating IP, unique in the cloud.
    type: str
    required: true
  state:
    description: Whether the floating IP should exist.
    type: str
    choices: [present, absent]
    default: present
  router:
    description: The router (with an external gateway) that carries the address. Required to create it; create-only.
    type: str
  floating_ip:
    description:
      - The external address; the lowest free one of the external subnet's pools for a new floating IP when left
        out. Create-only.
    type: str
  port:
    description:
      - The port (what M(nimbus.cloud.port) returns) the address leads to. Its network must be joined to the router.
      - An empty dict (V({})) disassociates the floating IP; left out, it keeps leading where it leads.
    type: dict
  fixed_ip:
    description:
      - Which of the port's addresses to use; needs O(port). Left out, the address in use is kept while the port
        still has it, else the port's first address is used.
    type: str
  project:
    description: Project that owns the floating IP. Updatable; left out, kept as it is.
    type: str
seealso:
  - module: nimbus.cloud.router
  - module: nimbus.cloud.port
"""

EXAMPLES = r"""
- name: Make web1 reachable from the public network
  nimbus.cloud.floating_ip:
    name: web1-fip
    router: demo-router
    port: "{{ web1_port.port }}"
  register: web1_fip

- name: Keep the address but lead it nowhere
  nimbus.cloud.floating_ip:
    name: web1-fip
    port: {}
"""

RETURN = r"""
floating_ip:
  description: The floating IP; empty after O(state=absent).
  returned: always
  type: dict
  contains:
    name: {description: Its name., type: str}
    router: {description: The router that carries it., type: str}
    network: {description: The external network it comes from., type: str}
    floating_ip: {description: The external address., type: str}
    port_id: {description: "The port it leads to, or null.", type: str}
    fixed_ip: {description: "The port's address it translates to, or null.", type: str}
    project: {description: Owning project., type: str}
commands:
  description: In check mode, the changes a real run would make (commands and file writes), in order.
  returned: check mode
  type: list
  elements: str
"""

from ansible_collections.nimbus.cloud.plugins.module_utils import _ipam as ipam_lib
from ansible_collections.nimbus.cloud.plugins.module_utils import _router as rt
from ansible_collections.nimbus.cloud.plugins.module_utils._names import validate_name
from ansible_collections.nimbus.cloud.plugins.module_utils._resource import ResourceModule


class FloatingIpModule(ResourceModule):
    resource = "floating_ip"
    kind = "floating IP"
    updatable = ("port", "fixed_ip", "project")
    create_only = ("router", "floating_ip")
    argument_spec = dict(
        name=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        router=dict(type="str"),
        floating_ip=dict(type="str"),
        port=dict(type="dict"),
        fixed_ip=dict(type="str"),
        project=dict(type="str"),
    )

    def prepare(self):
        self.require("netaddr", ipam_lib.NETADDR_IMPORT_ERROR)
        self.name = validate_name(self.params["name"], "floating IP")
        self.host = rt.RouterHost(self.runner)
        self.current = self.host.floating_ips.load(self.name)
        router = self.params["router"] or (self.current.router if self.current else None)
        self.router = self.host.routers.load(router) if router else None

    def session(self):
        gateway = self.router.gateway if self.router else None
        return self.host.reservations.locked([gateway["network"]] if gateway else [], check_mode=self.check_mode)

    def find(self):
        return self.host.floating_ips.load(self.name)

    def plan_present(self, current):
        router = self.router
        usable = router is not None and router.gateway is not None
        return rt.plan_floating_ip(self.name, current, rt.floating_ip_task(self.params, current, router), router,
                                   self.host.fips(router.name, without=self.name) if usable else [],
                                   self.host.network_map(router) if usable else {}, self.host.reservations,
                                   self.host.kernel(router) if usable else None, self.host.floating_ips)

    def plan_absent(self, current):
        router = self.host.routers.load(current.router)
        others = self.host.fips(current.router, without=current.name)
        return rt.plan_floating_ip_absent(current, router, others, self.host.network_map(router) if router else {},
                                          self.host.reservations, self.host.kernel(router) if router else None,
                                          self.host.floating_ips)


def main():
    FloatingIpModule.main()


if __name__ == "__main__":
    main()
