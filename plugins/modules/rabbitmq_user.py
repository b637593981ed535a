#!/usr/bin/python
# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: rabbitmq_user
short_description: Create, delete and set the password of a RabbitMQ user, the password never in a command line
version_added: 0.1.0
description:
  - Manages a user of the RabbitMQ node the task runs on with C(rabbitmqctl), giving the password on standard
    input to C(add_user), C(change_password) and C(authenticate_user). A password in a command line can be read
    from /proc by every user of the host while the command runs, and Debian's C(rabbitmqctl) wrapper re-runs
    itself through C(su), whose command line the journal keeps.
  - Only the user and its password. Tags and permissions hold no secret; set them with
    M(community.rabbitmq.rabbitmq_user) without its O(community.rabbitmq.rabbitmq_user#module:password) option.
author:
  - nimbus.cloud contributors (@nimbus-cloud)
extends_documentation_fragment:
  - nimbus.cloud.attributes
options:
  name:
    description: Name of the user.
    type: str
    required: true
    aliases: [user]
  password:
    description:
      - Password of the user. Required with O(state=present).
      - RabbitMQ strips leading and trailing white space from a password read on standard input, so such a
        password is refused rather than silently shortened.
    type: str
  update_password:
    description:
      - V(always) checks the password of an existing user (with C(rabbitmqctl authenticate_user)) and sets it when it
        differs; V(on_create) sets it only when the module creates the user.
    type: str
    choices: [always, on_create]
    default: always
  state:
    description: Whether the user exists.
    type: str
    choices: [present, absent]
    default: present
notes:
  - The diff shows the user's name and state, never its password.
requirements:
  - RabbitMQ 3.10 or later on the host (C(rabbitmqctl) reading passwords on standard input), run as root.
seealso:
  - module: community.rabbitmq.rabbitmq_user
"""

EXAMPLES = r"""
- name: Create the service's user, or reset its password when it differs
  nimbus.cloud.rabbitmq_user:
    name: nimbus
    password: "{{ vault_rabbitmq_nimbus_password }}"
  no_log: true

- name: Its tags and permissions (no secret there)
  community.rabbitmq.rabbitmq_user:
    user: nimbus
    update_password: on_create
    vhost: /nimbus
    configure_priv: ".*"
    read_priv: ".*"
    write_priv: ".*"

- name: Remove the built-in guest user
  nimbus.cloud.rabbitmq_user:
    name: guest
    state: absent
"""

RETURN = r"""
user:
  description: Name of the user.
  returned: always
  type: str
  sample: nimbus
state:
  description: Whether the user exists after the task (in check mode, would exist).
  returned: always
  type: str
  sample: present
password_changed:
  description: Whether the password was (or in check mode would be) set, at creation or because it differed.
  returned: always
  type: bool
  sample: false
commands:
  description: What a real run would do (commands, and the changes that are not commands).
  returned: in check mode
  type: list
  elements: str
  sample:
    - rabbitmqctl add_user nimbus
"""

from ansible_collections.nimbus.cloud.plugins.module_utils import _rabbitmq as rmq
from ansible_collections.nimbus.cloud.plugins.module_utils._base import NimbusModule
from ansible_collections.nimbus.cloud.plugins.module_utils._errors import ValidationError


class RabbitmqUserModule(NimbusModule):
    argument_spec = dict(
        name=dict(type="str", required=True, aliases=["user"]),
        password=dict(type="str", no_log=True),
        update_password=dict(type="str", choices=["always", "on_create"], default="always", no_log=False),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    )
    required_if = [("state", "present", ("password",))]

    def run(self):
        p = self.params
        desired = rmq.DesiredUser(p["name"], p["password"], p["update_password"], p["state"])
        if desired.password is not None and desired.password != desired.password.strip():
            raise ValidationError("the password of RabbitMQ user %s begins or ends with white space, which "
                                  "rabbitmqctl strips from standard input" % desired.name)
        ctl = rmq.Rabbitmqctl(self.runner)
        actual = ctl.read(desired)
        steps = rmq.plan(desired, actual)
        ctl.apply(desired, steps)
        self.changed = bool(steps)
        after = actual.exists if not steps else desired.state == "present"
        password_changed = any(s in ("add_user", "change_password") for s in steps)
        self.set_diff(rmq.view(desired.name, actual.exists), rmq.view(desired.name, after, password_changed))
        return {"user": desired.name, "state": "present" if after else "absent", "password_changed": password_changed}


def main():
    RabbitmqUserModule.main()


if __name__ == "__main__":
    main()
