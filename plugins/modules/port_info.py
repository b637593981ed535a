#!/usr/bin/python
# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: port_info
short_description: List the ports of nimbus.cloud networks on the network node
version_added: 0.1.0
description:
  - Reads the address reservations of the networks whose IPAM this host holds (see M(nimbus.cloud.port)), filtered
    by network, name, project, device and owner. The DHCP servers' own ports are left out.
  - Returns an empty list when nothing matches.
  - Pass the result to M(nimbus.cloud.security_group) (O(nimbus.cloud.security_group#module:ports)) to fill
    remote-group member sets.
author:
  - nimbus.cloud contributors (@nimbus-cloud)
extends_documentation_fragment:
  - nimbus.cloud.attributes
  - nimbus.cloud.attributes.info_module
options:
  network:
    description: Only ports of these networks.
    type: list
    elements: str
  name:
    description: Only these port names.
    type: list
    elements: str
  project:
    description: Only ports of this project.
    type: str
  device_id:
    description: Only ports of this device (for example an instance name).
    type: str
  device_owner:
    description: Only ports with this owner (for example C(compute)).
    type: str
seealso:
  - module: nimbus.cloud.port
  - module: nimbus.cloud.security_group
"""

EXAMPLES = r"""
- name: Every instance port of the cloud
  nimbus.cloud.port_info:
    device_owner: compute
  register: cloud_ports
"""

RETURN = r"""
ports:
  description: The matching ports, sorted by network and name, each as M(nimbus.cloud.port) returns C(port).
  returned: always
  type: list
  elements: dict
  sample:
    - name: web1-eth0
      network: demo-net
      mac: fa:16:3e:4c:2a:10
      fixed_ips: [{subnet: demo-subnet, ip: 10.20.0.100}]
"""

from ansible_collections.nimbus.cloud.plugins.module_utils import _ipam as ipam_lib
from ansible_collections.nimbus.cloud.plugins.module_utils import _network as nw
from ansible_collections.nimbus.cloud.plugins.module_utils._base import NimbusModule


class PortInfoModule(NimbusModule):
    returns_commands = False
    argument_spec = dict(
        network=dict(type="list", elements="str"),
        name=dict(type="list", elements="str"),
        project=dict(type="str"),
        device_id=dict(type="str"),
        device_owner=dict(type="str"),
    )

    def run(self):
        self.require("netaddr", ipam_lib.NETADDR_IMPORT_ERROR)
        p = self.params
        host = nw.NetworkHost(self.runner)
        found = []
        for net in host.list():
            if p["network"] is not None and net.name not in p["network"]:
                continue
            store = host.store(net.name)
            if not store.exists():
                continue
            for name, port in sorted(store.load().ports.items()):
                if port.device_owner == "network:dhcp":
                    continue
                if p["name"] is not None and name not in p["name"]:
                    continue
                if any(p[key] is not None and getattr(port, key) != p[key]
                       for key in ("project", "device_id", "device_owner")):
                    continue
                found.append(nw.port_view(port, net))
        return {"ports": found}


def main():
    PortInfoModule.main()


if __name__ == "__main__":
    main()
