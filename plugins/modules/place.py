#!/usr/bin/python
# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: place
short_description: Choose a hypervisor for each new instance
version_added: 0.1.0
description:
  - Picks a hypervisor for each request the way Nova's filter scheduler does, from the C(hypervisor) results that
    C(nimbus.cloud.hypervisor_info) returned on the compute hosts.
  - The filters, in the order they run, are C(AvailabilityZoneFilter), C(AggregateFilter), C(RamFilter), C(CoreFilter) (vCPUs),
    C(DiskFilter), C(AffinityFilter) and C(AntiAffinityFilter) (server groups).
  - A host passes the capacity filters when the flavor fits in its free capacity. As in Nova placement, capacity is
    C(total) minus C(reserved), times C(ratio), rounded down, and free is capacity minus C(used). The C(capacity)
    and C(free) figures of the input are ignored and recomputed.
  - The requests are placed in order and each one claims its flavor before the next is placed, so instances placed
    together never overshoot a host.
  - A request whose O(requests[].name) already names an instance on one of the hypervisors is answered with that
    hypervisor and claims nothing, so that running a playbook again places nothing twice.
  - Runs on the controller only and contacts no host. Use it with C(run_once), and create the instances on the
    chosen hosts afterwards.
  - 'When a request fits nowhere the task fails, naming the instance and how many hosts each filter rejected, for
    example C(No valid host for web3: 3 hosts; RamFilter rejected 2, AntiAffinityFilter rejected 1).'
author:
  - nimbus.cloud contributors (@nimbus-cloud)
extends_documentation_fragment:
  - nimbus.cloud.attributes
  - ansible.builtin.action_common_attributes.flow
attributes:
  check_mode:
    support: full
    details: It changes nothing anywhere, so check mode returns the same placements.
  diff_mode:
    support: N/A
    details: It changes nothing anywhere.
  platform:
    support: N/A
    platforms: all
    details: It runs on the controller and never contacts the target host.
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
options:
  hypervisors:
    description:
      - The hypervisors to choose from, as C(nimbus.cloud.hypervisor_info) returns them in its C(hypervisor) key
        (C(hostname), C(availability_zone), C(aggregates), C(vcpus), C(ram_mb), C(disk_gb) with C(total),
        C(reserved), C(ratio) and C(used), and C(instances)).
      - Either a list of them, or a mapping of host name to one of them; in the mapping form the keys are the host
        names returned in RV(placements[].hypervisor) and RV(by_hypervisor), whatever C(hostname) the values carry,
        so inventory host names can be used directly with C(delegate_to).
      - Whole registered C(hypervisor_info) results are accepted as values too; their C(hypervisor) key is used.
      - A host without C(availability_zone) is in zone C(nova). A resource without C(used) counts the resources of
        its C(instances).
    type: raw
    required: true
  requests:
    description:
      - The instances to place, in the order they are placed.
      - Names must be unique within the list.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The instance's name; an instance of that name on one of the hypervisors is reused.
        type: str
        required: true
      flavor:
        description: The resources the instance needs.
        type: dict
        required: true
        suboptions:
          name:
            description: The flavor's name; only informative.
            type: str
          vcpus:
            description: Virtual CPUs, at least 1.
            type: int
            required: true
          ram_mb:
            description: Memory in MiB, at least 1.
            type: int
            required: true
          disk_gb:
            description: Root disk in GiB, 0 or more.
            type: int
            required: true
      availability_zone:
        description: Only hosts of this availability zone pass.
        type: str
      aggregate:
        description: Only hosts that belong to every aggregate listed pass.
        type: list
        elements: str
      server_group:
        description:
          - The server group the instance joins. Members are the instances of the hypervisors whose
            C(server_group) is O(requests[].server_group.name), plus the requests placed before this one.
          - V(affinity) puts every member on one host; once members exist, only a host holding some passes.
          - V(anti-affinity) puts no two members on one host.
          - All the requests of one group must give the same policy.
        type: dict
        suboptions:
          name:
            description: The group's name.
            type: str
            required: true
          policy:
            description: The group's policy.
            type: str
            required: true
            choices: [affinity, anti-affinity]
  weigher:
    description:
      - How the hosts that pass every filter are ordered; the first is chosen.
      - V(spread) chooses the host with the most free RAM, like Nova's default RAM weigher; instances spread out.
      - V(stack) chooses the host with the least free RAM that still fits; hosts fill up one after another.
      - Ties go to the first host name in alphabetical order, so the same input always gives the same placements.
    type: str
    choices: [spread, stack]
    default: spread
notes:
  - The claims last for the task only; nothing is reserved on the hypervisors. Two playbook runs placing instances
    at the same time each see the hypervisors as they were read and can choose the same free capacity. Place
    instances that are created together in one task.
"""

EXAMPLES = r"""
- name: Read every compute host
  nimbus.cloud.hypervisor_info:
  register: hv

- name: Choose hypervisors for the web tier
  nimbus.cloud.place:
    hypervisors: "{{ dict(ansible_play_hosts | zip(ansible_play_hosts | map('extract', hostvars, ['hv', 'hypervisor']))) }}"
    requests:
      - name: web1
        flavor: {vcpus: 1, ram_mb: 1024, disk_gb: 10}
        server_group: {name: web, policy: anti-affinity}
      - name: web2
        flavor: {vcpus: 1, ram_mb: 1024, disk_gb: 10}
        server_group: {name: web, policy: anti-affinity}
      - name: db1
        flavor: {vcpus: 4, ram_mb: 8192, disk_gb: 100}
        availability_zone: nova
        aggregate: ssd
    weigher: spread
  run_once: true
  register: placed

- name: The instances then go where they were placed
  ansible.builtin.debug:
    msg: "{{ placed.by_hypervisor[inventory_hostname] | default([]) }}"
"""

RETURN = r"""
placements:
  description: One entry per request, in the order of O(requests).
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: The request's name.
      type: str
      sample: web1
    hypervisor:
      description: The host chosen for the instance.
      type: str
      sample: compute1
    reused:
      description: Whether the instance already existed on that host, in which case nothing was claimed for it.
      type: bool
      sample: false
  sample:
    - {name: web1, hypervisor: compute1, reused: false}
    - {name: web2, hypervisor: compute2, reused: true}
by_hypervisor:
  description: The names in RV(placements) grouped by host; hosts that got nothing are left out.
  returned: success
  type: dict
  sample: {compute1: [web1, db1], compute2: [web2]}
"""
