#!/usr/bin/python
# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: baremetal_node_info
short_description: Read a machine's power state, boot device, sensors and FRU inventory from its BMC
version_added: 0.2.0
description:
  - Reads, over one IPMI 2.0 session with the machine's BMC, what the BMC says of the machine; changes nothing.
  - A BMC that keeps no sensor records or FRU data (virtual BMCs often do not) answers those requests with an
    error; the module then returns what it could read (often nothing) and the BMC's answer in
    RV(sensors_error) or RV(inventory_error) instead of failing.
author:
  - nimbus.cloud contributors (@nimbus-cloud)
extends_documentation_fragment:
  - nimbus.cloud.attributes
  - nimbus.cloud.attributes.info_module
  - nimbus.cloud.bmc
options:
  bmc:
    description: The machine's BMC; or O(node).
    required: false
  node:
    description:
      - The name of an enrolled node whose BMC to read, from its record on this provisioning host
        (M(nimbus.cloud.baremetal_node)); or O(bmc).
    type: str
  sensors:
    description: Read the sensors (one request per sensor record; slow on BMCs with hundreds).
    type: bool
    default: true
  inventory:
    description: Read the FRU inventory.
    type: bool
    default: true
seealso:
  - module: nimbus.cloud.baremetal_power
"""

EXAMPLES = r"""
- name: What the BMC says of the machine
  nimbus.cloud.baremetal_node_info:
    bmc:
      address: 10.0.40.21
      username: admin
      password: "{{ vault_bmc_password }}"
  register: node

- name: What the BMC of an enrolled node says (run on the provisioning host)
  nimbus.cloud.baremetal_node_info:
    node: rack1-u12
    sensors: false

- name: Every sensor reads ok
  ansible.builtin.assert:
    that: node.sensors | rejectattr('health', 'equalto', 'ok') | list | length == 0
"""

RETURN = r"""
power:
  description: V(on) or V(off).
  returned: always
  type: str
boot_device:
  description: The next boot's device (V(network), V(disk), V(cdrom), V(bios), V(default), or V(unknown)).
  returned: always
  type: dict
  sample: {device: network, persistent: false}
session:
  description: The session's IPMI version and cipher suite.
  returned: always
  type: dict
  sample: {ipmi_version: "2.0", cipher_suite: 17}
device:
  description: The BMC's Get Device ID answer.
  returned: always
  type: dict
  sample: {device_id: 32, device_revision: 1, firmware: "2.40", ipmi_version: "2.0", manufacturer_id: 343,
           product_id: 2816}
sensors:
  description: Each sensor's reading; empty when not asked for or when the BMC keeps no sensor records.
  returned: always
  type: list
  elements: dict
  sample: [{name: Inlet Temp, type: Temperature, value: 23.0, units: "°C", health: ok, states: [],
            unavailable: false}]
sensors_error:
  description: What the BMC answered when it could not give its sensors.
  returned: when the BMC refused the sensor requests
  type: str
inventory:
  description: The FRU inventory, one mapping a component.
  returned: always
  type: dict
  sample: {System: {Manufacturer: Example, Product name: R640, Serial Number: ABC123}}
inventory_error:
  description: What the BMC answered when it could not give its FRU inventory.
  returned: when the BMC refused the FRU requests
  type: str
"""

from ansible_collections.nimbus.cloud.plugins.module_utils import _baremetal, _ipmi
from ansible_collections.nimbus.cloud.plugins.module_utils._base import NimbusModule


class BaremetalNodeInfoModule(NimbusModule):
    returns_commands = False
    argument_spec = dict(
        bmc=dict(type="dict", options=_ipmi.bmc_options()),
        node=dict(type="str"),
        sensors=dict(type="bool", default=True),
        inventory=dict(type="bool", default=True),
    )
    required_one_of = [("bmc", "node")]
    mutually_exclusive = [("bmc", "node")]

    def run(self):
        self.require("pyghmi", _ipmi.PYGHMI_IMPORT_ERROR)
        options = self.params["bmc"]
        if options is None:
            record = _baremetal.enrolled_node(_baremetal.Provisioner(self.runner), self.params["node"])
            options = _baremetal.session_options(record["bmc"], None)
        with _ipmi.Bmc(options) as bmc:
            result = {"power": bmc.power(), "boot_device": _ipmi.boot_view(bmc.boot_device()),
                      "session": bmc.negotiated(), "device": bmc.device_id(), "sensors": [], "inventory": {}}
            for key, wanted, read in (("sensors", self.params["sensors"], bmc.sensors),
                                      ("inventory", self.params["inventory"], bmc.inventory)):
                if not wanted:
                    continue
                try:
                    result[key] = read()
                except _ipmi.BmcError as e:
                    # A BMC without sensor records or FRU data says so with a completion code; a BMC that
                    # stopped answering fails the task.
                    if not e.details.get("ipmi_code"):
                        raise
                    result[key] = e.details.get("partial", result[key])
                    result[key + "_error"] = e.msg
            return result


def main():
    BaremetalNodeInfoModule.main()


if __name__ == "__main__":
    main()
