#!/usr/bin/python
# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: instance
short_description: Create, change, start, stop and delete a virtual machine on a nimbus.cloud hypervisor
version_added: 0.1.0
description:
  - Manages one instance (a libvirt/QEMU domain) on the hypervisor the task runs on, from typed options; the user
    never writes domain XML.
  - The boot disk is a qcow2 overlay on an image from the hypervisor's image cache, or a volume a storage host
    serves over iSCSI (O(boot_volume), Nova's boot from volume); a cloud-init NoCloud seed carries the hostname,
    SSH keys, user data and network configuration.
  - The UUID and the NIC MAC addresses are chosen once, when the instance is created, and kept on every later run.
    MACs not given are derived from the UUID.
  - The project, flavor, image, server group and metadata are stored in the domain's XML metadata, where
    M(nimbus.cloud.instance_info), M(nimbus.cloud.hypervisor_info) and the P(nimbus.cloud.instances#inventory)
    inventory read them.
  - Only the options given are compared with the existing instance.
  - What can change, and when. O(project), O(metadata), O(server_group), the flavor name and O(cloud_init) change at any time (a new
    seed is read by the guest at its next boot). The flavor's vcpus, ram_mb, extra_specs and a larger disk_gb, O(vnc), and
    O(kernel), O(initrd) and O(kernel_args) change only while the instance is stopped; on a running instance the
    module refuses unless O(allow_restart=true) or O(state=stopped). O(image), O(nics) and a smaller disk_gb never
    change in place; the module refuses unless O(recreate=true), which replaces the instance (same UUID and MACs,
    a fresh disk from the image).
  - Requires the P(nimbus.cloud.kvm#role) role on the hypervisor, whose settings file says the virtualisation type
    and where the pools are.
author:
  - nimbus.cloud contributors (@nimbus-cloud)
extends_documentation_fragment:
  - nimbus.cloud.attributes
  - nimbus.cloud.libvirt
options:
  name:
    description:
      - Name of the instance, unique on its hypervisor.
      - 1 to 63 letters, digits, C(.), C(_) or C(-), starting with a letter or digit.
    type: str
    required: true
  state:
    description:
      - C(present) makes sure the instance exists with this configuration. A new instance is started; an existing
        one keeps its power state.
      - C(running) also starts it (or resumes it when paused).
      - C(stopped) creates it without starting it, or shuts it down (ACPI first, then power off after
        O(shutdown_timeout)).
      - C(absent) deletes the instance, its disk and its seed, unless O(keep_disk=true).
    type: str
    choices: [present, running, stopped, absent]
    default: present
  flavor:
    description:
      - The instance's size. Either the name of a flavor in O(flavors), or a dict with C(vcpus), C(ram_mb),
        C(disk_gb) (0 means the image's size) and optionally C(extra_specs).
      - Supported extra specs are C(hw:cpu_mode) (C(host-model), C(host-passthrough) or C(custom)),
        C(hw:cpu_model), C(hw:cpu_sockets), C(hw:cpu_cores) and C(hw:cpu_threads). Other C(hw:) keys are refused
        as typos. Other scopes are kept as metadata.
      - Required to create an instance.
    type: raw
  flavors:
    description:
      - The flavor catalogue, a dict of flavor name to a dict with C(vcpus), C(ram_mb), C(disk_gb) and
        C(extra_specs). Usually one inventory variable shared by every task.
    type: dict
    default: {}
  image:
    description:
      - File name of a qcow2 or raw image in the hypervisor's image cache directory. The boot disk overlays it.
      - Required to create an instance, unless it boots from O(boot_volume). Cannot change afterwards (see
        O(recreate)).
    type: str
  boot_volume:
    description:
      - Boot from this volume instead of an image (Nova's boot from volume). A storage host exports it to this
        host (M(nimbus.cloud.volume_export)); it is attached as the first disk, C(vda), through QEMU's own iSCSI
        initiator, with the volume's UUID as its serial. The flavor's disk_gb does not apply.
      - Given only to create an instance; later runs may leave it out. It never changes on an existing instance,
        nor does an instance booted from an image become one booted from a volume (O(recreate) refuses both);
        delete the instance and create it again. Deleting the instance leaves the volume as it is and removes its
        CHAP secret from libvirt.
    type: dict
    suboptions:
      volume_id:
        description: The volume's UUID.
        type: str
        required: true
      portal:
        description: The storage host's iSCSI portal, C(HOST:PORT).
        type: str
        required: true
      iqn:
        description: The volume's target name.
        type: str
        required: true
      lun:
        description: The logical unit.
        type: int
        default: 1
      username:
        description: The CHAP user name.
        type: str
      password:
        description:
          - The CHAP password, into a private libvirt secret by a library call (never a command line). Needed with
            O(boot_volume.username) when the instance is created.
        type: str
  nics:
    description:
      - Network interfaces, in order. Cannot change after creation (see O(recreate)).
    type: list
    elements: dict
    suboptions:
      bridge:
        description: Linux bridge on the hypervisor the interface is plugged into. Give this or O(nics[].port).
        type: str
      port:
        description:
          - A port made by M(nimbus.cloud.port) (its returned C(port)). The interface takes the port's bridge and MAC,
            gets the tap device C(tap<port id prefix>), and the port's filter (anti-spoofing, security groups,
            default-deny ingress) is bound to it in nftables on this host.
          - The port's addresses and security groups are stored in the domain's metadata; changing them (a new
            port result) rewrites the filter without touching the domain. Another port is a new NIC (see O(recreate)).
          - The security groups must be defined on this host first (M(nimbus.cloud.security_group)).
        type: dict
      mac:
        description: MAC address. Derived from the instance UUID when not given, and kept. With a port, the port's.
        type: str
      model:
        description: Emulated NIC model.
        type: str
        choices: [virtio, e1000, rtl8139]
        default: virtio
  cloud_init:
    description:
      - Build a cloud-init NoCloud seed (ISO 9660, label C(cidata)) attached as a read-only virtio disk.
      - Only a digest of the seed is shown in results and diffs.
    type: dict
    suboptions:
      hostname:
        description: The guest's host name (meta-data C(local-hostname)). Defaults to O(name).
        type: str
      user_data:
        description: The user-data document, for example a C(#cloud-config) YAML text.
        type: str
      ssh_authorized_keys:
        description: Public keys for the default user (meta-data C(public-keys)).
        type: list
        elements: str
        default: []
      network_config:
        description: A cloud-init network configuration (version 1 or 2) as a dict.
        type: dict
  kernel:
    description: Boot this kernel directly (a path on the hypervisor) instead of the disk's boot loader.
    type: path
  initrd:
    description: Initial ramdisk for O(kernel) (a path on the hypervisor).
    type: path
  kernel_args:
    description: Kernel command line for O(kernel), for example C(console=ttyS0).
    type: str
  project:
    description: The project (tenant) owning the instance. New instances without one belong to C(default).
    type: str
  metadata:
    description: Free-form string keys and values stored with the instance; replaces the whole set when given.
    type: dict
  server_group:
    description: Name of the server group the instance belongs to, for the scheduler's affinity rules.
    type: str
  uuid:
    description: UUID for a new instance. Generated when not given. Ignored for an existing instance.
    type: str
  vnc:
    description:
      - Give the instance a VNC console listening on 127.0.0.1 only.
      - New instances get one unless this is false. Adding or removing it needs the instance stopped.
    type: bool
  keep_disk:
    description: With O(state=absent), keep the instance directory (disk, seed and console log).
    type: bool
    default: false
  allow_restart:
    description: Let the module shut down and start a running instance to apply changes that need it stopped.
    type: bool
    default: false
  recreate:
    description:
      - Replace the instance when O(image), O(nics) or a smaller disk_gb differ. The UUID and MACs stay. The disk is
        rebuilt from the image and its data is lost.
      - Options not given are kept from the instance being replaced. The cloud-init seed is rebuilt too, so an
        instance that has one needs O(cloud_init) again.
    type: bool
    default: false
  shutdown_timeout:
    description: Seconds to wait for the guest to shut down after the ACPI request before powering it off.
    type: int
    default: 60
requirements:
  - qemu-utils and xorriso on the hypervisor (the P(nimbus.cloud.kvm#role) role installs them)
seealso:
  - module: nimbus.cloud.instance_info
  - module: nimbus.cloud.instance_action
  - module: nimbus.cloud.hypervisor_info
"""

EXAMPLES = r"""
- name: Boot a small instance on a provider bridge
  nimbus.cloud.instance:
    name: web1
    project: demo
    flavor: m1.small
    flavors:
      m1.small: {vcpus: 1, ram_mb: 2048, disk_gb: 20}
    image: debian-12-genericcloud-amd64.qcow2
    nics:
      - bridge: br-provider
    cloud_init:
      ssh_authorized_keys: ["{{ lookup('ansible.builtin.file', '~/.ssh/id_ed25519.pub') }}"]
      user_data: |
        #cloud-config
        packages: [nginx]
    metadata:
      role: frontend
    state: running

- name: Give it more memory (it is shut down and started again)
  nimbus.cloud.instance:
    name: web1
    flavor: {vcpus: 2, ram_mb: 4096, disk_gb: 20}
    allow_restart: true

- name: Stop it
  nimbus.cloud.instance:
    name: web1
    state: stopped

- name: Delete it, with its disk
  nimbus.cloud.instance:
    name: web1
    state: absent
"""

RETURN = r"""
instance:
  description:
    - The instance after the task (in check mode, as it would be).
    - Null after O(state=absent).
    - When check mode creates an instance, generated values (uuid, MACs not given) are null.
  returned: always
  type: dict
  contains:
    name: {description: Instance name., type: str, returned: always, sample: web1}
    uuid: {description: libvirt domain UUID., type: str, returned: always, sample: 7f1c1f0e-8a7b-4b8e-9a57-0d0c0e6a7c11}
    state:
      description: libvirt state (running, paused, shutoff, pmsuspended, crashed, ...).
      type: str
      returned: always
      sample: running
    hypervisor: {description: Host name of the hypervisor., type: str, returned: always, sample: compute1}
    virt_type: {description: C(kvm) or C(qemu) (software emulation)., type: str, returned: always, sample: kvm}
    project: {description: Owning project., type: str, returned: always, sample: demo}
    flavor:
      description: The flavor (name may be null when given as a dict).
      type: dict
      returned: always
      sample: {name: m1.small, vcpus: 1, ram_mb: 2048, disk_gb: 20, extra_specs: {}}
    vcpus: {description: Virtual CPUs., type: int, returned: always, sample: 1}
    ram_mb: {description: Memory in MiB., type: int, returned: always, sample: 2048}
    image: {description: The image the boot disk overlays., type: str, returned: always, sample: debian-12.qcow2}
    nics:
      description:
        - Interfaces with their bridge, MAC, model and tap device (device only while running, except for port NICs),
          and the port (id, name, network, fixed_ips, security_groups, port_security) or null.
      type: list
      elements: dict
      returned: always
      sample: [{bridge: br-provider, mac: "52:54:00:3e:11:7a", model: virtio, device: vnet0}]
    disks:
      description: Root disk and cloud-init seed (role, device, path; the seed's sha256).
      type: list
      elements: dict
      returned: always
      sample: [{role: root, device: vda, path: /var/lib/nimbus/instances/web1/disk.qcow2}]
    boot:
      description: Direct kernel boot settings (all null when booting from the disk).
      type: dict
      returned: always
      sample: {kernel: null, initrd: null, kernel_args: null}
    console:
      description: Serial console log file, and the VNC endpoint on 127.0.0.1 while running.
      type: dict
      returned: always
      sample: {log: /var/lib/nimbus/instances/web1/console.log, vnc: {host: 127.0.0.1, port: 5900}}
    metadata: {description: User metadata., type: dict, returned: always, sample: {role: frontend}}
    server_group: {description: Server group name or null., type: str, returned: always, sample: web}
    managed: {description: Always true for instances of this collection., type: bool, returned: always, sample: true}
changed_fields:
  description: Which configuration fields differed (for example C(ram_mb), C(metadata), C(seed_digest)).
  returned: always
  type: list
  elements: str
  sample: [ram_mb]
commands:
  description: What a real run would do (commands, and the changes that are not commands).
  returned: in check mode
  type: list
  elements: str
  sample:
    - qemu-img create -q -f qcow2 -F qcow2 -b /var/lib/nimbus/images/debian-12.qcow2 /var/lib/nimbus/instances/web1/disk.qcow2 10737418240
    - define domain
"""

import uuid as uuidlib

from ansible_collections.nimbus.cloud.plugins.module_utils import _compute as compute
from ansible_collections.nimbus.cloud.plugins.module_utils import _libvirt as lv
from ansible_collections.nimbus.cloud.plugins.module_utils import _portbind as portbind
from ansible_collections.nimbus.cloud.plugins.module_utils._base import NimbusModule
from ansible_collections.nimbus.cloud.plugins.module_utils._errors import ValidationError
from ansible_collections.nimbus.cloud.plugins.module_utils._names import validate_name
from ansible_collections.nimbus.cloud.plugins.module_utils._resource import apply_steps
from ansible_collections.nimbus.cloud.plugins.module_utils._volumes import check_id


class InstanceModule(NimbusModule):
    argument_spec = dict(
        name=dict(type="str", required=True),
        state=dict(type="str", default="present", choices=list(compute.STATES)),
        flavor=dict(type="raw"),
        flavors=dict(type="dict", default={}),
        image=dict(type="str"),
        boot_volume=dict(type="dict", options=dict(
            volume_id=dict(type="str", required=True),
            portal=dict(type="str", required=True),
            iqn=dict(type="str", required=True),
            lun=dict(type="int", default=1),
            username=dict(type="str"),
            password=dict(type="str", no_log=True),
        ), required_together=[("username", "password")]),
        nics=dict(type="list", elements="dict", options=dict(
            bridge=dict(type="str"),
            port=dict(type="dict"),
            mac=dict(type="str"),
            model=dict(type="str", default="virtio", choices=list(compute.NIC_MODELS)),
        )),
        cloud_init=dict(type="dict", options=dict(
            hostname=dict(type="str"),
            user_data=dict(type="str", no_log=True),
            ssh_authorized_keys=dict(type="list", elements="str", default=[], no_log=False),
            network_config=dict(type="dict"),
        )),
        kernel=dict(type="path"),
        initrd=dict(type="path"),
        kernel_args=dict(type="str"),
        project=dict(type="str"),
        metadata=dict(type="dict"),
        server_group=dict(type="str"),
        uuid=dict(type="str"),
        vnc=dict(type="bool"),
        keep_disk=dict(type="bool", default=False),
        allow_restart=dict(type="bool", default=False),
        recreate=dict(type="bool", default=False),
        shutdown_timeout=dict(type="int", default=60),
        uri=dict(type="str", default="qemu:///system"),
    )
    required_by = {"initrd": "kernel", "kernel_args": "kernel"}
    mutually_exclusive = (("image", "boot_volume"),)

    def run(self):
        self.require("libvirt-python", lv.LIBVIRT_IMPORT_ERROR)
        spec = self.spec()
        hv = lv.Hypervisor(self.runner, uri=self.params["uri"])
        with hv.lock():
            actual = hv.read(spec.name)
            new_uuid = spec.uuid or str(uuidlib.uuid4())
            paths = hv.paths(spec.name)
            plan = compute.plan(spec, actual, hv.virt_type, actual.uuid if actual else new_uuid, paths,
                                allow_restart=self.params["allow_restart"], recreate=self.params["recreate"])
            image = None
            if (plan.create or plan.recreate) and plan.after.image:
                image = hv.image(plan.after.image, plan.after.project)
            if plan.after is not None and (plan.create or plan.recreate or plan.redefine):
                lv.check_feasible(hv, spec, plan.after, image)
            binding = portbind.plan(self.runner, actual, plan.after)
            lv.converge(hv, plan, spec, image, self.params["shutdown_timeout"], self.params["keep_disk"],
                        boot_password=(self.params["boot_volume"] or {}).get("password"))
            apply_steps(self.runner, binding.steps)
            self.changed = plan.changed or binding.changed
            after = self.after_view(hv, spec, plan)
        before = actual.view(hv.hostname()) if actual else None
        self.set_diff(before, after)
        return {"instance": after, "changed_fields": plan.changed_fields}

    def spec(self):
        p = self.params
        name = validate_name(p["name"])
        seed = None
        if p["cloud_init"] is not None:
            ci = p["cloud_init"]
            seed = compute.Seed(hostname=ci["hostname"] or name, user_data=ci["user_data"],
                                ssh_authorized_keys=ci["ssh_authorized_keys"], network_config=ci["network_config"])
        if p["uuid"]:
            try:
                p["uuid"] = str(uuidlib.UUID(p["uuid"]))
            except ValueError:
                raise ValidationError("uuid %r is not a UUID" % p["uuid"])
        if p["shutdown_timeout"] < 0:
            raise ValidationError("shutdown_timeout must be 0 or more")
        return compute.Spec(
            name=name, state=p["state"], flavor=compute.resolve_flavor(p["flavor"], p["flavors"]), image=p["image"],
            boot_volume=self.boot_volume(),
            nics=compute.build_nics(p["nics"]), seed=seed, kernel=p["kernel"], initrd=p["initrd"],
            kernel_args=p["kernel_args"], project=p["project"],
            metadata={str(k): str(v) for k, v in p["metadata"].items()} if p["metadata"] is not None else None,
            server_group=p["server_group"], uuid=p["uuid"], vnc=p["vnc"],
        )

    def boot_volume(self):
        given = self.params["boot_volume"]
        if given is None:
            return None
        volume_id = check_id("volume", given["volume_id"])
        compute.check_volume_target(given["portal"], given["iqn"], given["lun"], given["username"], "boot_volume")
        return compute.VolumeDisk(volume_id=volume_id, device=compute.BOOT_DEVICE, portal=given["portal"],
                                  iqn=given["iqn"], lun=given["lun"], username=given["username"])

    def after_view(self, hv, spec, plan):
        if plan.after is None:
            return None
        if not self.check_mode:
            return hv.read(spec.name).view(hv.hostname())
        view = plan.after.view(hv.hostname())
        if plan.create and not spec.uuid:
            # A check run cannot know the UUID a real run would draw, nor MACs derived from it.
            view["uuid"] = None
            given = [n.mac for n in spec.nics or []]
            for nic, mac in zip(view["nics"], given + [None] * len(view["nics"])):
                nic["mac"] = mac
        return view


def main():
    InstanceModule.main()


if __name__ == "__main__":
    main()
