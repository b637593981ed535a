#!/usr/bin/python
# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: router
short_description: A nimbus.cloud router - subnets joined in a namespace, with SNAT to an external network
version_added: 0.1.0
description:
  - Runs on the network node. The router is namespace C(nimbus-router-<name>) with an interface holding the gateway
    address of each subnet in O(interfaces) and, with O(external_network), a gateway interface on that network
    whose address comes from its subnet (and whose subnet gateway becomes the default route).
  - With O(enable_snat), traffic from the internal subnets leaves with the gateway address (nftables SNAT in the
    namespace). M(nimbus.cloud.floating_ip) adds 1:1 NAT per instance.
  - Interface and gateway addresses are IPAM ports (C(router-<name>) and C(router-<name>-gw)), so they cannot be
    given to anything else, and a network with a router interface cannot be deleted.
  - Only the options a task gives are compared; an option left out keeps the router's current value (a new router
    takes the documented defaults). All of O(project), O(interfaces), O(external_network), O(external_fixed_ip) and
    O(enable_snat) can be updated; no attribute is create-only.
  - Drift (a deleted namespace or veth, a lost address or route, a NAT rule changed or deleted by hand) is repaired
    on the next run.
  - Deleting a router that floating IPs still use fails and changes nothing; so does moving or removing its
    gateway while floating IPs use it.
author:
  - nimbus.cloud contributors (@nimbus-cloud)
extends_documentation_fragment:
  - nimbus.cloud.attributes
options:
  name:
    description: Router name, unique in the cloud.
    type: str
    required: true
  state:
    description: Whether the router should exist.
    type: str
    choices: [present, absent]
    default: present
  project:
    description: Project that owns the router. Updatable; left out, kept as it is.
    type: str
  interfaces:
    description:
      - Subnets the router joins (at most one per network); it takes each subnet's gateway address.
      - Given, it is the whole list (a subnet not in it is left); left out, the interfaces are kept as they are.
    type: list
    elements: dict
    suboptions:
      network: {description: Network of the subnet., type: str, required: true}
      subnet: {description: "Subnet name; it needs a gateway address.", type: str, required: true}
  external_network:
    description:
      - An external network (M(nimbus.cloud.network) with O(nimbus.cloud.network#module:external=true)) the router
        gets its gateway on.
      - Left out, the gateway is kept as it is (or a new router has none). An empty string removes the gateway and
        releases its address.
    type: str
  external_fixed_ip:
    description:
      - Gateway address on the external network. Left out, the gateway keeps its address (the lowest free one for a
        new gateway, or when O(external_network) changes).
    type: str
  enable_snat:
    description:
      - Let the internal subnets reach the external network with the gateway address.
      - Left out, kept as it is; a new router has SNAT on.
    type: bool
seealso:
  - module: nimbus.cloud.floating_ip
  - module: nimbus.cloud.subnet
"""

EXAMPLES = r"""
- name: Router between demo-subnet and the public network
  nimbus.cloud.router:
    name: demo-router
    project: demo
    external_network: public
    interfaces:
      - {network: demo-net, subnet: demo-subnet}

- name: Turn SNAT off; interfaces and gateway are kept as they are
  nimbus.cloud.router:
    name: demo-router
    enable_snat: false

- name: Remove the gateway (and release its external address)
  nimbus.cloud.router:
    name: demo-router
    external_network: ""
"""

RETURN = r"""
router:
  description: The router; empty after O(state=absent).
  returned: always
  type: dict
  contains:
    id: {description: Router id (derived from the name)., type: str}
    name: {description: Router name., type: str}
    project: {description: Owning project., type: str}
    namespace: {description: The network namespace that is the router., type: str}
    enable_snat: {description: Whether internal subnets are SNATed., type: bool}
    external_gateway: {description: "network, subnet and ip of the gateway, or null.", type: dict}
    interfaces: {description: "network, subnet, ip and port_id of each interface.", type: list, elements: dict}
commands:
  description: In check mode, the changes a real run would make (commands and file writes), in order.
  returned: check mode
  type: list
  elements: str
"""

from ansible_collections.nimbus.cloud.plugins.module_utils import _ipam as ipam_lib
from ansible_collections.nimbus.cloud.plugins.module_utils import _router as rt
from ansible_collections.nimbus.cloud.plugins.module_utils._resource import ResourceModule


class RouterModule(ResourceModule):
    resource = kind = "router"
    updatable = rt.ROUTER_UPDATABLE
    defaults = rt.ROUTER_DEFAULTS
    argument_spec = dict(
        name=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        project=dict(type="str"),
        interfaces=dict(type="list", elements="dict", options=dict(
            network=dict(type="str", required=True), subnet=dict(type="str", required=True))),
        external_network=dict(type="str"),
        external_fixed_ip=dict(type="str"),
        enable_snat=dict(type="bool"),
    )

    def prepare(self):
        self.require("netaddr", ipam_lib.NETADDR_IMPORT_ERROR)
        self.name = rt.validate_router_name(self.params["name"])
        self.host = rt.RouterHost(self.runner)

    def session(self):
        names = rt.router_networks(self.host.routers.load(self.name), self.params)
        return self.host.reservations.locked(names, check_mode=self.check_mode)

    def find(self):
        return self.host.routers.load(self.name)

    def plan_present(self, current):
        task = rt.router_task(self.params)
        networks = self.host.networks_of(rt.router_networks(current, task))
        router = current or rt.Router(name=self.name, id="")
        return rt.plan_router(self.name, current, task, self.host.fips(self.name), networks, self.host.reservations,
                              self.host.kernel(router), self.host.routers)

    def plan_absent(self, current):
        return rt.plan_router_absent(current, self.host.fips(self.name), self.host.reservations,
                                     self.host.kernel(current), self.host.routers)


def main():
    RouterModule.main()


if __name__ == "__main__":
    main()
