#!/usr/bin/python
# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: network
short_description: A nimbus.cloud tenant or provider network on the hosts it spans
version_added: 0.1.0
description:
  - Realises a network on the host the task runs on, as Neutron's Linux bridge agent did - a Linux bridge, with a
    VXLAN link (unicast head-end replication to O(vxlan_peers), no multicast needed) or an 802.1Q VLAN link on the
    physical network's trunk; a C(flat) network uses the physical network's provider bridge from the
    R(bridges role,ansible_collections.nimbus.cloud.bridges_role).
  - Run it on every host the network spans (compute hosts and the network node), with the same options.
  - The network's attributes are recorded in C(/etc/nimbus/networks/<name>.json) on each host; its id is derived from
    its name, so it is the same on every host. Network names are unique in the cloud.
  - A link that drifted (deleted bridge, wrong MTU, missing VXLAN peer) is repaired on the next run.
  - Options left out keep their current value on an existing network, so a shorter task changes nothing;
    a new network takes the defaults documented here.
  - Updatable attributes - O(mtu), O(shared), O(external), O(vxlan_peers), O(local_ip).
  - Create-only attributes - O(type), O(segmentation_id), O(physical_network), O(project). A task that gives
    another value fails before anything changes; delete and recreate the network instead.
  - Deleting a network whose bridge still has instances plugged in, or (on the network node) that still has ports or
    router interfaces, fails and changes nothing. Deleting it on the network node also stops its DHCP server and
    removes its subnets and address records.
author:
  - nimbus.cloud contributors (@nimbus-cloud)
extends_documentation_fragment:
  - nimbus.cloud.attributes
options:
  name:
    description: Network name, unique in the cloud.
    type: str
    required: true
  state:
    description: Whether the network should exist on this host.
    type: str
    choices: [present, absent]
    default: present
  type:
    description:
      - C(vxlan) (tenant networks across hosts), C(vlan) (a VLAN on a physical network's trunk) or C(flat) (the
        physical network's provider bridge itself, for example an external network).
      - Defaults to C(vxlan) for a new network. Create-only.
    type: str
    choices: [flat, vlan, vxlan]
  segmentation_id:
    description: VLAN id (1-4094) or VXLAN VNI (1-16777215). Required for C(vlan) and C(vxlan). Create-only.
    type: int
  physical_network:
    description: The bridges role's physical network a C(flat) or C(vlan) network uses. Create-only.
    type: str
  mtu:
    description:
      - MTU of the network. Defaults to the physical network's MTU, or for C(vxlan) the endpoint's MTU minus the
        50 bytes of VXLAN overhead, for a new network. DHCP hands it to instances.
    type: int
  project:
    description: Project that owns the network. Create-only.
    type: str
  shared:
    description: Whether every project may plug ports into the network. Defaults to false for a new network.
    type: bool
  external:
    description:
      - Whether routers may use the network as their external gateway and floating IPs come from it.
      - Defaults to false for a new network.
    type: bool
  vxlan_peers:
    description:
      - VXLAN endpoint addresses of every host the network spans; this host's own address is ignored, so the same
        list serves every host. Broadcast and unknown traffic is replicated to each.
      - Addresses of the same family as O(local_ip). Defaults to none for a new network; give an empty list to
        remove every peer.
    type: list
    elements: str
  local_ip:
    description: This host's VXLAN endpoint address; a new network defaults to the one the bridges role recorded.
    type: str
notes:
  - VLAN networks need a kernel with 802.1Q support (C(8021q)); without it the module fails with a clear message
    before changing anything else.
seealso:
  - module: nimbus.cloud.network_info
  - module: nimbus.cloud.subnet
  - module: nimbus.cloud.port
"""

EXAMPLES = r"""
- name: A tenant network across the compute hosts and the network node
  nimbus.cloud.network:
    name: demo-net
    project: demo
    type: vxlan
    segmentation_id: 1001
    vxlan_peers: >-
      {{ (groups['compute'] + groups['network'])
         | map('extract', hostvars, 'bridges_vxlan_local_ip') | list }}

- name: Share it with every project; the options left out keep their value
  nimbus.cloud.network:
    name: demo-net
    shared: true

- name: The external network on the provider bridge of physical network "external"
  nimbus.cloud.network:
    name: public
    type: flat
    physical_network: external
    external: true
"""

RETURN = r"""
network:
  description: The network on this host (in check mode, as it would be); empty after O(state=absent).
  returned: always
  type: dict
  contains:
    id: {description: Network id (derived from the name; the same on every host)., type: str}
    name: {description: Network name., type: str}
    type: {description: "flat, vlan or vxlan.", type: str}
    segmentation_id: {description: VLAN id or VNI; null for flat., type: int}
    physical_network: {description: Physical network of a flat or vlan network., type: str}
    mtu: {description: MTU., type: int}
    project: {description: Owning project., type: str}
    shared: {description: Shared with every project., type: bool}
    external: {description: Usable as a router gateway and for floating IPs., type: bool}
    bridge: {description: The Linux bridge that carries the network on this host., type: str}
    vxlan_peers: {description: Endpoints broadcast traffic is replicated to (vxlan)., type: list, elements: str}
    local_ip: {description: This host's VXLAN endpoint (vxlan)., type: str}
  sample:
    id: 0b6f8c1e-6a7e-5f0c-9d2a-3c4b5a6d7e8f
    name: demo-net
    type: vxlan
    segmentation_id: 1001
    mtu: 1450
    bridge: nb-0b6f8c1e
commands:
  description: What a real run would do (commands, and the files it would write or remove).
  returned: in check mode
  type: list
  elements: str
  sample:
    - ip link add nb-0b6f8c1e mtu 1450 type bridge nf_call_iptables 1
    - write /etc/nimbus/networks/demo-net.json
"""

from ansible_collections.nimbus.cloud.plugins.module_utils import _netdev as netdev
from ansible_collections.nimbus.cloud.plugins.module_utils import _network as nw
from ansible_collections.nimbus.cloud.plugins.module_utils._names import validate_name
from ansible_collections.nimbus.cloud.plugins.module_utils._resource import ResourceModule


class NetworkModule(ResourceModule):
    resource = kind = "network"
    updatable = ("mtu", "shared", "external", "vxlan_peers", "local_ip")
    create_only = ("type", "segmentation_id", "physical_network", "project")
    defaults = dict(type="vxlan", shared=False, external=False, vxlan_peers=[])
    argument_spec = dict(
        name=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        type=dict(type="str", choices=list(nw.TYPES)),
        segmentation_id=dict(type="int"),
        physical_network=dict(type="str"),
        mtu=dict(type="int"),
        project=dict(type="str"),
        shared=dict(type="bool"),
        external=dict(type="bool"),
        vxlan_peers=dict(type="list", elements="str"),
        local_ip=dict(type="str"),
    )

    def prepare(self):
        validate_name(self.params["name"], "network")
        self.host = nw.NetworkHost(self.runner)
        self.snapshot = None

    def find(self):
        self.snapshot = self.host.snapshot(self.params["name"], deleting=self.params["state"] == "absent")
        record = self.snapshot.record
        return None if record is None else record.attributes()

    def task(self):
        task = super().task()
        if "vxlan_peers" in task:
            task["vxlan_peers"] = sorted(set(task["vxlan_peers"]))
        return task

    def plan_present(self, current):
        settings = self.host.settings()
        net = nw.build_network(self.params["name"], settings, **self.desired(current))
        return nw.plan_network(net, self.snapshot, settings, self.host.records)

    def plan_absent(self, current):
        return nw.plan_network_absent(self.snapshot, self.host.records, self.host.state_dir)

    def apply(self, plan):
        # A kernel without a link type fails half way: the links this run added go again.
        netdev.run_steps(self.runner, plan.steps)


def main():
    NetworkModule.main()


if __name__ == "__main__":
    main()
