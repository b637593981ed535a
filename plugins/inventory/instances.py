# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: instances
short_description: The instances of nimbus.cloud hypervisors, read from libvirt
version_added: 0.1.0
description:
  - Lists the instances (libvirt domains made by M(nimbus.cloud.instance)) on one or more hypervisors, so that
    playbooks can run against them.
  - Each instance becomes a host named after the instance. When instances of the same name live on several
    hypervisors, each of them is named C(<name>@<hypervisor>) instead, with a warning.
  - Hosts are put in the groups C(nimbus_instances), C(project_<project>), C(hypervisor_<hypervisor>) and
    C(state_<state>). As with other inventory plugins, characters not allowed in group names, such as C(.) or
    C(-), become C(_) (C(hypervisor_10_0_0_5)).
  - Host variables are C(nimbus_instance) (the instance as M(nimbus.cloud.instance_info) returns it, with
    C(hypervisor) set to the hypervisor's display name), C(nimbus_project), C(nimbus_flavor) (the flavor's name,
    or null), C(nimbus_hypervisor), C(nimbus_state), C(nimbus_uuid), C(nimbus_addresses) (the instance's IPv4
    and IPv6 addresses, first NIC first; loopback and link-local addresses are left out) and, when an IPv4
    address is known, C(ansible_host).
  - The configuration file's name must end with C(instances.yml) or C(instances.yaml).
  - Connections are read-only, unless O(address_source) contains C(agent).
author:
  - nimbus.cloud contributors (@nimbus-cloud)
requirements:
  - libvirt-python on the controller
extends_documentation_fragment:
  - constructed
  - inventory_cache
options:
  plugin:
    description: Marks the file as a configuration of this inventory plugin.
    type: str
    required: true
    choices: [nimbus.cloud.instances]
  hypervisors:
    description:
      - The hypervisors to read, each a libvirt connection URI (for example C(qemu+ssh://root@compute1/system)
        or C(qemu:///system)), or a dict with the keys C(uri) and C(name).
      - The P(nimbus.cloud.kvm#role) role opens no TCP port for libvirt; reach remote hypervisors over SSH.
      - C(name) is the hypervisor's display name, used in host variables, group names and host names. It
        defaults to the host part of the URI or, for a URI without one, the hostname libvirt reports.
      - Display names must be unique.
    type: list
    elements: raw
    required: true
  projects:
    description: Only instances of these projects. All projects when not set.
    type: list
    elements: str
  states:
    description: Only instances in these libvirt states. All states when not set.
    type: list
    elements: str
    choices: [nostate, running, blocked, paused, shutdown, shutoff, crashed, pmsuspended]
  include_unmanaged:
    description: Also list domains not made by this collection. Their project and flavor are null.
    type: bool
    default: false
  address_source:
    description:
      - Where to look up the addresses of a running instance, tried in this order until one finds an address.
        A source that fails (for example C(agent) when the guest runs no QEMU guest agent) is skipped.
      - C(port) takes the fixed addresses of the instance's ports (M(nimbus.cloud.port)), recorded in its domain;
        it needs nothing from the guest or the network. C(lease) reads the DHCP leases of the libvirt network the
        instance is attached to, C(arp) the hypervisor's ARP table, C(agent) asks the QEMU guest agent inside the
        instance.
      - libvirt refuses to query the guest agent through a read-only connection, so C(agent) makes the
        plugin open read-write connections, which need the matching rights on the hypervisors.
    type: list
    elements: str
    choices: [port, lease, arp, agent]
    default: [port, lease, arp]
  fail_on_errors:
    description:
      - Fail when a hypervisor cannot be read.
      - By default such a hypervisor is left out with a warning and the others are listed.
    type: bool
    default: false
"""

EXAMPLES = r"""
# nimbus_instances.yml: every instance on two hypervisors, grouped by project, hypervisor and state
plugin: nimbus.cloud.instances
hypervisors:
  - qemu+ssh://root@compute1/system
  - uri: qemu+ssh://root@10.0.0.5/system
    name: compute2

---
# demo_instances.yml: the running instances of project demo, addresses from the guest agent first,
# a group per flavor, and the cache to spare the hypervisors
plugin: nimbus.cloud.instances
hypervisors:
  - qemu+ssh://root@compute1/system
projects: [demo]
states: [running]
address_source: [agent, lease, arp]
keyed_groups:
  - key: nimbus_flavor
    prefix: flavor
compose:
  ansible_user: "'debian'"
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/nimbus-inventory
"""

import ipaddress
from collections import Counter
from collections.abc import Mapping
from urllib.parse import urlsplit

from ansible.errors import AnsibleError, AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable

from ansible_collections.nimbus.cloud.plugins.module_utils import _libvirt as lv

MISSING_BINDING = "the nimbus.cloud.instances inventory needs the libvirt Python binding (pip install libvirt-python)"
SOURCES = {
    "lease": "VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE",
    "arp": "VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP",
    "agent": "VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT",
}


class _Reader(lv.Hypervisor):
    """Reads instances the way the modules do, through the inventory's own connection.

    The modules' Hypervisor opens a read-write connection and loads the host's
    settings file; an inventory on the controller has neither and changes nothing.
    """

    def __init__(self, uri, conn):
        super().__init__(runner=None, uri=uri, settings={})
        self._inventory_conn = conn

    @property
    def conn(self):
        return self._inventory_conn


def ordered_addresses(interfaces, macs):
    """The usable addresses from libvirt's interfaceAddresses(), the instance's first NIC first.

    libvirt keys the result by interface name, which for the agent source is the
    guest's (lo, eth0) and for the others the host's tap device, so the MAC is
    the only way back to the instance's NIC order.
    """
    def nic_index(iface):
        mac = (iface.get("hwaddr") or "").lower()
        return macs.index(mac) if mac in macs else len(macs)

    found = []
    for iface in sorted((interfaces or {}).values(), key=nic_index):
        for entry in iface.get("addrs") or []:
            try:
                address = ipaddress.ip_address(entry.get("addr") or "")
            except ValueError:
                continue
            if address.is_loopback or address.is_link_local or address.is_unspecified:
                continue
            if str(address) not in found:
                found.append(str(address))
    return found


def hypervisor_entries(items):
    """(uri, display name or None) for each item of the hypervisors option."""
    entries = []
    for index, item in enumerate(items or []):
        where = "hypervisors[%d]" % index
        if isinstance(item, str):
            uri, name = item, None
        elif isinstance(item, Mapping):
            unknown = set(item) - {"uri", "name"}
            if unknown:
                raise AnsibleParserError("%s: unknown keys %s (known: uri, name)" % (where, ", ".join(sorted(unknown))))
            uri, name = item.get("uri"), item.get("name")
            if name is not None and (not isinstance(name, str) or not name):
                raise AnsibleParserError("%s: name must be a non-empty string" % where)
        else:
            raise AnsibleParserError("%s must be a libvirt URI or a dict with uri and name" % where)
        if not isinstance(uri, str) or not uri:
            raise AnsibleParserError("%s: a libvirt URI is required" % where)
        try:
            host = urlsplit(uri).hostname
        except ValueError as e:
            raise AnsibleParserError("%s: %s is not a valid libvirt URI: %s" % (where, uri, e)) from e
        if uri in {entry[0] for entry in entries}:
            raise AnsibleParserError("%s: %s is listed twice" % (where, uri))
        entries.append((str(uri), str(name) if name else host))
    return entries


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = "nimbus.cloud.instances"

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith(("instances.yml", "instances.yaml"))

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache=cache)
        self._read_config_data(path)

        cache_key = self.get_cache_key(path)
        use_cache = self.get_option("cache") and cache
        update_cache = self.get_option("cache") and not cache
        records = None
        if use_cache:
            try:
                records = self._cache[cache_key]
            except KeyError:
                update_cache = True
        if records is None:
            records = self._fetch()
        if update_cache:
            self._cache[cache_key] = records
        self._populate(records)

    def _fetch(self):
        libvirt = lv.libvirt
        if libvirt is None:
            raise AnsibleError(MISSING_BINDING) from lv.LIBVIRT_IMPORT_ERROR
        entries = hypervisor_entries(self.get_option("hypervisors"))
        # libvirt prints every error to stderr as well; the plugin reports its own.
        libvirt.registerErrorHandler(lambda ctx, err: None, None)
        records, uri_of = [], {}
        for uri, name in entries:
            try:
                name, found = self._read_hypervisor(libvirt, uri, name)
            except libvirt.libvirtError as e:
                self._error("cannot read the instances of hypervisor %s: %s" % (uri, e))
                continue
            if name in uri_of:
                raise AnsibleError("hypervisors %s and %s are both named %s: give one of them another name"
                                   % (uri_of[name], uri, name))
            uri_of[name] = uri
            records.extend(found)
        return records

    def _read_hypervisor(self, libvirt, uri, name):
        sources = self.get_option("address_source")
        # libvirt refuses guest agent queries on a read-only connection ("read only access prevents
        # virDomainInterfaceAddresses"); leases and ARP work on one, and need no write rights.
        opener = libvirt.open if "agent" in sources else libvirt.openReadOnly
        conn = opener(uri)
        try:
            name = name or conn.getHostname()
            reader = _Reader(uri, conn)
            found = []
            for dom in conn.listAllDomains(0):
                try:
                    inst = reader.read_domain(dom)
                except libvirt.libvirtError as e:
                    # Undefined between the listing and the reading: it is gone, not an error.
                    if e.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                        continue
                    raise
                if not self._wanted(inst):
                    continue
                addresses = self._addresses(libvirt, dom, inst, sources, name) if inst.active else []
                found.append({"instance": inst.view(name), "addresses": addresses})
            return name, found
        finally:
            conn.close()

    def _wanted(self, inst):
        projects = self.get_option("projects")
        states = self.get_option("states")
        return ((inst.managed or self.get_option("include_unmanaged"))
                and (projects is None or inst.project in projects)
                and (states is None or inst.state in states))

    def _addresses(self, libvirt, dom, inst, sources, hypervisor):
        macs = [nic.mac for nic in inst.nics]
        for source in sources:
            if source == "port":
                fixed = [f["ip"] for nic in inst.nics if nic.port for f in nic.port["fixed_ips"] if f.get("ip")]
                if fixed:
                    return fixed
                continue
            try:
                interfaces = dom.interfaceAddresses(getattr(libvirt, SOURCES[source]), 0)
            except libvirt.libvirtError as e:
                self.display.vvv("nimbus.cloud.instances: no %s addresses for %s on %s: %s"
                                 % (source, inst.name, hypervisor, e))
                continue
            addresses = ordered_addresses(interfaces, macs)
            if addresses:
                return addresses
        return []

    def _error(self, msg):
        if self.get_option("fail_on_errors"):
            raise AnsibleError(msg)
        self.display.warning(msg)

    def _populate(self, records):
        counts = Counter(r["instance"]["name"] for r in records)
        for name in sorted(n for n, count in counts.items() if count > 1):
            where = sorted(r["instance"]["hypervisor"] for r in records if r["instance"]["name"] == name)
            self.display.warning("instance %s exists on hypervisors %s: its hosts are named %s"
                                 % (name, ", ".join(where), ", ".join("%s@%s" % (name, hv) for hv in where)))
        self.inventory.add_group("nimbus_instances")
        strict = self.get_option("strict")
        for record in sorted(records, key=lambda r: (r["instance"]["name"], r["instance"]["hypervisor"])):
            view = record["instance"]
            host = view["name"]
            if counts[host] > 1:
                host = "%s@%s" % (host, view["hypervisor"])
            host = self.inventory.add_host(host, group="nimbus_instances")
            for key, value in self._host_vars(view, record["addresses"]).items():
                self.inventory.set_variable(host, key, value)
            for prefix in ("project", "hypervisor", "state"):
                if view[prefix]:
                    group = self.inventory.add_group(self._sanitize_group_name("%s_%s" % (prefix, view[prefix])))
                    self.inventory.add_child(group, host)
            hostvars = self.inventory.get_host(host).get_vars()
            self._set_composite_vars(self.get_option("compose"), hostvars, host, strict=strict)
            self._add_host_to_composed_groups(self.get_option("groups"), hostvars, host, strict=strict)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), hostvars, host, strict=strict)

    @staticmethod
    def _host_vars(view, addresses):
        hostvars = {
            "nimbus_instance": view,
            "nimbus_project": view["project"],
            "nimbus_flavor": (view["flavor"] or {}).get("name"),
            "nimbus_hypervisor": view["hypervisor"],
            "nimbus_state": view["state"],
            "nimbus_uuid": view["uuid"],
            "nimbus_addresses": list(addresses),
        }
        ipv4 = [a for a in addresses if ipaddress.ip_address(a).version == 4]
        if ipv4:
            hostvars["ansible_host"] = ipv4[0]
        return hostvars
