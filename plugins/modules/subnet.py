#!/usr/bin/python
# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: subnet
short_description: An IPv4 subnet of a nimbus.cloud network, with its DHCP server
version_added: 0.1.0
description:
  - Runs on the network node, which owns the network's address pools (IPAM) and serves its DHCP.
  - The subnet is recorded in C(/var/lib/nimbus/networks/<network>/subnets.json); the network's address
    reservations are dnsmasq's hosts file beside it, changed under a lock (see M(nimbus.cloud.port)).
  - With O(enable_dhcp=true), dnsmasq answers in namespace C(nimbus-dhcp-<network>), plugged into the network's bridge
    through a veth, from an address the subnet's IPAM gives the DHCP port. It hands out only reserved addresses
    (ports), with the gateway, DNS servers, host routes (option 121) and the network's MTU.
  - Options left out keep their current value on an existing subnet, so a shorter task changes nothing; a new
    subnet takes the defaults documented here. Left out, O(allocation_pools) is kept unless O(gateway) moves,
    when the pools become every host address but the new gateway.
  - Updatable attributes - O(gateway), O(allocation_pools), O(dns_servers), O(host_routes), O(enable_dhcp).
  - Create-only attributes - O(cidr), O(project). A task that gives another value fails before anything changes.
  - Deleting a subnet that still has ports fails and changes nothing.
author:
  - nimbus.cloud contributors (@nimbus-cloud)
extends_documentation_fragment:
  - nimbus.cloud.attributes
options:
  name:
    description: Subnet name, unique in its network.
    type: str
    required: true
  network:
    description: The network (made on this host by M(nimbus.cloud.network)).
    type: str
    required: true
  state:
    description: Whether the subnet should exist.
    type: str
    choices: [present, absent]
    default: present
  cidr:
    description:
      - IPv4 network address and prefix, for example C(10.0.0.0/24). Required to create the subnet. Create-only.
    type: str
  gateway:
    description:
      - Gateway address (a router interface takes it), C(auto) for the first host address, or C(none) for no gateway.
      - Defaults to C(auto) for a new subnet.
    type: str
  allocation_pools:
    description:
      - Ranges ports get addresses from; inside the CIDR, without the network, broadcast and gateway addresses.
      - Defaults to every host address but the gateway.
    type: list
    elements: dict
    suboptions:
      start: {description: First address., type: str, required: true}
      end: {description: Last address., type: str, required: true}
  dns_servers:
    description: DNS servers handed out by DHCP. None for a new subnet; an empty list removes them.
    type: list
    elements: str
  host_routes:
    description: Extra routes handed out by DHCP (option 121). None for a new subnet; an empty list removes them.
    type: list
    elements: dict
    suboptions:
      destination: {description: Destination CIDR., type: str, required: true}
      nexthop: {description: Next hop address., type: str, required: true}
  enable_dhcp:
    description: Whether DHCP serves the subnet. Defaults to true for a new subnet.
    type: bool
  project:
    description: Project that owns the subnet. Create-only.
    type: str
seealso:
  - module: nimbus.cloud.network
  - module: nimbus.cloud.port
  - module: nimbus.cloud.network_info
    description: Lists each network's subnets.
"""

EXAMPLES = r"""
- name: A DHCP subnet on demo-net, with a small pool
  nimbus.cloud.subnet:
    name: demo-subnet
    network: demo-net
    cidr: 10.20.0.0/24
    allocation_pools:
      - {start: 10.20.0.100, end: 10.20.0.199}
    dns_servers: [10.20.0.1]

- name: Another DNS server; cidr, pools and the rest keep their value
  nimbus.cloud.subnet:
    name: demo-subnet
    network: demo-net
    dns_servers: [10.20.0.1, 10.20.0.2]
"""

RETURN = r"""
subnet:
  description: The subnet (in check mode, as it would be); empty after O(state=absent).
  returned: always
  type: dict
  contains:
    id: {description: Subnet id (derived from network and name)., type: str}
    name: {description: Subnet name., type: str}
    network: {description: Network name., type: str}
    project: {description: Owning project., type: str}
    cidr: {description: Network address and prefix., type: str}
    ip_version: {description: Always 4., type: int}
    gateway: {description: Gateway address or null., type: str}
    allocation_pools: {description: Pools as start/end., type: list, elements: dict}
    dns_servers: {description: DNS servers., type: list, elements: str}
    host_routes: {description: Routes as destination/nexthop., type: list, elements: dict}
    enable_dhcp: {description: Whether DHCP serves it., type: bool}
    dhcp_server: {description: "The DHCP server's address in this subnet, or null.", type: str}
commands:
  description: What a real run would do (commands, and the files it would write or remove).
  returned: in check mode
  type: list
  elements: str
  sample:
    - write the IPAM records of demo-net in /var/lib/nimbus/networks/demo-net
    - ip netns add nimbus-dhcp-demo-net
"""

from ansible_collections.nimbus.cloud.plugins.module_utils import _ipam as ipam_lib
from ansible_collections.nimbus.cloud.plugins.module_utils import _netdev as netdev
from ansible_collections.nimbus.cloud.plugins.module_utils import _network as nw
from ansible_collections.nimbus.cloud.plugins.module_utils._names import validate_name
from ansible_collections.nimbus.cloud.plugins.module_utils._resource import ResourceModule, given


class SubnetModule(ResourceModule):
    resource = kind = "subnet"
    updatable = ("gateway", "allocation_pools", "dns_servers", "host_routes", "enable_dhcp")
    create_only = ("cidr", "project")
    defaults = dict(gateway="auto", dns_servers=[], host_routes=[], enable_dhcp=True)
    argument_spec = dict(
        name=dict(type="str", required=True),
        network=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        cidr=dict(type="str"),
        gateway=dict(type="str"),
        allocation_pools=dict(type="list", elements="dict",
                              options=dict(start=dict(type="str", required=True), end=dict(type="str", required=True))),
        dns_servers=dict(type="list", elements="str"),
        host_routes=dict(type="list", elements="dict",
                         options=dict(destination=dict(type="str", required=True),
                                      nexthop=dict(type="str", required=True))),
        enable_dhcp=dict(type="bool"),
        project=dict(type="str"),
    )

    def prepare(self):
        self.require("netaddr", ipam_lib.NETADDR_IMPORT_ERROR)
        validate_name(self.params["name"], "subnet")
        self.host = nw.NetworkHost(self.runner)
        self.net = self.host.require(self.params["network"])
        self.store = self.host.store(self.net.name)

    def session(self):
        return self.store.transaction()

    def find(self):
        self.ipam = self.store.load()
        self.dhcp = self.host.dhcp_state(self.net)
        subnet = self.ipam.subnet(self.params["name"])
        return None if subnet is None else nw.subnet_attributes(subnet)

    def task(self):
        task = super().task()
        if "cidr" in task:
            task["cidr"] = ipam_lib.normalise_cidr(task["cidr"])
        return task

    def plan_present(self, current):
        return nw.plan_subnet(self.net, self.ipam, self.params["name"], self.desired(current),
                              given(self.params, self.updatable), self.dhcp, self.store, self.host.paths(self.net))

    def plan_absent(self, current):
        return nw.plan_subnet_absent(self.net, self.ipam, self.params["name"], self.dhcp, self.store,
                                     self.host.paths(self.net))

    def apply(self, plan):
        netdev.run_steps(self.runner, plan.steps)


def main():
    SubnetModule.main()


if __name__ == "__main__":
    main()
