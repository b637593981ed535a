#!/usr/bin/python
# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: router_info
short_description: List the nimbus.cloud routers and floating IPs on the network node
version_added: 0.1.0
description:
  - Reads the router and floating IP records of the network node the task runs on (see M(nimbus.cloud.router) and
    M(nimbus.cloud.floating_ip)), filtered by name and project.
  - Each router is returned as M(nimbus.cloud.router) returns it, each floating IP as M(nimbus.cloud.floating_ip)
    does; with O(name), the floating IPs are those the routers named carry.
  - The API service's routers and floating IPs views (Neutron's) read this.
  - Returns empty lists when nothing matches.
author:
  - nimbus.cloud contributors (@nimbus-cloud)
extends_documentation_fragment:
  - nimbus.cloud.attributes
  - nimbus.cloud.attributes.info_module
options:
  name:
    description: Only these routers.
    type: list
    elements: str
  project:
    description: Only routers, and floating IPs, of this project.
    type: str
seealso:
  - module: nimbus.cloud.router
  - module: nimbus.cloud.floating_ip
"""

EXAMPLES = r"""
- name: The routers and floating IPs of project demo
  nimbus.cloud.router_info:
    project: demo
  register: demo_routers
"""

RETURN = r"""
routers:
  description: The matching routers, sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    id: {description: Router id (derived from the name)., type: str}
    name: {description: Router name., type: str}
    project: {description: Owning project., type: str}
    namespace: {description: The network namespace that is the router., type: str}
    enable_snat: {description: Whether internal subnets are SNATed., type: bool}
    external_gateway: {description: "network, subnet and ip of the gateway, or null.", type: dict}
    interfaces: {description: "network, subnet, ip and port_id of each interface.", type: list, elements: dict}
  sample:
    - id: 0d6c2f3e-3b7a-5c1e-9f2d-4a5b6c7d8e9f
      name: demo-router
      project: demo
      namespace: nimbus-router-demo-router
      enable_snat: true
      external_gateway: {network: public, subnet: public-subnet, ip: 172.24.4.10}
      interfaces: [{network: demo-net, subnet: demo-subnet, ip: 10.20.0.1, port_id: 1b2c3d4e-5f6a-5b7c-8d9e-0f1a2b3c4d5e}]
floating_ips:
  description: The matching floating IPs, sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    name: {description: Its name., type: str}
    router: {description: The router that carries it., type: str}
    network: {description: The external network it comes from., type: str}
    floating_ip: {description: The external address., type: str}
    port_id: {description: "The port it leads to, or null.", type: str}
    fixed_ip: {description: "The port's address it translates to, or null.", type: str}
    project: {description: Owning project., type: str}
"""

from ansible_collections.nimbus.cloud.plugins.module_utils import _router as rt
from ansible_collections.nimbus.cloud.plugins.module_utils._base import NimbusModule
from ansible_collections.nimbus.cloud.plugins.module_utils._files import Records


class RouterInfoModule(NimbusModule):
    returns_commands = False
    argument_spec = dict(
        name=dict(type="list", elements="str"),
        project=dict(type="str"),
    )

    def run(self):
        p = self.params
        routers = [r for r in Records(rt.ROUTER_DIR, kind=rt.Router).load_all()
                   if (p["name"] is None or r.name in p["name"]) and (p["project"] is None or r.project == p["project"])]
        fips = [f for f in Records(rt.FIP_DIR, kind=rt.FloatingIp).load_all()
                if (p["name"] is None or f.router in p["name"]) and (p["project"] is None or f.project == p["project"])]
        return {"routers": [r.view() for r in sorted(routers, key=lambda r: r.name)],
                "floating_ips": [f.view() for f in sorted(fips, key=lambda f: f.name)]}


def main():
    RouterInfoModule.main()


if __name__ == "__main__":
    main()
