#!/usr/bin/python
# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: baremetal_node
short_description: Enrol a bare-metal machine on a provisioning host and keep its record in step with its BMC
version_added: 0.2.0
description:
  - Runs on a provisioning host (the C(nimbus.cloud.pxe) role's), where each node is a record of its BMC, MACs,
    properties, address and state. dnsmasq there answers DHCP for the MACs of enrolled nodes and for no other
    machine; the module rewrites its hosts file and makes it read it again after every change.
  - V(enrolled) keeps the record and a fixed address from the provisioning range (one dnsmasq does not lease to
    another machine's MAC); the BMC is not contacted.
  - V(manageable) logs in to the BMC (O(bmc) is required for a node that has none yet), and records the power state
    and boot device it reports. A wrong password fails the task and changes nothing.
  - On every run of a manageable node, the BMC's power state and boot device are read and compared with the record;
    any difference is returned in RV(drift) and warned about, never corrected (a machine powered on or off behind
    the cloud's back is the operator's to look at). Giving a changed O(bmc) records the new BMC's state instead.
  - V(absent) removes the record, takes the MACs out of dnsmasq's hosts file and gives back their leases.
  - V(available) cleans the node (from V(manageable), V(active) or a failed state). It boots the provisioning
    host's deploy ramdisk from the network, which zeroes the first and last MiB of every writable disk (as
    Ironic's metadata erase), reports to the callback service and powers the machine off.
  - V(active) deploys O(image), an image of the store. The provisioning host pulls it (its sha512 checked) and
    converts it once to raw; the ramdisk writes it to the disk, reads it back and reports its sha256, which must be
    the image's; the node then boots from its disk. A node not yet V(available) is cleaned first, by the same boot
    of the ramdisk (O(fast_track)). A node already V(active) with the same image is left alone; another image is
    deployed over it.
  - A deploy or cleaning that fails or does not report within O(deploy_timeout) powers the node off and leaves it
    V(deploy failed) or V(clean failed) with the reason in C(last_error); the task fails. Asking again starts over.
  - While its ramdisk works the node is recorded V(cleaning) or V(deploying); a run killed then leaves it so, and the
    next run cleans (and deploys) it again.
  - Cleaning and deploying hold the provisioning host's lock while they wait, so one runs at a time per
    provisioning host.
  - The record keeps the BMC's password (the file is root's, mode 0600); results, diffs and errors never show it.
author:
  - nimbus.cloud contributors (@nimbus-cloud)
extends_documentation_fragment:
  - nimbus.cloud.attributes
  - nimbus.cloud.bmc
options:
  name:
    description: The node's name, its DHCP host name too (a DNS label).
    type: str
    required: true
  state:
    description: The node's state; see the description.
    type: str
    choices: [enrolled, manageable, available, active, absent]
    default: enrolled
  bmc:
    description:
      - The machine's BMC. Required to make a node V(manageable) unless its record has one. A node's BMC options
        are replaced whole when given.
    required: false
  macs:
    description:
      - The MACs of the machine's interfaces on the provisioning network (the ones it may PXE boot from). Required
        when the node is enrolled; when given for an existing node, they replace its MACs. A MAC can be one node's
        only.
    type: list
    elements: str
  properties:
    description:
      - What the machine has, for schedulers and people; replaced whole when given.
      - V(cpus), V(memory_mb) and V(local_gb) are positive whole numbers, V(cpu_arch) is V(x86_64) or V(aarch64),
        V(boot_mode) is V(bios) or V(uefi). No other key is taken.
    type: dict
  image:
    description:
      - The image of the store to deploy (its id, or a name only one image visible to O(project) has). Required with
        V(active), refused with other states.
    type: str
  project:
    description: The project whose images O(image) is looked up among; omitted, any image of the store.
    type: str
  root_device:
    description: The disk the image is written to, as the ramdisk's kernel names it (such as V(/dev/sda)); omitted,
      the first disk the kernel finds. A cleaning wipes every disk.
    type: str
  deploy_timeout:
    description: Seconds to wait for each of the deploy ramdisk's reports, from power on (or from its last report).
    type: int
    default: 1800
  fast_track:
    description:
      - When a node is cleaned and then deployed (V(active) from a state other than V(available)), one boot of the
        deploy ramdisk does both, as Ironic's fast track does; the ramdisk that reported its cleaning asks for the
        deploy's job instead of powering the machine off. This saves a whole boot (firmware, PXE, the ramdisk's
        start), half a minute on an emulated machine and minutes on a server whose firmware is slow.
      - V(false) powers the machine off after the cleaning and boots the ramdisk again for the deploy.
    type: bool
    default: true
seealso:
  - module: nimbus.cloud.baremetal_power
  - module: nimbus.cloud.baremetal_node_info
"""

EXAMPLES = r"""
- name: Enrol a machine behind its BMC and check its credentials
  nimbus.cloud.baremetal_node:
    name: rack1-u12
    state: manageable
    macs: ["52:54:00:12:34:56"]
    properties: {cpus: 16, memory_mb: 65536, local_gb: 480, cpu_arch: x86_64}
    bmc:
      address: 10.0.40.21
      username: admin
      password: "{{ vault_bmc_passwords['rack1-u12'] }}"
  register: node

- name: Say when a machine's power changed behind the cloud's back
  ansible.builtin.debug:
    msg: "{{ node.drift }}"
  when: node.drift | length > 0

- name: Clean it, then deploy an image of the store on its first disk and boot it from there
  nimbus.cloud.baremetal_node:
    name: rack1-u12
    state: active
    image: debian-12
    project: ops

- name: Undeploy it (every disk's first and last MiB are wiped); it waits, off, for the next deploy
  nimbus.cloud.baremetal_node:
    name: rack1-u12
    state: available

- name: Retire it (dnsmasq stops answering its MACs)
  nimbus.cloud.baremetal_node:
    name: rack1-u12
    state: absent
"""

RETURN = r"""
node:
  description: The node's record after the task (in check mode, as it would be), without the BMC's password.
  returned: when the node exists after the task
  type: dict
  sample:
    name: rack1-u12
    uuid: 0a6e3f0c-3b6e-4a47-9d7c-3fb1c3f5d3a8
    provision_state: manageable
    macs: ["52:54:00:12:34:56"]
    address: 10.0.50.100
    properties: {cpus: 16, memory_mb: 65536}
    bmc: {address: 10.0.40.21, port: 623, username: admin, privilege: administrator, allow_insecure: false}
    power: "off"
    boot_device: disk
    last_error: null
    instance_info: {image_id: 5d2f9e67-0c1a-4b8e-9a77-2f1c3e4d5a6b, image_name: debian-12, root_device: null}
steps:
  description: The ramdisk's jobs the task gave (or would give, in check mode), in order.
  returned: when the node was cleaned or deployed
  type: list
  elements: str
  sample: [clean, deploy]
timings:
  description:
    - Per step, where its time went, in seconds. C(total_s) is the whole step; C(reported_s) runs from power on to
      the ramdisk's report, and C(ramdisk_uptime_s) is the ramdisk's uptime then.
    - C(firmware_s) runs from power on to the ramdisk's kernel (firmware, PXE, the kernel and ramdisk downloads),
      C(lease_s) from the kernel to the ramdisk's DHCP lease, C(job_s) to its job, and C(work_s) through the
      step's work (the image written and read back, or the wipe).
    - C(after_report_s) is the rest (the machine off, its boot device set, and for a deploy powered on).
    - A part the ramdisk did not report is null.
    - C(powered_on_at) is when the machine was powered on for the ramdisk, in seconds since the epoch by the
      provisioning host's clock, to line the boot up with dnsmasq's and the web server's logs.
    - C(booted) is whether the step booted the ramdisk; a step the running ramdisk took on (O(fast_track)) runs
      from the last step's report, has no firmware, lease or power on, and C(job_s) is the wait for its job.
  returned: when the node was cleaned or deployed
  type: dict
  sample: {clean: {total_s: 33.1, reported_s: 33.0, ramdisk_uptime_s: 9.1, firmware_s: 23.9, lease_s: 6.2,
                   job_s: 0.3, work_s: 0.5, after_report_s: 0.1, powered_on_at: 1796300000.125, booted: true},
           deploy: {total_s: 3.2, reported_s: 2.5, ramdisk_uptime_s: 11.6, firmware_s: null, lease_s: null,
                    job_s: 0.7, work_s: 1.6, after_report_s: 0.7, powered_on_at: null, booted: false}}
drift:
  description: Where the BMC's truth differs from the record (manageable nodes), each with the recorded value and
    the BMC's. Not corrected.
  returned: always
  type: list
  elements: dict
  sample: [{field: power, recorded: "off", bmc: "on"}]
session:
  description: The BMC session's IPMI version and cipher suite, when the BMC was contacted.
  returned: when the BMC was contacted
  type: dict
  sample: {ipmi_version: "2.0", cipher_suite: 17}
"""

import time

from ansible_collections.nimbus.cloud.plugins.module_utils import _baremetal, _ipmi
from ansible_collections.nimbus.cloud.plugins.module_utils._base import NimbusModule
from ansible_collections.nimbus.cloud.plugins.module_utils._errors import NimbusError


class BaremetalNodeModule(NimbusModule):
    argument_spec = dict(
        name=dict(type="str", required=True),
        state=dict(type="str", default="enrolled", choices=list(_baremetal.STATES) + ["absent"]),
        bmc=dict(type="dict", options=_ipmi.bmc_options()),
        macs=dict(type="list", elements="str"),
        properties=dict(type="dict"),
        image=dict(type="str"),
        project=dict(type="str"),
        root_device=dict(type="str"),
        deploy_timeout=dict(type="int", default=1800),
        fast_track=dict(type="bool", default=True),
    )

    def run(self):
        p = self.params
        name = _baremetal.check_name(p["name"])
        # Everything given is checked before anything is read or written.
        macs = None if p["macs"] is None else _baremetal.check_macs(p["macs"])
        properties = None if p["properties"] is None else _baremetal.check_properties(p["properties"])
        bmc = None if p["bmc"] is None else _baremetal.kept_bmc(_ipmi.check_bmc(p["bmc"]))
        if (p["image"] is None) == (p["state"] == "active"):
            raise NimbusError("image is required with state active and taken with no other state")
        _baremetal.check_root_device(p["root_device"])
        if p["deploy_timeout"] < 1:
            raise NimbusError("deploy_timeout must be a positive number of seconds")
        provisioner = _baremetal.Provisioner(self.runner)
        with provisioner.lock():
            records = provisioner.records()
            before = records.get(name)
            if p["state"] == "absent":
                return self._remove(provisioner, records, before)
            result = self._converge(provisioner, records, before, macs, properties, bmc)
            if p["state"] in ("available", "active"):
                result.update(self._provision(provisioner, records[name], before))
            return result

    def _remove(self, provisioner, records, before):
        if before is None:
            return {"drift": []}
        del records[before["name"]]
        provisioner.delete(before["name"])
        provisioner.publish(records)
        provisioner.release(set(before["macs"]))
        self.changed = True
        self.set_diff(_baremetal.node_view(before), None)
        return {"drift": []}

    def _converge(self, provisioner, records, before, macs, properties, bmc):
        p = self.params
        name = p["name"]
        if before is None and macs is None:
            raise NimbusError("node %s is not enrolled: macs are required to enrol it" % name)
        record = dict(before or _baremetal.new_record(name))
        if macs is not None:
            owners = {mac: other for other, r in records.items() if other != name for mac in r["macs"]}
            taken = [mac + " (node " + owners[mac] + ")" for mac in macs if mac in owners]
            if taken:
                raise NimbusError("node %s: MAC %s already enrolled" % (name, ", ".join(taken)))
            record["macs"] = macs
        if properties is not None:
            record["properties"] = properties
        bmc_changed = bmc is not None and bmc != record.get("bmc")
        if bmc is not None:
            record["bmc"] = bmc
        record["address"] = provisioner.allocate(name, record["macs"], records)

        result = {"drift": []}
        wanted = p["state"]
        if wanted != "enrolled":
            if record["bmc"] is None:
                raise NimbusError("node %s has no BMC: bmc is required to make it %s" % (name, wanted))
            baseline = before is None or before["provision_state"] == "enrolled" or bmc_changed
            result.update(self._read_bmc(record, baseline))
        # Cleaning and deploying (_provision) start from a node that is at least manageable; the state it has
        # reached beyond that is theirs to change.
        if wanted == "enrolled" or record["provision_state"] not in _baremetal.PROVISIONABLE:
            record["provision_state"] = wanted if wanted in ("enrolled", "manageable") else "manageable"
        elif wanted == "manageable":
            if record["provision_state"] == "active":
                raise NimbusError("node %s is active: state available undeploys and cleans it" % name)
            record["provision_state"] = "manageable"

        if record != before:
            record = provisioner.save(record)
            self.changed = True
        records[name] = record
        if provisioner.publish(records):
            self.changed = True
        if before is not None:
            provisioner.release(set(before["macs"]) - set(record["macs"]))
        if self.changed:
            self.set_diff(*_baremetal.diff_views(before, record))
        result["node"] = _baremetal.node_view(record)
        return result

    def _provision(self, provisioner, record, before):
        """Cleaning (available) or a deploy (active) of a node that is at least manageable."""
        p = self.params
        wanted, current = p["state"], record["provision_state"]
        image = deploy_image = None
        if wanted == "active":
            image, deploy_image = _baremetal.DeployImages(provisioner).prepare(p["image"], p["project"])
            deployed = record.get("instance_info") or {}
            if current == "active" and deployed.get("image_id") == image.id \
                    and deployed.get("image_os_hash_value") == image.os_hash_value:
                return {}
            steps = ([] if current == "available" else ["clean"]) + ["deploy"]
        elif current == "available":
            return {}
        else:
            steps = ["clean"]
        self.changed = True
        if self.check_mode:
            after = dict(record, provision_state=wanted, last_error=None,
                         instance_info=self._instance_info(image) if image else None)
            self.set_diff(*_baremetal.diff_views(before, after))
            return {"node": _baremetal.node_view(after), "steps": steps}
        # With fast track, one boot of the ramdisk cleans and deploys; without, each step boots it.
        boots = [steps] if p["fast_track"] else [[step] for step in steps]
        timings = {}
        for modes in boots:
            record, boot_timings = self._run_ramdisk(provisioner, record, modes, deploy_image, image)
            timings.update(boot_timings)
        self.set_diff(*_baremetal.diff_views(before, record))
        return {"node": _baremetal.node_view(record), "steps": steps, "timings": timings}

    def _instance_info(self, image):
        return {"image_id": image.id, "image_name": image.name, "image_os_hash_value": image.os_hash_value,
                "root_device": self.params["root_device"], "deployed_at": _baremetal.now()}

    def _run_ramdisk(self, provisioner, record, modes, deploy_image, image):
        """One boot of the deploy ramdisk for ``modes`` (a cleaning, a deploy, or with fast track both: the
        ramdisk that cleaned asks for the deploy's job instead of powering off), to its last report and the power
        state after it; the record after it and each mode's timings."""
        p = self.params
        name = record["name"]
        jobs = _baremetal.Jobs(provisioner)
        options = _baremetal.session_options(record["bmc"], p["bmc"])
        timings, error, powered_on_at = {}, None, None
        for index, mode in enumerate(modes):
            next_step = modes[index + 1] if index + 1 < len(modes) else ""
            job = _baremetal.new_job(provisioner.settings, record, mode, deploy_image if mode == "deploy" else None,
                                     _baremetal.check_root_device(p["root_device"]), next_step=next_step)
            started = time.monotonic()
            # Recorded before the machine boots: a run killed from here on leaves the node visibly in between.
            record = provisioner.save(dict(record, provision_state="cleaning" if mode == "clean" else "deploying",
                                           last_error=None))
            jobs.start(record, job)
            try:
                if index == 0:
                    with _ipmi.Bmc(options) as bmc:
                        # Off, the boot device, then on (as Ironic's IPMI driver reboots), never a reset: some BMCs
                        # apply a boot device only at a power on (virtualbmc redefines a libvirt domain, which a
                        # reset keeps).
                        if bmc.power() != "off":
                            bmc.set_power("off", wait=60)
                        bmc.set_boot_device(_ipmi.BOOT_DEVICES["network"], False)
                        bmc.set_power("on")
                        powered_on_at = time.time()
                result = jobs.wait(name, p["deploy_timeout"])
            finally:
                jobs.end(record)
            reported = time.monotonic() - started
            error = _baremetal.result_error(result, job)
            timings[mode] = (started, reported, result, powered_on_at if index == 0 else None)
            if error is not None:
                break
            if next_step:
                # The ramdisk stays up and asks for the next job, which the next round writes.
                record = provisioner.save(dict(record, provision_state="available", last_error=None,
                                               instance_info=None))
        with _ipmi.Bmc(options) as bmc:
            # The ramdisk powers the machine off once it reported its last job; one that does not is forced off.
            if error is not None or not self._wait_power(bmc, "off", 120):
                bmc.set_power("off", wait=60)
            if error is None and mode == "deploy":
                bmc.set_boot_device(_ipmi.BOOT_DEVICES["disk"], True)
                bmc.set_power("on")
            power, boot = bmc.power(), _ipmi.boot_view(bmc.boot_device())["device"]
        record = dict(record, power=power, boot_device=boot)
        if error is not None:
            provisioner.save(dict(record, last_error="%s: %s" % (mode, error),
                                  provision_state=_baremetal.DEPLOY_FAILED if mode == "deploy"
                                  else _baremetal.CLEAN_FAILED))
            raise NimbusError("node %s: the %s failed and the machine is off: %s" % (name, mode, error))
        record.update(last_error=None, provision_state="active" if mode == "deploy" else "available",
                      instance_info=self._instance_info(image) if mode == "deploy" else None)
        ended = time.monotonic()
        steps = list(timings)
        for index, step in enumerate(steps):
            started, reported, result, step_powered_on_at = timings[step]
            # A step's end is the next step's start, the last one's the machine's last power change.
            step_end = timings[steps[index + 1]][0] if index + 1 < len(steps) else ended
            timings[step] = _baremetal.step_timings(reported, step_end - started, result, step_powered_on_at,
                                                    booted=index == 0)
        return provisioner.save(record), timings

    @staticmethod
    def _wait_power(bmc, state, seconds):
        deadline = time.monotonic() + seconds
        while bmc.power() != state:
            if time.monotonic() >= deadline:
                return False
            time.sleep(1)
        return True

    def _read_bmc(self, record, baseline):
        """The BMC's power state and boot device: recorded when ``baseline`` (the node becomes manageable, or its
        BMC changed), else compared with the record."""
        self.require("pyghmi", _ipmi.PYGHMI_IMPORT_ERROR)
        with _ipmi.Bmc(_baremetal.session_options(record["bmc"], self.params["bmc"])) as bmc:
            power = bmc.power()
            boot_device = _ipmi.boot_view(bmc.boot_device())["device"]
            session = bmc.negotiated()
        if baseline:
            record.update(power=power, boot_device=boot_device)
            return {"session": session}
        found = _baremetal.drift(record, power, boot_device)
        for difference in found:
            self.module.warn("node %s: the BMC reports %s %s where the record says %s (not corrected)" % (
                record["name"], difference["field"], difference["bmc"], difference["recorded"]))
        return {"session": session, "drift": found}


def main():
    BaremetalNodeModule.main()


if __name__ == "__main__":
    main()
