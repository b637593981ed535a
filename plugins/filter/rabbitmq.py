# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja2 filters for RabbitMQ; documentation in rabbitmq_enabled_plugins.yml."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text

from ansible_collections.nimbus.cloud.plugins.module_utils._rabbitmq import parse_enabled_plugins


def rabbitmq_enabled_plugins(text):
    try:
        return parse_enabled_plugins(to_text(text or ""))
    except ValueError as e:
        raise AnsibleFilterError("cannot read RabbitMQ's enabled_plugins file: %s" % e) from e


class FilterModule:
    def filters(self):
        return {"rabbitmq_enabled_plugins": rabbitmq_enabled_plugins}
