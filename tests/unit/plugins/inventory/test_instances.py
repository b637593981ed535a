import types
import uuid
import xml.etree.ElementTree as ET

import pytest
import yaml
from ansible import constants as C
from ansible.errors import AnsibleError
from ansible.inventory.data import InventoryData
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import fragment_loader
from ansible.utils.plugin_docs import get_docstring

from ansible_collections.nimbus.cloud.plugins.inventory import instances
from ansible_collections.nimbus.cloud.plugins.module_utils import _libvirt as lv
from ansible_collections.nimbus.cloud.plugins.module_utils._compute import (
    ACTIVE_STATES, DOMAIN_STATES, Flavor, Instance, Nic, build_domain_xml, parse_domain_xml,
)

NAME = "nimbus.cloud.instances"
# libvirt's own numbers, so that a mix-up between sources shows.
SRC_LEASE = 0
SRC_AGENT = 1
SRC_ARP = 2
VIR_ERR_NO_DOMAIN = 42
STATE_NUMBERS = {name: number for number, name in DOMAIN_STATES.items()}


class LibvirtError(Exception):
    def __init__(self, msg, code=1):
        super().__init__(msg)
        self.code = code

    def get_error_code(self):
        return self.code


def instance(name, project="demo", state="running", flavor="m1.small", macs=("52:54:00:00:00:01",), vcpus=1):
    return Instance(
        name=name, uuid=str(uuid.uuid5(uuid.NAMESPACE_DNS, name)), state=state,
        virt_type="kvm", vcpus=vcpus, ram_mb=512 * vcpus,
        flavor=Flavor(vcpus=vcpus, ram_mb=512 * vcpus, disk_gb=10, name=flavor), image="debian-12.qcow2",
        nics=[Nic(bridge="br-int", mac=mac) for mac in macs], project=project, metadata={"role": "web"},
    )


class FakeDomain:
    def __init__(self, inst, addresses=None, managed=True, vanishes=False):
        base = "/var/lib/nimbus/instances/%s/" % inst.name
        xml = build_domain_xml(inst, {"root_disk": base + "disk.qcow2", "console_log": base + "console.log"})
        if not managed:
            dom = ET.fromstring(xml)
            dom.remove(dom.find("metadata"))
            xml = ET.tostring(dom, encoding="unicode")
        self.xml = xml
        self.state_name = inst.state
        self.addresses = addresses or {}
        self.vanishes = vanishes
        self.asked = []

    def XMLDesc(self, flags=0):
        if self.vanishes:
            raise LibvirtError("Domain not found", VIR_ERR_NO_DOMAIN)
        return self.xml

    def state(self):
        return [STATE_NUMBERS[self.state_name], 1]

    def isActive(self):
        return self.state_name in ACTIVE_STATES

    def interfaceAddresses(self, source, flags=0):
        self.asked.append(source)
        answer = self.addresses.get(source, {})
        if isinstance(answer, Exception):
            raise answer
        return answer


class FakeConnection:
    def __init__(self, hostname, domains):
        self.hostname = hostname
        self.domains = domains
        self.closed = False

    def getHostname(self):
        return self.hostname

    def listAllDomains(self, flags=0):
        return list(self.domains)

    def close(self):
        self.closed = True


@pytest.fixture
def hypervisors(monkeypatch):
    """URI -> FakeConnection (or the LibvirtError opening it raises), served by a fake libvirt module."""
    table = {}
    opened = []

    def opener(read_only):
        def open_uri(uri):
            opened.append((uri, read_only))
            found = table[uri]
            if isinstance(found, Exception):
                raise found
            return found
        return open_uri

    fake = types.SimpleNamespace(
        libvirtError=LibvirtError, VIR_ERR_NO_DOMAIN=VIR_ERR_NO_DOMAIN, VIR_DOMAIN_XML_INACTIVE=2,
        VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE=SRC_LEASE, VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT=SRC_AGENT,
        VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP=SRC_ARP,
        registerErrorHandler=lambda handler, ctx: None, openReadOnly=opener(True), open=opener(False),
    )
    monkeypatch.setattr(lv, "libvirt", fake)
    monkeypatch.setattr(lv, "LIBVIRT_IMPORT_ERROR", None)
    return table, opened


class Recorder:
    def __init__(self):
        self.warnings = []
        self.verbose = []

    def warning(self, msg, *args, **kwargs):
        self.warnings.append(msg)

    def vvv(self, msg, *args, **kwargs):
        self.verbose.append(msg)

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def make_plugin():
    """The plugin as the plugin loader hands it over: named, with its documented options registered."""
    plugin = instances.InventoryModule()
    plugin._load_name = plugin.ansible_name = NAME
    plugin._redirected_names = [NAME]
    if not C.config.has_configuration_definition("inventory", NAME):
        doc = get_docstring(instances.__file__, fragment_loader)[0]
        C.config.initialize_plugin_configuration_definitions("inventory", NAME, doc["options"])
    plugin.display = Recorder()
    return plugin


@pytest.fixture
def run(tmp_path, hypervisors):
    def parse(config, filename="nimbus_instances.yml", cache=False, plugin=None):
        path = tmp_path / filename
        path.write_text(yaml.safe_dump(dict({"plugin": NAME}, **config)))
        plugin = plugin or make_plugin()
        inventory = InventoryData()
        plugin.parse(inventory, DataLoader(), str(path), cache=cache)
        return inventory, plugin.display.warnings
    return parse


def lease(*entries):
    """interfaceAddresses() output: (mac, address, ...) per interface."""
    out = {}
    for index, (mac, *addresses) in enumerate(entries):
        out["vnet%d" % index] = {"hwaddr": mac, "addrs": [
            {"type": 1 if ":" in a else 0, "addr": a, "prefix": 64 if ":" in a else 24} for a in addresses]}
    return out


def groups_of(inventory, host):
    return sorted(g.name for g in inventory.get_host(host).get_groups() if g.name != "all")


def hostvars(inventory, host):
    return inventory.get_host(host).vars


def test_verify_file(tmp_path):
    plugin = make_plugin()
    for name in ("instances.yml", "nimbus_instances.yaml", "hosts.yml", "instances.json"):
        (tmp_path / name).write_text("plugin: %s\n" % NAME)
    assert plugin.verify_file(str(tmp_path / "instances.yml"))
    assert plugin.verify_file(str(tmp_path / "nimbus_instances.yaml"))
    assert not plugin.verify_file(str(tmp_path / "hosts.yml"))
    assert not plugin.verify_file(str(tmp_path / "instances.json"))
    assert not plugin.verify_file(str(tmp_path / "missing_instances.yml"))


def test_hosts_groups_and_variables(run, hypervisors):
    table, opened = hypervisors
    web = instance("web1", macs=("52:54:00:00:00:01", "52:54:00:00:00:02"))
    table["qemu+ssh://root@compute1/system"] = FakeConnection("compute1.example.org", [
        FakeDomain(web, {SRC_LEASE: lease(("52:54:00:00:00:02", "192.0.2.20"),
                                          ("52:54:00:00:00:01", "2001:db8::10", "192.0.2.10"))}),
        FakeDomain(instance("db1", project="ops", state="shutoff", flavor=None)),
    ])
    inventory, warnings = run({"hypervisors": ["qemu+ssh://root@compute1/system"]})

    assert warnings == []
    assert sorted(inventory.hosts) == ["db1", "web1"]
    assert groups_of(inventory, "web1") == ["hypervisor_compute1", "nimbus_instances", "project_demo", "state_running"]
    assert groups_of(inventory, "db1") == ["hypervisor_compute1", "nimbus_instances", "project_ops", "state_shutoff"]
    web_vars = hostvars(inventory, "web1")
    # The flat variables come from the documented view, which is what the modules return.
    expected = parse_domain_xml(FakeDomain(web).xml, "running").view("compute1")
    assert web_vars["nimbus_instance"] == expected
    assert web_vars["nimbus_instance"]["metadata"] == {"role": "web"}
    assert (web_vars["nimbus_project"], web_vars["nimbus_flavor"], web_vars["nimbus_hypervisor"],
            web_vars["nimbus_state"], web_vars["nimbus_uuid"]) == ("demo", "m1.small", "compute1", "running", web.uuid)
    # First NIC first, whatever order libvirt lists the interfaces in; the first IPv4 is the one to connect to.
    assert web_vars["nimbus_addresses"] == ["2001:db8::10", "192.0.2.10", "192.0.2.20"]
    assert web_vars["ansible_host"] == "192.0.2.10"
    db_vars = hostvars(inventory, "db1")
    assert db_vars["nimbus_flavor"] is None and db_vars["nimbus_addresses"] == []
    assert "ansible_host" not in db_vars
    assert opened == [("qemu+ssh://root@compute1/system", True)]
    assert table["qemu+ssh://root@compute1/system"].closed


def test_stopped_instances_are_not_asked_for_addresses(run, hypervisors):
    table = hypervisors[0]
    dom = FakeDomain(instance("db1", state="shutoff"))
    table["qemu:///system"] = FakeConnection("compute1", [dom])
    run({"hypervisors": ["qemu:///system"]})
    assert dom.asked == []


# Group names are sanitised as by every inventory plugin, whatever TRANSFORM_INVALID_GROUP_CHARS says.
@pytest.mark.parametrize("entry, uri, expected, group", [
    ("qemu+ssh://root@compute1/system", "qemu+ssh://root@compute1/system", "compute1", "hypervisor_compute1"),
    ("qemu+tcp://10.0.0.5/system", "qemu+tcp://10.0.0.5/system", "10.0.0.5", "hypervisor_10_0_0_5"),
    ("qemu+tcp://[fd00::5]:16509/system", "qemu+tcp://[fd00::5]:16509/system", "fd00::5", "hypervisor_fd00__5"),
    ("qemu:///system", "qemu:///system", "libvirt-host", "hypervisor_libvirt_host"),
    ({"uri": "qemu+tcp://10.0.0.5/system", "name": "compute2"}, "qemu+tcp://10.0.0.5/system", "compute2",
     "hypervisor_compute2"),
    ({"uri": "qemu:///system"}, "qemu:///system", "libvirt-host", "hypervisor_libvirt_host"),
])
def test_hypervisor_display_name(run, hypervisors, entry, uri, expected, group):
    hypervisors[0][uri] = FakeConnection("libvirt-host", [FakeDomain(instance("web1"))])
    inventory = run({"hypervisors": [entry]})[0]
    assert hostvars(inventory, "web1")["nimbus_hypervisor"] == expected
    assert hostvars(inventory, "web1")["nimbus_instance"]["hypervisor"] == expected
    assert group in groups_of(inventory, "web1")


@pytest.mark.parametrize("config, expected", [
    ({}, ["a1", "a2", "b1"]),
    ({"projects": ["alpha"]}, ["a1", "a2"]),
    ({"projects": ["alpha", "beta"], "states": ["running"]}, ["a1", "b1"]),
    ({"states": ["shutoff", "paused"]}, ["a2"]),
    ({"include_unmanaged": True}, ["a1", "a2", "b1", "legacy"]),
    ({"include_unmanaged": True, "projects": ["alpha"]}, ["a1", "a2"]),
])
def test_filters(run, hypervisors, config, expected):
    hypervisors[0]["qemu:///system"] = FakeConnection("compute1", [
        FakeDomain(instance("a1", project="alpha")),
        FakeDomain(instance("a2", project="alpha", state="shutoff")),
        FakeDomain(instance("b1", project="beta")),
        FakeDomain(instance("legacy", project="ignored"), managed=False),
    ])
    inventory = run(dict(config, hypervisors=["qemu:///system"]))[0]
    assert sorted(inventory.hosts) == expected


def test_unmanaged_domain_has_no_project(run, hypervisors):
    hypervisors[0]["qemu:///system"] = FakeConnection("compute1", [FakeDomain(instance("legacy"), managed=False)])
    inventory = run({"hypervisors": ["qemu:///system"], "include_unmanaged": True})[0]
    host_vars = hostvars(inventory, "legacy")
    assert (host_vars["nimbus_project"], host_vars["nimbus_flavor"]) == (None, None)
    assert host_vars["nimbus_instance"]["managed"] is False
    assert groups_of(inventory, "legacy") == ["hypervisor_compute1", "nimbus_instances", "state_running"]


def test_unknown_state_is_refused(run, hypervisors):
    hypervisors[0]["qemu:///system"] = FakeConnection("compute1", [])
    with pytest.raises(AnsibleError, match="runing"):
        run({"hypervisors": ["qemu:///system"], "states": ["runing"]})


def test_name_clash_between_hypervisors(run, hypervisors):
    table = hypervisors[0]
    table["qemu+ssh://compute1/system"] = FakeConnection("c1", [FakeDomain(instance("web")),
                                                                FakeDomain(instance("db"))])
    table["qemu+ssh://compute2/system"] = FakeConnection("c2", [FakeDomain(instance("web", project="other"))])
    inventory, warnings = run({"hypervisors": ["qemu+ssh://compute1/system", "qemu+ssh://compute2/system"]})
    assert sorted(inventory.hosts) == ["db", "web@compute1", "web@compute2"]
    assert hostvars(inventory, "web@compute2")["nimbus_project"] == "other"
    assert "project_other" in groups_of(inventory, "web@compute2")
    assert warnings == ["instance web exists on hypervisors compute1, compute2: its hosts are named "
                        "web@compute1, web@compute2"]


def test_hypervisors_with_one_display_name_are_refused(run, hypervisors):
    table = hypervisors[0]
    table["qemu+ssh://compute1/system"] = FakeConnection("compute1", [])
    table["qemu+tcp://10.0.0.5/system"] = FakeConnection("compute1", [])
    with pytest.raises(AnsibleError, match="both named compute1"):
        run({"hypervisors": ["qemu+ssh://compute1/system", {"uri": "qemu+tcp://10.0.0.5/system", "name": "compute1"}]})


def test_unreachable_hypervisor_is_left_out_with_a_warning(run, hypervisors):
    table = hypervisors[0]
    table["qemu+ssh://compute1/system"] = LibvirtError("unable to connect to server at 'compute1:22': No route to host")
    table["qemu+ssh://compute2/system"] = FakeConnection("c2", [FakeDomain(instance("web"))])
    inventory, warnings = run({"hypervisors": ["qemu+ssh://compute1/system", "qemu+ssh://compute2/system"]})
    assert sorted(inventory.hosts) == ["web"]
    assert warnings == ["cannot read the instances of hypervisor qemu+ssh://compute1/system: unable to connect to "
                        "server at 'compute1:22': No route to host"]


def test_unreachable_hypervisor_fails_with_fail_on_errors(run, hypervisors):
    table = hypervisors[0]
    table["qemu+ssh://compute1/system"] = LibvirtError("No route to host")
    table["qemu+ssh://compute2/system"] = FakeConnection("c2", [FakeDomain(instance("web"))])
    with pytest.raises(AnsibleError, match="compute1/system: No route to host"):
        run({"hypervisors": ["qemu+ssh://compute2/system", "qemu+ssh://compute1/system"], "fail_on_errors": True})


def test_domain_undefined_while_listing_is_skipped(run, hypervisors):
    hypervisors[0]["qemu:///system"] = FakeConnection("compute1", [
        FakeDomain(instance("gone"), vanishes=True), FakeDomain(instance("web"))])
    inventory, warnings = run({"hypervisors": ["qemu:///system"]})
    assert sorted(inventory.hosts) == ["web"] and warnings == []


MAC = "52:54:00:00:00:01"


@pytest.mark.parametrize("sources, answers, asked, addresses", [
    # The default: leases, then ARP when the instance is not on a libvirt network.
    (None, {SRC_LEASE: {}, SRC_ARP: lease((MAC, "192.0.2.7"))}, [SRC_LEASE, SRC_ARP], ["192.0.2.7"]),
    (None, {SRC_LEASE: lease((MAC, "192.0.2.5"))}, [SRC_LEASE], ["192.0.2.5"]),
    (None, {SRC_LEASE: LibvirtError("no network"), SRC_ARP: LibvirtError("wrong nlmsg len")},
     [SRC_LEASE, SRC_ARP], []),
    # No guest agent: the error is ignored and the next source asked.
    (["agent", "lease"], {SRC_AGENT: LibvirtError("QEMU guest agent is not configured"),
                          SRC_LEASE: lease((MAC, "192.0.2.5"))}, [SRC_AGENT, SRC_LEASE], ["192.0.2.5"]),
    (["agent", "lease"], {SRC_AGENT: {"lo": {"hwaddr": "00:00:00:00:00:00", "addrs": [
        {"type": 0, "addr": "127.0.0.1", "prefix": 8}, {"type": 1, "addr": "::1", "prefix": 128}]},
        "eth0": {"hwaddr": MAC, "addrs": [{"type": 1, "addr": "fe80::5054:ff:fe00:1", "prefix": 64},
                                          {"type": 0, "addr": "10.1.0.4", "prefix": 24}]}}},
     [SRC_AGENT], ["10.1.0.4"]),
    (["arp"], {SRC_LEASE: lease((MAC, "192.0.2.5"))}, [SRC_ARP], []),
])
def test_address_sources(run, hypervisors, sources, answers, asked, addresses):
    table, opened = hypervisors
    dom = FakeDomain(instance("web"), answers)
    table["qemu:///system"] = FakeConnection("compute1", [dom])
    config = {"hypervisors": ["qemu:///system"]}
    if sources is not None:
        config["address_source"] = sources
    inventory, warnings = run(config)
    assert dom.asked == asked
    assert hostvars(inventory, "web")["nimbus_addresses"] == addresses
    assert hostvars(inventory, "web").get("ansible_host") == (addresses[0] if addresses else None)
    assert warnings == []
    # libvirt refuses guest agent queries on read-only connections.
    assert opened == [("qemu:///system", "agent" not in (sources or []))]


def test_failed_source_is_told_at_vvv(run, hypervisors):
    hypervisors[0]["qemu:///system"] = FakeConnection("compute1", [FakeDomain(instance("web"), {
        SRC_AGENT: LibvirtError("argument unsupported: QEMU guest agent is not configured")})])
    plugin = make_plugin()
    run({"hypervisors": ["qemu:///system"], "address_source": ["agent"]}, plugin=plugin)
    assert plugin.display.verbose == ["nimbus.cloud.instances: no agent addresses for web on compute1: "
                                      "argument unsupported: QEMU guest agent is not configured"]


def test_ipv6_only_instance_has_no_ansible_host(run, hypervisors):
    hypervisors[0]["qemu:///system"] = FakeConnection("compute1", [
        FakeDomain(instance("web"), {SRC_LEASE: lease((MAC, "2001:db8::7"))})])
    inventory = run({"hypervisors": ["qemu:///system"]})[0]
    assert hostvars(inventory, "web")["nimbus_addresses"] == ["2001:db8::7"]
    assert "ansible_host" not in hostvars(inventory, "web")


@pytest.mark.parametrize("interfaces, macs, expected", [
    ({}, [MAC], []),
    (None, [MAC], []),
    ({"vnet0": {"hwaddr": "52:54:00:00:00:09", "addrs": [{"addr": "192.0.2.9"}]},
      "vnet1": {"hwaddr": MAC.upper(), "addrs": [{"addr": "192.0.2.1"}]}}, [MAC, "52:54:00:00:00:09"],
     ["192.0.2.1", "192.0.2.9"]),
    ({"eth9": {"hwaddr": "aa:bb:cc:00:00:01", "addrs": [{"addr": "198.51.100.1"}]},
      "eth0": {"hwaddr": MAC, "addrs": [{"addr": "192.0.2.1"}, {"addr": "192.0.2.1"}]}}, [MAC],
     ["192.0.2.1", "198.51.100.1"]),
    ({"eth0": {"hwaddr": MAC, "addrs": [{"addr": "0.0.0.0"}, {"addr": "169.254.1.1"}, {"addr": "bogus"},
                                        {"addr": None}, {"addr": "2001:db8::1"}]}}, [MAC], ["2001:db8::1"]),
])
def test_ordered_addresses(interfaces, macs, expected):
    assert instances.ordered_addresses(interfaces, macs) == expected


def test_constructed_options(run, hypervisors):
    hypervisors[0]["qemu:///system"] = FakeConnection("compute1", [
        FakeDomain(instance("web", vcpus=1), {SRC_LEASE: lease((MAC, "192.0.2.5"))}),
        FakeDomain(instance("db", vcpus=4, flavor="m1.large")),
    ])
    inventory = run({
        "hypervisors": ["qemu:///system"],
        "keyed_groups": [{"key": "nimbus_flavor", "prefix": "flavor"},
                         {"key": "nimbus_instance.metadata", "prefix": "meta"}],
        "groups": {"big": "nimbus_instance.vcpus > 2"},
        "compose": {"ansible_user": "'debian'", "ansible_host": "nimbus_addresses | last | default(inventory_hostname)"},
    })[0]
    assert groups_of(inventory, "web") == ["flavor_m1_small", "hypervisor_compute1", "meta_role_web",
                                           "nimbus_instances", "project_demo", "state_running"]
    assert "big" in groups_of(inventory, "db") and "flavor_m1_large" in groups_of(inventory, "db")
    assert hostvars(inventory, "web")["ansible_user"] == "debian"
    assert hostvars(inventory, "db")["ansible_host"] == "db"


def test_strict_constructed_fails_on_an_undefined_variable(run, hypervisors):
    hypervisors[0]["qemu:///system"] = FakeConnection("compute1", [FakeDomain(instance("web"))])
    config = {"hypervisors": ["qemu:///system"], "compose": {"x": "no_such_variable.y"}}
    assert "x" not in hostvars(run(config)[0], "web")
    with pytest.raises(AnsibleError):
        run(dict(config, strict=True))


def test_cache_spares_the_hypervisors(run, hypervisors, tmp_path):
    table, opened = hypervisors
    table["qemu:///system"] = FakeConnection("compute1", [FakeDomain(instance("web"))])
    config = {"hypervisors": ["qemu:///system"], "cache": True, "cache_plugin": "jsonfile",
              "cache_connection": str(tmp_path / "cache")}
    plugin = make_plugin()
    # cache=False is how ansible asks for a refresh; the result is stored for the next run.
    run(config, plugin=plugin, cache=False)
    plugin.update_cache_if_changed()
    table["qemu:///system"] = LibvirtError("must not be asked")
    inventory, warnings = run(config, cache=True)
    assert sorted(inventory.hosts) == ["web"] and warnings == []
    assert len(opened) == 1


def test_missing_binding(run, monkeypatch):
    monkeypatch.setattr(lv, "libvirt", None)
    monkeypatch.setattr(lv, "LIBVIRT_IMPORT_ERROR", ImportError("No module named 'libvirt'"))
    with pytest.raises(AnsibleError, match=r"needs the libvirt Python binding \(pip install libvirt-python\)"):
        run({"hypervisors": ["qemu:///system"]})


@pytest.mark.parametrize("entry, message", [
    (42, r"hypervisors\[0\] must be a libvirt URI or a dict"),
    ({"name": "compute1"}, r"hypervisors\[0\]: a libvirt URI is required"),
    ({"uri": "qemu:///system", "host": "x"}, r"hypervisors\[0\]: unknown keys host"),
    ({"uri": "qemu:///system", "name": ""}, r"hypervisors\[0\]: name must be a non-empty string"),
    ("", r"hypervisors\[0\]: a libvirt URI is required"),
])
def test_bad_hypervisor_entries(run, entry, message):
    with pytest.raises(AnsibleError, match=message):
        run({"hypervisors": [entry]})


def test_hypervisor_listed_twice(run):
    with pytest.raises(AnsibleError, match=r"hypervisors\[1\]: qemu:///system is listed twice"):
        run({"hypervisors": ["qemu:///system", {"uri": "qemu:///system", "name": "again"}]})


def test_wrong_plugin_name_is_refused(tmp_path):
    path = tmp_path / "nimbus_instances.yml"
    path.write_text("plugin: community.libvirt.libvirt\nhypervisors: ['qemu:///system']\n")
    with pytest.raises(AnsibleError, match="Incorrect plugin name"):
        make_plugin().parse(InventoryData(), DataLoader(), str(path))


def test_port_addresses_need_no_lookup(run, hypervisors):
    table, opened = hypervisors
    inst = instance("web")
    inst.nics[0].port = {"id": "3f0e2d9c-1b7a-5e44-8c3d-2a1b0c9d8e7f", "name": "web-eth0", "network": "demo-net",
                         "fixed_ips": [{"subnet": "s1", "ip": "10.20.0.11"}], "security_groups": [],
                         "port_security": True}
    dom = FakeDomain(inst, {SRC_LEASE: lease((MAC, "192.0.2.5"))})
    table["qemu:///system"] = FakeConnection("compute1", [dom])
    inventory, warnings = run({"hypervisors": ["qemu:///system"]})
    assert dom.asked == []
    assert hostvars(inventory, "web")["nimbus_addresses"] == ["10.20.0.11"]
    assert hostvars(inventory, "web")["ansible_host"] == "10.20.0.11"
