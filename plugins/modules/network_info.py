#!/usr/bin/python
# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: network_info
short_description: List the nimbus.cloud networks on a host, with their subnets where this host serves them
version_added: 0.1.0
description:
  - Lists the networks recorded on the host the task runs on (see M(nimbus.cloud.network)), filtered by name and
    project, with whether their bridge is up now.
  - On the network node, each network also lists its subnets (as M(nimbus.cloud.subnet) returns them) and how many
    ports it holds.
  - Returns an empty list when nothing matches.
author:
  - nimbus.cloud contributors (@nimbus-cloud)
extends_documentation_fragment:
  - nimbus.cloud.attributes
  - nimbus.cloud.attributes.info_module
options:
  name:
    description: Only these networks.
    type: list
    elements: str
  project:
    description: Only networks of this project.
    type: str
seealso:
  - module: nimbus.cloud.network
  - module: nimbus.cloud.port_info
"""

EXAMPLES = r"""
- name: The networks of project demo
  nimbus.cloud.network_info:
    project: demo
  register: demo_networks
"""

RETURN = r"""
networks:
  description: The matching networks, sorted by name, each as M(nimbus.cloud.network) returns C(network), plus C(up),
    C(subnets) and C(port_count).
  returned: always
  type: list
  elements: dict
  sample:
    - name: demo-net
      type: vxlan
      segmentation_id: 1001
      bridge: nb-0b6f8c1e
      up: true
      subnets: [{name: demo-subnet, cidr: 10.20.0.0/24}]
      port_count: 2
"""

from ansible_collections.nimbus.cloud.plugins.module_utils import _ipam as ipam_lib
from ansible_collections.nimbus.cloud.plugins.module_utils import _network as nw
from ansible_collections.nimbus.cloud.plugins.module_utils._base import NimbusModule


class NetworkInfoModule(NimbusModule):
    returns_commands = False
    argument_spec = dict(
        name=dict(type="list", elements="str"),
        project=dict(type="str"),
    )

    def run(self):
        p = self.params
        host = nw.NetworkHost(self.runner)
        links = host.links()
        found = []
        for net in host.list():
            if p["name"] is not None and net.name not in p["name"]:
                continue
            if p["project"] is not None and net.project != p["project"]:
                continue
            view = net.view()
            view["up"] = net.bridge in links and links[net.bridge].up
            store = host.store(net.name)
            view["subnets"], view["port_count"] = [], 0
            if store.exists():
                self.require("netaddr", ipam_lib.NETADDR_IMPORT_ERROR)
                ipam = store.load()
                view["subnets"] = [s.view() for s in ipam.subnets]
                view["port_count"] = sum(1 for port in ipam.ports.values() if port.device_owner != "network:dhcp")
            found.append(view)
        return {"networks": found}


def main():
    NetworkInfoModule.main()


if __name__ == "__main__":
    main()
