#!/usr/bin/python
# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: rabbitmq_user
short_description: Manage a RabbitMQ user, its password, tags and permissions, the password never in a command line
version_added: 0.1.0
description:
  - Manages a user of the RabbitMQ node the task runs on with C(rabbitmqctl), giving the password on standard
    input to C(add_user), C(change_password) and C(authenticate_user). A password in a command line can be read
    from /proc by every user of the host while the command runs, and Debian's C(rabbitmqctl) wrapper re-runs
    itself through C(su), whose command line the journal keeps.
  - Also manages the user's tags and its permissions on virtual hosts, reading only what the task asks for
    (one C(list_users) for the user and its tags, one C(list_user_permissions) when O(permissions) is given and
    the user exists, one C(authenticate_user) with O(update_password=always)) and changing only what differs.
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
  tags:
    description:
      - Tags of the user, for example V(administrator), V(monitoring) or V(management). The set counts, not the order.
      - The user gets exactly these tags; V([]) removes every tag. Omitted, the tags are left as they are (a new user
        has none).
      - A tag must not be empty or hold a comma or white space.
      - Ignored with O(state=absent).
    type: list
    elements: str
  permissions:
    description:
      - Permissions of the user, one entry per virtual host; each vhost may be listed once.
      - Permissions on a vhost listed here are set when they differ. Permissions on vhosts not listed are kept,
        unless O(permissions_exclusive=true).
      - Omitted, no permission is read or changed.
      - Ignored with O(state=absent).
    type: list
    elements: dict
    suboptions:
      vhost:
        description: Name of the virtual host; it must exist.
        type: str
        default: /
      configure_priv:
        description: Regular expression of the resources the user may configure (declare, delete); V("") for none.
        type: str
        default: .*
      read_priv:
        description: Regular expression of the resources the user may read from (consume, bind from); V("") for none.
        type: str
        default: .*
      write_priv:
        description: Regular expression of the resources the user may write to (publish, bind to); V("") for none.
        type: str
        default: .*
  permissions_exclusive:
    description:
      - Whether O(permissions) is the whole list, so that the user loses its permissions on every vhost not listed
        (C(rabbitmqctl clear_permissions)).
      - V(false) leaves permissions on other vhosts alone, for example those another task or team manages.
      - Note that the O(community.rabbitmq.rabbitmq_user#module:permissions) list of
        M(community.rabbitmq.rabbitmq_user) is exclusive; set V(true) for the same behaviour.
    type: bool
    default: false
  state:
    description: Whether the user exists.
    type: str
    choices: [present, absent]
    default: present
notes:
  - The diff shows the user's name and state, and its tags and permissions when the task manages them; never its
    password, only whether it changes.
  - Names, tags, vhosts and patterns beginning with C(-) are passed after C(--) or as C(--vhost=VHOST), never read as
    options.
  - Debian's C(rabbitmqctl) wrapper, run as root, passes its arguments through a shell inside double quotes. A value
    that shell would change (a control character, a backquote, C($) before a name, digit or bracket, a backslash
    before C(\), C($), a backquote or C(") or at the end) is refused before any command runs. C(^$), C(a$|b) and
    C(amq\.gen.*) pass unchanged.
requirements:
  - RabbitMQ 3.10 or later on the host (C(rabbitmqctl) reading passwords on standard input), run as root.
seealso:
  - module: community.rabbitmq.rabbitmq_user
"""

EXAMPLES = r"""
- name: Create the service's user, or reset its password when it differs; its tags and permissions on /nimbus
  nimbus.cloud.rabbitmq_user:
    name: nimbus
    password: "{{ vault_rabbitmq_nimbus_password }}"
    tags: [management]
    permissions:
      - vhost: /nimbus
  no_log: true

- name: A monitoring user that may only read, on two vhosts and no other
  nimbus.cloud.rabbitmq_user:
    name: monitor
    password: "{{ vault_rabbitmq_monitor_password }}"
    update_password: on_create
    tags: [monitoring]
    permissions:
      - vhost: /nimbus
        configure_priv: ""
        write_priv: ""
        read_priv: ".*"
      - vhost: /
        configure_priv: ""
        write_priv: ""
        read_priv: ".*"
    permissions_exclusive: true
  no_log: true

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
tags:
  description: Tags of the user after the task (in check mode, would have), sorted; empty when it does not exist.
  returned: always
  type: list
  elements: str
  sample: [management]
permissions:
  description:
    - Permissions of the user after the task (in check mode, would have), sorted by vhost. Vhosts not listed in
      O(permissions) are included when kept.
  returned: when O(permissions) is given and O(state=present)
  type: list
  elements: dict
  contains:
    vhost:
      description: Virtual host.
      type: str
      sample: /nimbus
    configure_priv:
      description: Configure pattern.
      type: str
      sample: .*
    write_priv:
      description: Write pattern.
      type: str
      sample: .*
    read_priv:
      description: Read pattern.
      type: str
      sample: .*
commands:
  description: What a real run would do (commands, and the changes that are not commands).
  returned: in check mode
  type: list
  elements: str
  sample:
    - rabbitmqctl --quiet add_user -- nimbus
    - rabbitmqctl --quiet set_user_tags -- nimbus management
    - rabbitmqctl --quiet set_permissions --vhost=/nimbus -- nimbus .* .* .*
"""

from ansible_collections.nimbus.cloud.plugins.module_utils import _rabbitmq as rmq
from ansible_collections.nimbus.cloud.plugins.module_utils._base import NimbusModule


class RabbitmqUserModule(NimbusModule):
    argument_spec = dict(
        name=dict(type="str", required=True, aliases=["user"]),
        password=dict(type="str", no_log=True),
        update_password=dict(type="str", choices=["always", "on_create"], default="always", no_log=False),
        tags=dict(type="list", elements="str"),
        permissions=dict(type="list", elements="dict", options=dict(
            vhost=dict(type="str", default="/"),
            configure_priv=dict(type="str", default=".*"),
            read_priv=dict(type="str", default=".*"),
            write_priv=dict(type="str", default=".*"),
        )),
        permissions_exclusive=dict(type="bool", default=False),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    )
    required_if = [("state", "present", ("password",))]

    def run(self):
        p = self.params
        present = p["state"] == "present"
        desired = rmq.DesiredUser(
            p["name"], p["password"], p["update_password"], p["state"],
            tags=frozenset(p["tags"]) if present and p["tags"] is not None else None,
            permissions=rmq.permissions_from(p["permissions"]) if present and p["permissions"] is not None else None,
            permissions_exclusive=p["permissions_exclusive"],
        )
        rmq.validate(desired)
        ctl = rmq.Rabbitmqctl(self.runner)
        actual = ctl.read(desired)
        steps = rmq.plan(desired, actual)
        ctl.apply(desired, steps)
        self.changed = bool(steps)
        after = rmq.outcome(desired, actual)
        password_changed = any(s.command in rmq.PASSWORD_STEPS for s in steps)
        self.set_diff(rmq.view(desired, actual), rmq.view(desired, after, password_changed))
        result = {"user": desired.name, "state": "present" if after.exists else "absent",
                  "password_changed": password_changed, "tags": sorted(after.tags)}
        if desired.permissions is not None:
            result["permissions"] = rmq.permission_list(after.permissions or {})
        return result


def main():
    RabbitmqUserModule.main()


if __name__ == "__main__":
    main()
