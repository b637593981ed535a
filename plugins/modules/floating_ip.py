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
  - Without O(port) the address is held but leads nowhere; giving or changing O(port) later re-points it.
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
    description: The router (with an external gateway) that carries the address. Required to create it.
    type: str
  floating_ip:
    description: The external address; the lowest free one of the external subnet's pools when left out.
    type: str
  port:
    description:
      - The port (what M(nimbus.cloud.port) returns) the address leads to. Its network must be joined to the router.
    type: dict
  fixed_ip:
    description: Which of the port's addresses to use; the first when left out.
    type: str
  project:
    description: Project that owns the floating IP.
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
"""

from ansible_collections.nimbus.cloud.plugins.module_utils import _ipam as ipam_lib
from ansible_collections.nimbus.cloud.plugins.module_utils import _network as nw
from ansible_collections.nimbus.cloud.plugins.module_utils import _router as rt
from ansible_collections.nimbus.cloud.plugins.module_utils._base import NimbusModule
from ansible_collections.nimbus.cloud.plugins.module_utils._errors import ValidationError
from ansible_collections.nimbus.cloud.plugins.module_utils._names import validate_name


class FloatingIpModule(NimbusModule):
    argument_spec = dict(
        name=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        router=dict(type="str"),
        floating_ip=dict(type="str"),
        port=dict(type="dict"),
        fixed_ip=dict(type="str"),
        project=dict(type="str"),
    )

    def run(self):
        self.require("netaddr", ipam_lib.NETADDR_IMPORT_ERROR)
        p = self.params
        name = validate_name(p["name"], "floating IP")
        host = rt.RouterHost(self.runner, nw.NetworkHost(self.runner))
        old = host.read_fip(name)
        if p["state"] == "absent":
            return self.absent(host, old)
        router_name = p["router"] or (old.router if old else None)
        if not router_name:
            raise ValidationError("router is required to create floating IP %s" % name)
        router = host.read(router_name)
        if router is None or not router.gateway:
            raise ValidationError("router %s does not exist or has no external gateway" % router_name)
        if old is not None and old.router != router.name:
            raise ValidationError("floating IP %s belongs to router %s; delete it to move it" % (name, old.router))
        port_id, fixed_ip = self.target(router, old)
        wanted = [{"ip": p["floating_ip"]}] if p["floating_ip"] else (
            [{"ip": old.floating_ip}] if old else None)
        if old is not None and p["floating_ip"] and p["floating_ip"] != old.floating_ip:
            raise ValidationError("floating IP %s is %s; the address cannot change (delete and recreate it)"
                                  % (name, old.floating_ip))
        net, port, subnet = host.reserve(router.gateway["network"], rt.fip_port_name(name), "network:floatingip",
                                         name, wanted, p["project"])
        fip = rt.FloatingIp(name=name, router=router.name, network=net.name, floating_ip=port.fixed_ips[0]["ip"],
                            port_id=port_id, fixed_ip=fixed_ip,
                            project=p["project"] if p["project"] is not None else (old.project if old else None))
        record_changed = old is None or old.view() != fip.view()
        if record_changed:
            host.write(host.fip_dir, name, fip.view())
        others = [f for f in host.fips(router.name) if f.name != name]
        kernel_changed = host.converge(router, sorted(others + [fip], key=lambda f: f.name))
        self.changed = record_changed or kernel_changed
        self.set_diff(old.view() if old else {}, fip.view())
        return {"floating_ip": fip.view()}

    def target(self, router, old):
        p = self.params
        if p["port"] is None:
            if p["fixed_ip"]:
                raise ValidationError("fixed_ip needs port")
            return (old.port_id, old.fixed_ip) if old else (None, None)
        port = p["port"]
        if not port.get("id") or not port.get("fixed_ips"):
            raise ValidationError("port must be what nimbus.cloud.port returns (with id and fixed_ips)")
        joined = {leg["network"] for leg in router.interfaces}
        if port.get("network") not in joined:
            raise ValidationError("port %s is on network %s, which router %s does not join (it joins: %s)"
                                  % (port.get("name") or port["id"], port.get("network"), router.name,
                                     ", ".join(sorted(joined)) or "none"))
        ips = [f["ip"] for f in port["fixed_ips"]]
        fixed_ip = p["fixed_ip"] or ips[0]
        if fixed_ip not in ips:
            raise ValidationError("fixed_ip %s is not an address of port %s (%s)"
                                  % (fixed_ip, port.get("name") or port["id"], ", ".join(ips)))
        return port["id"], fixed_ip

    def absent(self, host, old):
        if old is None:
            return {"floating_ip": {}}
        host.forget(host.fip_dir, old.name)
        host.release(old.network, rt.fip_port_name(old.name))
        router = host.read(old.router)
        if router is not None:
            host.converge(router, [f for f in host.fips(router.name) if f.name != old.name])
        self.changed = True
        self.set_diff(old.view(), {})
        return {"floating_ip": {}}


def main():
    FloatingIpModule.main()


if __name__ == "__main__":
    main()
