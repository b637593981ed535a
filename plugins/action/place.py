# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""nimbus.cloud.place: choose hypervisors on the controller; documentation in plugins/modules/place.py."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.plugins.action import ActionBase

from ansible_collections.nimbus.cloud.plugins.module_utils._scheduler import (
    POLICIES,
    WEIGHERS,
    Scheduler,
    SchedulerError,
    parse_requests,
)

ARGUMENT_SPEC = dict(
    hypervisors=dict(type="raw", required=True),
    requests=dict(type="list", elements="dict", required=True, options=dict(
        name=dict(type="str", required=True),
        flavor=dict(type="dict", required=True, options=dict(
            name=dict(type="str"),
            vcpus=dict(type="int", required=True),
            ram_mb=dict(type="int", required=True),
            disk_gb=dict(type="int", required=True),
        )),
        availability_zone=dict(type="str"),
        aggregate=dict(type="list", elements="str"),
        server_group=dict(type="dict", options=dict(
            name=dict(type="str", required=True),
            policy=dict(type="str", required=True, choices=list(POLICIES)),
        )),
    )),
    weigher=dict(type="str", default="spread", choices=list(WEIGHERS)),
)


def _unwrap(value):
    # Whole registered hypervisor_info results are accepted as well as their
    # `hypervisor` key, so hostvars can be passed without a map('extract').
    if isinstance(value, Mapping) and "ram_mb" not in value and isinstance(value.get("hypervisor"), Mapping):
        return value["hypervisor"]
    return value


def hypervisor_data(value):
    if isinstance(value, Mapping):
        return {key: _unwrap(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_unwrap(item) for item in value]
    raise SchedulerError("hypervisors must be a list of hypervisors or a mapping of host name to hypervisor, got %s"
                         % type(value).__name__)


def schedule(hypervisors, requests, weigher):
    """Place every request; return the plugin's result keys."""
    parsed = parse_requests(requests)
    scheduler = Scheduler(hypervisor_data(hypervisors), weigher)
    placements = [scheduler.place(request).to_dict() for request in parsed]
    by_hypervisor = {}
    for placement in placements:
        by_hypervisor.setdefault(placement["hypervisor"], []).append(placement["name"])
    return {"placements": placements, "by_hypervisor": by_hypervisor}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    # Placement is decided from the data given; the target is never contacted.
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)[1]
        # Nothing changes anywhere, so check mode needs no separate path.
        result["changed"] = False
        try:
            result.update(schedule(args["hypervisors"], args["requests"], args["weigher"]))
        except SchedulerError as e:
            result.update(failed=True, msg=e.msg)
        return result
