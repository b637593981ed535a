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
  - Drift (a deleted namespace or veth, a lost address or route) is repaired on the next run.
  - Deleting a router that floating IPs still use fails and changes nothing.
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
    description: Project that owns the router.
    type: str
  interfaces:
    description: Subnets the router joins; it takes each subnet's gateway address. Left out, kept as they are.
    type: list
    elements: dict
    suboptions:
      network: {description: Network of the subnet., type: str, required: true}
      subnet: {description: "Subnet name; it needs a gateway address.", type: str, required: true}
  external_network:
    description: An external network (M(nimbus.cloud.network) with O(nimbus.cloud.network#module:external=true)).
    type: str
  external_fixed_ip:
    description: Gateway address on the external network; the lowest free one when left out.
    type: str
  enable_snat:
    description: Let the internal subnets reach the external network with the gateway address.
    type: bool
    default: true
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
"""

from ansible_collections.nimbus.cloud.plugins.module_utils import _ipam as ipam_lib
from ansible_collections.nimbus.cloud.plugins.module_utils import _network as nw
from ansible_collections.nimbus.cloud.plugins.module_utils import _router as rt
from ansible_collections.nimbus.cloud.plugins.module_utils._base import NimbusModule
from ansible_collections.nimbus.cloud.plugins.module_utils._errors import ValidationError


class RouterModule(NimbusModule):
    argument_spec = dict(
        name=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        project=dict(type="str"),
        interfaces=dict(type="list", elements="dict", options=dict(
            network=dict(type="str", required=True), subnet=dict(type="str", required=True))),
        external_network=dict(type="str"),
        external_fixed_ip=dict(type="str"),
        enable_snat=dict(type="bool", default=True),
    )

    def run(self):
        self.require("netaddr", ipam_lib.NETADDR_IMPORT_ERROR)
        p = self.params
        name = rt.validate_router_name(p["name"])
        host = rt.RouterHost(self.runner, nw.NetworkHost(self.runner))
        old = host.read(name)
        if p["state"] == "absent":
            return self.absent(host, old)
        self.validate(host, old)
        router = rt.Router(name=name, id=ipam_lib.derive_id("router", name),
                           project=p["project"] if p["project"] is not None else (old.project if old else None),
                           enable_snat=p["enable_snat"])
        wanted = p["interfaces"] if p["interfaces"] is not None else [
            {"network": i["network"], "subnet": i["subnet"]} for i in (old.interfaces if old else [])]
        records_changed = self.reserve_interfaces(host, router, old, wanted)
        records_changed = self.reserve_gateway(host, router, old) or records_changed
        if old is None or old.view() != router.view() or old.gateway != router.gateway:
            host.write(host.router_dir, name, router.__dict__)
            records_changed = True
        kernel_changed = host.converge(router, host.fips(name))
        self.changed = records_changed or kernel_changed
        self.set_diff(old.view() if old else {}, router.view())
        return {"router": router.view()}

    def validate(self, host, old):
        p = self.params
        seen = set()
        for index, leg in enumerate(p["interfaces"] or []):
            if leg["network"] in seen:
                raise ValidationError("interfaces[%d]: the router already joins a subnet of %s (one per network)"
                                      % (index, leg["network"]))
            seen.add(leg["network"])
        if p["external_network"]:
            net = host.networks.require(p["external_network"])
            if not net.external:
                raise ValidationError("network %s is not external (create it with external: true)" % net.name)
        if p["external_fixed_ip"] and not p["external_network"]:
            raise ValidationError("external_fixed_ip needs external_network")
        if old is not None and old.gateway and old.gateway["network"] != p["external_network"] and host.fips(old.name):
            raise ValidationError("router %s: floating IPs use its gateway on %s; delete them before changing it"
                                  % (old.name, old.gateway["network"]))

    def reserve_interfaces(self, host, router, old, wanted):
        changed = False
        port_name = rt.router_port_name(router.name)
        for leg in sorted(wanted, key=lambda leg: leg["network"]):
            net = host.networks.require(leg["network"])
            store = host.networks.store(net.name)
            current = store.load() if store.exists() else None
            subnet = current.subnet(leg["subnet"]) if current else None
            if subnet is None:
                raise ValidationError("network %s has no subnet %s" % (net.name, leg["subnet"]))
            if not subnet.gateway:
                raise ValidationError("subnet %s has no gateway address for the router to hold" % subnet.name)
            held = current.ports.get(port_name)
            net, port, subnet = host.reserve(net.name, port_name, "network:router_interface", router.name,
                                             [{"subnet": subnet.name, "ip": subnet.gateway}], router.project)
            changed = changed or held is None or held.fixed_ips != port.fixed_ips
            router.interfaces.append({"network": net.name, "subnet": subnet.name, "ip": subnet.gateway,
                                      "prefixlen": subnet.net.prefixlen, "port_id": port.id, "cidr": subnet.cidr})
        wanted_networks = {leg["network"] for leg in wanted}
        for leg in (old.interfaces if old else []):
            if leg["network"] not in wanted_networks:
                host.release(leg["network"], port_name)
                changed = True
        return changed

    def reserve_gateway(self, host, router, old):
        p = self.params
        port_name = rt.router_port_name(router.name, gateway=True)
        if old is not None and old.gateway and old.gateway["network"] != p["external_network"]:
            host.release(old.gateway["network"], port_name)
        if not p["external_network"]:
            return bool(old and old.gateway)
        fixed = [{"ip": p["external_fixed_ip"]}] if p["external_fixed_ip"] else None
        before = old.gateway if old else None
        net, port, subnet = host.reserve(p["external_network"], port_name, "network:router_gateway", router.name,
                                         fixed, router.project)
        router.gateway = {"network": net.name, "subnet": subnet.name, "ip": port.fixed_ips[0]["ip"],
                          "prefixlen": subnet.net.prefixlen, "port_id": port.id, "nexthop": subnet.gateway}
        return before != router.gateway

    def absent(self, host, old):
        if old is None:
            return {"router": {}}
        users = host.fips(old.name)
        if users:
            raise ValidationError("router %s is used by floating IPs %s; delete them first"
                                  % (old.name, ", ".join(f.name for f in users)))
        host.remove_namespace(old)
        for leg in old.interfaces:
            host.release(leg["network"], rt.router_port_name(old.name))
        if old.gateway:
            host.release(old.gateway["network"], rt.router_port_name(old.name, gateway=True))
        host.forget(host.router_dir, old.name)
        self.changed = True
        self.set_diff(old.view(), {})
        return {"router": {}}


def main():
    RouterModule.main()


if __name__ == "__main__":
    main()
