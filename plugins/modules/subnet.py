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
  - Options left out keep their current value on an existing subnet. O(cidr) cannot change.
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
    description: IPv4 network address and prefix, for example C(10.0.0.0/24). Required to create the subnet.
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
    description: DNS servers handed out by DHCP.
    type: list
    elements: str
  host_routes:
    description: Extra routes handed out by DHCP (option 121).
    type: list
    elements: dict
    suboptions:
      destination: {description: Destination CIDR., type: str, required: true}
      nexthop: {description: Next hop address., type: str, required: true}
  enable_dhcp:
    description: Whether DHCP serves the subnet. Defaults to true for a new subnet.
    type: bool
  project:
    description: Project that owns the subnet.
    type: str
seealso:
  - module: nimbus.cloud.network
  - module: nimbus.cloud.port
  - module: nimbus.cloud.subnet_info
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
"""

RETURN = r"""
subnet:
  description: The subnet; empty after O(state=absent).
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
"""

from ansible_collections.nimbus.cloud.plugins.module_utils import _ipam as ipam_lib
from ansible_collections.nimbus.cloud.plugins.module_utils import _network as nw
from ansible_collections.nimbus.cloud.plugins.module_utils._base import NimbusModule
from ansible_collections.nimbus.cloud.plugins.module_utils._errors import ValidationError


class SubnetModule(NimbusModule):
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

    def run(self):
        self.require("netaddr", ipam_lib.NETADDR_IMPORT_ERROR)
        p = self.params
        host = nw.NetworkHost(self.runner)
        net = host.require(p["network"])
        store = host.store(net.name)
        with store.transaction():
            ipam = store.load()
            stored = (ipam_lib.render_subnets(ipam.subnets), ipam_lib.render_hosts(ipam))
            old = ipam.subnet(p["name"])
            before = self.view(old, ipam)
            if p["state"] == "present":
                subnet = self.desired(old, net)
                ipam.put_subnet(subnet)
            elif old is not None:
                ipam.remove_subnet(old.name)
            keep_dhcp_port(ipam)
            after = self.view(ipam.subnet(p["name"]), ipam)
            records = (ipam_lib.render_subnets(ipam.subnets), ipam_lib.render_hosts(ipam))
            if records != stored:
                self.runner.apply("write the IPAM records of %s" % net.name, store.save, ipam)
                self.changed = True
            if p["state"] == "absent" and old is None:
                return {"subnet": {}}
            if host.sync_dhcp(net, ipam, hosts_changed=records[1] != stored[1]):
                self.changed = True
        self.set_diff(before, after)
        return {"subnet": after}

    def desired(self, old, net):
        p = self.params

        def pick(key, default):
            if p[key] is not None:
                return p[key]
            return default

        if old is None and not p["cidr"]:
            raise ValidationError("subnet %s does not exist yet: cidr is required to create it" % p["name"])
        old_view = old.view() if old else {}
        gateway = pick("gateway", (old.gateway or "none") if old else "auto")
        pools = p["allocation_pools"]
        if pools is None and old is not None and gateway == (old.gateway or "none"):
            pools = old_view["allocation_pools"]
        return ipam_lib.build_subnet(
            p["name"], net.name, pick("cidr", old.cidr if old else None), gateway=gateway, pools=pools,
            dns_servers=pick("dns_servers", list(old.dns_servers) if old else []),
            host_routes=pick("host_routes", old_view.get("host_routes", [])),
            enable_dhcp=pick("enable_dhcp", old.enable_dhcp if old else True),
            project=pick("project", old.project if old else None))

    @staticmethod
    def view(subnet, ipam):
        if subnet is None:
            return {}
        view = subnet.view()
        port = ipam.ports.get("dhcp")
        view["dhcp_server"] = next((f["ip"] for f in (port.fixed_ips if port else []) if f["subnet"] == subnet.name),
                                   None)
        return view


def keep_dhcp_port(ipam):
    """The DHCP server's port holds one address in each subnet DHCP serves, and exists only while one does."""
    served = [s.name for s in ipam.subnets if s.enable_dhcp]
    if served:
        ipam.plan_port("dhcp", fixed_ips=[{"subnet": name} for name in served], device_owner="network:dhcp",
                       device_id="dhcp")
    else:
        ipam.remove_port("dhcp")


def main():
    SubnetModule.main()


if __name__ == "__main__":
    main()
