# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Names and MAC addresses as every nimbus.cloud resource accepts them."""

from __future__ import annotations

import re

from ansible_collections.nimbus.cloud.plugins.module_utils._errors import ValidationError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
MAC_RE = re.compile(r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")


def validate_name(name, kind="instance"):
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ValidationError(
            "invalid %s name %r: use 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit"
            % (kind, name))
    return name


def normalise_mac(mac, where):
    value = str(mac).strip().lower().replace("-", ":")
    if not MAC_RE.match(value):
        raise ValidationError("%s: %r is not a MAC address (aa:bb:cc:dd:ee:ff)" % (where, mac))
    if int(value[:2], 16) & 1:
        raise ValidationError("%s: %s is a multicast MAC address" % (where, value))
    return value
