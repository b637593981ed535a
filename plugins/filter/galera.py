# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja2 filters for Galera clusters; documentation in galera_start_plan.yml."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.nimbus.cloud.plugins.module_utils._galera import AmbiguousClusterState, plan_start


def galera_start_plan(states, hosts):
    try:
        return plan_start(dict(states), list(hosts)).to_dict()
    except AmbiguousClusterState as e:
        raise AnsibleFilterError("cannot decide how to start the Galera cluster: %s" % e.msg) from e


class FilterModule:
    def filters(self):
        return {"galera_start_plan": galera_start_plan}
