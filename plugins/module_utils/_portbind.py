# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""An instance's ports bound to their nftables filters on the compute host that runs it.

A NIC plugged into a port with port security gets the port's filter (see
:mod:`._nftables`): its chains jump to the chains of the port's security
groups, and its tap may send only the port's MAC and addresses. The binding
follows the instance: ports it no longer has (or that lost port security) are
unbound, and a deleted instance leaves nothing behind.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ansible_collections.nimbus.cloud.plugins.module_utils import _nftables as nft
from ansible_collections.nimbus.cloud.plugins.module_utils._errors import ValidationError


@dataclass
class Binding:
    """The steps that make the filters match the instance (empty when they already do)."""

    steps: list = field(default_factory=list)

    @property
    def changed(self):
        return bool(self.steps)


def filtered_ports(instance):
    """The NICs of ``instance`` (or None) whose port has port security."""
    return [n for n in (instance.nics if instance else []) if n.port and n.port["port_security"]]


def port_filter(nic):
    port = nic.port
    return nft.PortFilter(id=port["id"], bridge=nic.bridge, mac=nic.mac, tap=nic.tap,
                          ips=nft.ipv4(f.get("ip") for f in port.get("fixed_ips") or ()),
                          security_groups=list(port.get("security_groups") or ()))


def check_groups(tables, nics):
    """Refuse ports whose security groups this host does not have."""
    for nic in nics:
        for group in nic.port.get("security_groups") or ():
            if not nft.group_defined(tables, group):
                raise ValidationError("security group %s (port %s) is not defined on this host: run "
                                      "nimbus.cloud.security_group here first"
                                      % (group, nic.port.get("name") or nic.port["id"]))


def plan_binding(tables, actual, after):
    """Steps from the filters in ``tables`` to those of instance ``after`` (None: deleted), coming from ``actual``.

    Raises before anything is planned when a port names a group this host does not have.
    """
    wanted = filtered_ports(after)
    check_groups(tables, wanted)
    gone = {n.port["id"] for n in (actual.nics if actual else []) if n.port} - {n.port["id"] for n in wanted}
    lines = nft.base_lines(tables) if wanted else []
    for port_id in sorted(gone):
        lines += nft.unbind_lines(tables, port_id)
    for nic in wanted:
        lines += nft.port_lines(tables, port_filter(nic))
    return Binding(nft.steps(lines))


def plan(runner, actual, after):
    """Read the tables (only when the instance has or had a port) and plan the binding.

    Called before the instance changes, so a missing group stops the run while nothing has changed yet.
    """
    if not filtered_ports(after) and not any(n.port for n in (actual.nics if actual else [])):
        return Binding()
    return plan_binding(nft.read(runner), actual, after)
