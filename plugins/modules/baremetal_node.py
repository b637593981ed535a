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
  - Deploying an image (states V(available) and V(active)) and cleaning come in a later release.
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
    choices: [enrolled, manageable, absent]
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
    )

    def run(self):
        p = self.params
        name = _baremetal.check_name(p["name"])
        # Everything given is checked before anything is read or written.
        macs = None if p["macs"] is None else _baremetal.check_macs(p["macs"])
        properties = None if p["properties"] is None else _baremetal.check_properties(p["properties"])
        bmc = None if p["bmc"] is None else _baremetal.kept_bmc(_ipmi.check_bmc(p["bmc"]))
        provisioner = _baremetal.Provisioner(self.runner)
        with provisioner.lock():
            records = provisioner.records()
            before = records.get(name)
            if p["state"] == "absent":
                return self._remove(provisioner, records, before)
            return self._converge(provisioner, records, before, macs, properties, bmc)

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
        if wanted == "manageable":
            if record["bmc"] is None:
                raise NimbusError("node %s has no BMC: bmc is required to make it manageable" % name)
            baseline = before is None or before["provision_state"] != "manageable" or bmc_changed
            result.update(self._read_bmc(record, baseline))
        record["provision_state"] = wanted

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
