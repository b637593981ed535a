#!/usr/bin/python
# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: baremetal_power
short_description: Power a machine on, off, reset or cycle it, and choose its boot device, through its BMC
version_added: 0.2.0
description:
  - Sends chassis requests to a machine's BMC over IPMI 2.0 (RMCP+) with pyghmi's client, from the host the task
    runs on.
  - B(Imperative) for O(state=reset) and O(state=cycle), which act on every run and always report a change.
    O(state=on), O(state=off) and O(state=soft_off) act only when the BMC reports another power state, and
    O(boot_device) only when the BMC reports another device or persistence.
  - The boot device is set before the power request, so O(boot_device=network) with O(state=cycle) boots the
    machine from the network.
  - Check mode reads the power state and the boot device and reports the requests it would send.
  - With O(node) instead of O(bmc), the task runs on the provisioning host and reaches the machine through its
    node's record (M(nimbus.cloud.baremetal_node)); the record then takes the power state and boot device the task
    left, so M(nimbus.cloud.baremetal_node) does not report them as drift. The node's records are locked for the
    task's length.
  - The session's algorithms are checked (cipher suite 17 or 3); IPMI 1.5 and sessions without authentication
    or integrity are refused unless O(bmc.allow_insecure=true). C(docs/baremetal.md) in the collection says
    what to do about a BMC pyghmi's client cannot speak to.
author:
  - nimbus.cloud contributors (@nimbus-cloud)
extends_documentation_fragment:
  - nimbus.cloud.attributes
  - nimbus.cloud.bmc
options:
  bmc:
    description: The machine's BMC; or O(node).
    required: false
  node:
    description: The name of an enrolled node of this provisioning host whose BMC to use; or O(bmc).
    type: str
  state:
    description:
      - V(on) and V(off) (a hard power off) wait until the BMC reports that state.
      - V(soft_off) asks the operating system to shut down (ACPI) and waits up to O(wait) seconds for the
        machine to be off; the task fails if it is still on then (V(off) forces it).
      - V(reset) is a hard reset of a machine that is on, and powers on one that is off.
      - V(cycle) powers off, waits for the BMC to report it, and powers on; a machine that is off is powered on.
    type: str
    choices: ["on", "off", soft_off, reset, cycle]
  boot_device:
    description:
      - The device the machine boots from next. V(network) is PXE, V(disk) the first disk, V(cdrom) virtual
        media, V(bios) the firmware's setup, V(default) the firmware's own order.
    type: str
    choices: [network, disk, cdrom, bios, default]
  persistent:
    description: Whether O(boot_device) holds for every boot, or only for the next one.
    type: bool
    default: false
  wait:
    description: Seconds to wait for a power state the request asks for.
    type: int
    default: 120
seealso:
  - module: nimbus.cloud.baremetal_node_info
"""

EXAMPLES = r"""
- name: Boot the machine from the network once
  nimbus.cloud.baremetal_power:
    bmc:
      address: 10.0.40.21
      username: admin
      password: "{{ vault_bmc_password }}"
    boot_device: network
    state: cycle

- name: Power an enrolled node on through its record (run on the provisioning host)
  nimbus.cloud.baremetal_power:
    node: rack1-u12
    state: "on"

- name: Shut it down cleanly
  nimbus.cloud.baremetal_power:
    bmc: "{{ node_bmc }}"
    state: soft_off
    wait: 300
"""

RETURN = r"""
power:
  description: The power state the BMC reports after the task (in check mode, the one it would reach).
  returned: always
  type: str
  sample: "on"
previous_power:
  description: The power state before the task.
  returned: always
  type: str
  sample: "off"
boot_device:
  description: The boot device after the task, as O(boot_device) names them (V(unknown) for another).
  returned: always
  type: dict
  sample: {device: network, persistent: false}
requests:
  description: The requests sent to the BMC (in check mode, the ones it would send), in order.
  returned: always
  type: list
  elements: str
  sample: [boot device network, power off, power on]
session:
  description: The session's IPMI version and cipher suite.
  returned: always
  type: dict
  sample: {ipmi_version: "2.0", cipher_suite: 17}
"""

import time

from ansible_collections.nimbus.cloud.plugins.module_utils import _baremetal, _ipmi
from ansible_collections.nimbus.cloud.plugins.module_utils._base import NimbusModule
from ansible_collections.nimbus.cloud.plugins.module_utils._errors import NimbusError


class BaremetalPowerModule(NimbusModule):
    returns_commands = False
    argument_spec = dict(
        bmc=dict(type="dict", options=_ipmi.bmc_options()),
        node=dict(type="str"),
        state=dict(type="str", choices=["on", "off", "soft_off", "reset", "cycle"]),
        boot_device=dict(type="str", choices=sorted(_ipmi.BOOT_DEVICES)),
        persistent=dict(type="bool", default=False),
        wait=dict(type="int", default=120),
    )
    required_one_of = [("state", "boot_device"), ("bmc", "node")]
    mutually_exclusive = [("bmc", "node")]

    def run(self):
        p = self.params
        if p["wait"] < 0:
            raise NimbusError("wait cannot be negative")
        self.require("pyghmi", _ipmi.PYGHMI_IMPORT_ERROR)
        if p["node"] is None:
            return self._request(p["bmc"])
        provisioner = _baremetal.Provisioner(self.runner)
        with provisioner.lock():
            record = _baremetal.enrolled_node(provisioner, p["node"])
            result = self._request(_baremetal.session_options(record["bmc"], None))
            _baremetal.track_power(provisioner, record, result["power"], result["boot_device"]["device"])
            return result

    def _request(self, options):
        p = self.params
        with _ipmi.Bmc(options) as bmc:
            power = bmc.power()
            boot = bmc.boot_device()
            plan = _ipmi.power_plan(power, p["state"], boot, p["boot_device"], p["persistent"])
            result = {"previous_power": power, "session": bmc.negotiated(), "requests": plan.requests}
            self.changed = bool(plan.requests)
            if self.check_mode:
                return dict(result, power=plan.power, boot_device=plan.boot)
            if plan.sets_boot:
                bmc.set_boot_device(_ipmi.BOOT_DEVICES[p["boot_device"]], p["persistent"])
            for request in plan.power_requests:
                self._power(bmc, request)
            return dict(result, power=bmc.power(), boot_device=_ipmi.boot_view(bmc.boot_device()))

    def _power(self, bmc, request):
        """One power request, and for on, off and soft_off the wait for the state it asks for."""
        wanted = {"on": "on", "off": "off", "shutdown": "off"}.get(request)
        bmc.set_power(request)
        if wanted is None:
            return
        deadline = time.monotonic() + self.params["wait"]
        while bmc.power() != wanted:
            if time.monotonic() >= deadline:
                raise NimbusError("%s: still not %s %d s after power %s%s" % (
                    bmc.where, wanted, self.params["wait"], request,
                    " (the operating system did not shut down: state=off forces it)" if request == "shutdown"
                    else ""), requests_sent=request)
            time.sleep(1)


def main():
    BaremetalPowerModule.main()


if __name__ == "__main__":
    main()
