#!/usr/bin/python
# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: port
short_description: A port on a nimbus.cloud network, with its MAC and fixed IPs
version_added: 0.1.0
description:
  - Runs on the network node. Allocates a MAC and fixed IPs from the network's subnets and records them as a DHCP
    reservation, so the instance that plugs the port in gets exactly these addresses by DHCP.
  - Allocation happens under the network's IPAM lock and the record is replaced atomically, so concurrent runs never
    hand out the same address. An address is taken from the lowest free one of the subnet's allocation pools.
  - The port id and, unless O(mac) is given, the MAC are derived from network and port name, so they are stable
    across runs.
  - Give the returned C(port) to M(nimbus.cloud.instance) (O(nimbus.cloud.instance#module:nics[].port)) to plug it in.
  - Options left out keep their current value on an existing port, so a shorter task changes nothing; a new port
    takes the defaults documented here. An empty string clears O(hostname) or O(device_id).
  - Updatable attributes - O(fixed_ips) (the old addresses are released), O(device_owner), O(device_id),
    O(hostname), O(security_groups), O(port_security).
  - Create-only attributes - O(mac), O(project); O(network) and O(name) identify the port. A task that gives
    another value fails before anything changes; delete and recreate the port instead.
  - Deleting the port releases its addresses and its DHCP reservation.
author:
  - nimbus.cloud contributors (@nimbus-cloud)
extends_documentation_fragment:
  - nimbus.cloud.attributes
options:
  name:
    description: Port name, unique in its network.
    type: str
    required: true
  network:
    description: The network (with at least one subnet on this host).
    type: str
    required: true
  state:
    description: Whether the port should exist.
    type: str
    choices: [present, absent]
    default: present
  fixed_ips:
    description:
      - Addresses the port holds. Each entry names a subnet (an address is allocated), an address, or both.
      - Left out, an existing port keeps its addresses and a new one gets one from the network's first subnet.
    type: list
    elements: dict
    suboptions:
      subnet: {description: Subnet name., type: str}
      ip: {description: A specific address., type: str}
  mac:
    description: MAC address; a new port derives one from its id when left out. Create-only.
    type: str
  project:
    description: Project that owns the port. Create-only.
    type: str
  device_owner:
    description: What uses the port. Defaults to C(compute) for a new port.
    type: str
    choices: [compute, "network:router_interface", "network:router_gateway", "network:floatingip", ""]
  device_id:
    description: Name of the device that uses the port (for example the instance). Empty for a new port.
    type: str
  hostname:
    description: Host name DHCP hands out with the address.
    type: str
  security_groups:
    description:
      - Security groups (M(nimbus.cloud.security_group)) enforced on the port's instance interface.
      - None for a new port; an empty list removes them.
    type: list
    elements: str
  port_security:
    description:
      - Whether the port is filtered (anti-spoofing and security groups). Without security groups a filtered port
        still drops all new inbound connections.
      - Defaults to true for a new port.
    type: bool
seealso:
  - module: nimbus.cloud.port_info
  - module: nimbus.cloud.subnet
  - module: nimbus.cloud.instance
"""

EXAMPLES = r"""
- name: A port for web1 on demo-net
  nimbus.cloud.port:
    name: web1-eth0
    network: demo-net
    device_id: web1
    hostname: web1
    security_groups: [web]
  register: web1_port

- name: A port with a fixed address
  nimbus.cloud.port:
    name: db1-eth0
    network: demo-net
    fixed_ips:
      - {subnet: demo-subnet, ip: 10.20.0.50}

- name: Add a security group; addresses, hostname and the rest keep their value
  nimbus.cloud.port:
    name: web1-eth0
    network: demo-net
    security_groups: [web, ssh]
"""

RETURN = r"""
port:
  description: The port (in check mode, as it would be); empty after O(state=absent).
  returned: always
  type: dict
  contains:
    id: {description: Port id (derived from network and name)., type: str}
    name: {description: Port name., type: str}
    network: {description: Network name., type: str}
    network_id: {description: Network id., type: str}
    bridge: {description: The bridge an instance plugs the port into., type: str}
    mtu: {description: The network's MTU., type: int}
    mac: {description: MAC address., type: str}
    fixed_ips: {description: Addresses as subnet/ip., type: list, elements: dict}
    project: {description: Owning project., type: str}
    device_owner: {description: What uses the port., type: str}
    device_id: {description: The device that uses it., type: str}
    hostname: {description: DHCP host name., type: str}
    security_groups: {description: Security groups., type: list, elements: str}
    port_security: {description: Whether the port is filtered., type: bool}
  sample:
    id: 3f0e2d9c-1b7a-5e44-8c3d-2a1b0c9d8e7f
    name: web1-eth0
    network: demo-net
    bridge: nb-0b6f8c1e
    mac: fa:16:3e:4c:2a:10
    fixed_ips: [{subnet: demo-subnet, ip: 10.20.0.100}]
commands:
  description: What a real run would do (commands, and the files it would write).
  returned: in check mode
  type: list
  elements: str
  sample:
    - write the IPAM records of demo-net in /var/lib/nimbus/networks/demo-net
    - systemctl reload nimbus-dhcp@demo-net.service
"""

from ansible_collections.nimbus.cloud.plugins.module_utils import _ipam as ipam_lib
from ansible_collections.nimbus.cloud.plugins.module_utils import _network as nw
from ansible_collections.nimbus.cloud.plugins.module_utils._errors import ValidationError
from ansible_collections.nimbus.cloud.plugins.module_utils._names import normalise_mac, validate_name
from ansible_collections.nimbus.cloud.plugins.module_utils._resource import ResourceModule


class PortModule(ResourceModule):
    resource = kind = "port"
    updatable = ("fixed_ips", "device_owner", "device_id", "hostname", "security_groups", "port_security")
    create_only = ("mac", "project")
    defaults = dict(device_owner="compute", device_id="", security_groups=[], port_security=True)
    argument_spec = dict(
        name=dict(type="str", required=True),
        network=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        fixed_ips=dict(type="list", elements="dict", options=dict(subnet=dict(type="str"), ip=dict(type="str"))),
        mac=dict(type="str"),
        project=dict(type="str"),
        device_owner=dict(type="str", choices=[o for o in ipam_lib.DEVICE_OWNERS if o != "network:dhcp"]),
        device_id=dict(type="str"),
        hostname=dict(type="str"),
        security_groups=dict(type="list", elements="str"),
        port_security=dict(type="bool"),
    )

    def prepare(self):
        self.require("netaddr", ipam_lib.NETADDR_IMPORT_ERROR)
        validate_name(self.params["name"], "port")
        self.host = nw.NetworkHost(self.runner)
        self.net = self.host.require(self.params["network"])
        self.store = self.host.store(self.net.name)
        if not self.store.exists():
            raise ValidationError("network %s has no subnet on this host: create one with nimbus.cloud.subnet"
                                  % self.net.name)

    def session(self):
        return self.store.transaction()

    def find(self):
        self.ipam = self.store.load()
        self.dhcp_active = self.host.dhcp_active(self.net)
        port = self.ipam.ports.get(self.params["name"])
        return None if port is None else nw.port_attributes(port)

    def task(self):
        task = super().task()
        if "mac" in task:
            task["mac"] = normalise_mac(task["mac"], "mac")
        if "security_groups" in task:
            task["security_groups"] = sorted(set(task["security_groups"]))
        if "fixed_ips" in task:
            task["fixed_ips"] = [{k: v for k, v in f.items() if v is not None} for f in task["fixed_ips"]]
        return task

    def plan_present(self, current):
        task = self.task()
        return nw.plan_port(self.net, self.ipam, self.params["name"], self.desired(current),
                            task.get("fixed_ips"), self.dhcp_active, self.store)

    def plan_absent(self, current):
        return nw.plan_port_absent(self.net, self.ipam, self.params["name"], self.dhcp_active, self.store)


def main():
    PortModule.main()


if __name__ == "__main__":
    main()
