import dataclasses
import json
import xml.etree.ElementTree as ET

import pytest
import yaml

from ansible_collections.nimbus.cloud.plugins.module_utils import _compute
from ansible_collections.nimbus.cloud.plugins.module_utils._compute import (
    NS,
    Flavor,
    Instance,
    Nic,
    Plan,
    Seed,
    Spec,
    build_domain_xml,
    build_nics,
    mac_for,
    parse_domain_xml,
    plan,
    resolve_flavor,
)
from ansible_collections.nimbus.cloud.plugins.module_utils._errors import ValidationError
from ansible_collections.nimbus.cloud.plugins.module_utils._names import normalise_mac, validate_name

try:
    from hypothesis import given
    from hypothesis import strategies as st
except ImportError:
    # The ansible-core 2.17 environment of tools/test has no hypothesis.
    st = None

U1 = "6f1c1f0e-8a7b-4b8e-9a57-0d0c0e6a7c11"
U2 = "0b7f3e56-5c6e-4d27-9c53-7f6b1b0c1a11"
PATHS = {"dir": "/srv/instances/web1", "root_disk": "/srv/instances/web1/disk.qcow2",
         "seed": "/srv/instances/web1/seed.iso", "console_log": "/srv/instances/web1/console.log"}
SMALL = Flavor(vcpus=1, ram_mb=1024, disk_gb=10, name="m1.small")
MEDIUM = Flavor(vcpus=2, ram_mb=2048, disk_gb=20, name="m1.medium")
SEED = Seed(hostname="web1", user_data="#cloud-config\n{}\n", ssh_authorized_keys=["ssh-ed25519 AAAA k"])


def full_spec(**changes):
    fields = dict(name="web1", flavor=SMALL, image="debian-12.qcow2", nics=[Nic("br0")], seed=SEED,
                  project="demo", metadata={"role": "web"})
    fields.update(changes)
    return Spec(**fields)


def existing(state="running", **changes):
    """An instance as libvirt hands it back after a create from full_spec."""
    after = plan(full_spec(state="stopped", **changes), None, "kvm", U1, PATHS).after
    return parse_domain_xml(build_domain_xml(after, PATHS), state)


def raises(fragment):
    return pytest.raises(ValidationError, match=fragment)


# --- input ------------------------------------------------------------------

@pytest.mark.parametrize("name", ["a", "web1", "Web-1.example_2", "1st", "w" * 63])
def test_valid_names(name):
    assert validate_name(name) == name


@pytest.mark.parametrize("name", ["", "-web", ".web", "_web", "web 1", "web/1", "../web", "w" * 64, "wéb", None, 7])
def test_invalid_names(name):
    with raises("invalid instance name"):
        validate_name(name)


@pytest.mark.parametrize("given, expected", [
    ("52:54:00:ab:cd:ef", "52:54:00:ab:cd:ef"),
    ("52:54:00:AB:CD:EF", "52:54:00:ab:cd:ef"),
    ("52-54-00-ab-cd-ef", "52:54:00:ab:cd:ef"),
    (" 52:54:00:ab:cd:ef\n", "52:54:00:ab:cd:ef"),
    ("02:00:00:00:00:01", "02:00:00:00:00:01"),
])
def test_mac_addresses_are_normalised(given, expected):
    assert normalise_mac(given, "nics[0]") == expected


@pytest.mark.parametrize("given, message", [
    ("52:54:00:ab:cd", "is not a MAC address"),
    ("52:54:00:ab:cd:eg", "is not a MAC address"),
    ("5254.00ab.cdef", "is not a MAC address"),
    ("52:54:00:ab:cd:ef:01", "is not a MAC address"),
    ("01:00:5e:00:00:01", "multicast"),
    ("ff:ff:ff:ff:ff:ff", "multicast"),
    ("33:33:00:00:00:01", "multicast"),
])
def test_bad_mac_addresses(given, message):
    with raises("nics\\[2\\]: .*" + message):
        normalise_mac(given, "nics[2]")


CATALOGUE = {
    "m1.small": {"vcpus": 1, "ram_mb": 1024, "disk_gb": 10},
    "c1.pinned": {"vcpus": 4, "ram_mb": 4096, "extra_specs": {
        "hw:cpu_mode": "host-passthrough", "hw:cpu_sockets": 1, "hw:cpu_cores": 2, "hw:cpu_threads": 2,
        "aggregate_instance_extra_specs:ssd": True}},
}


@pytest.mark.parametrize("flavor, expected", [
    (None, None),
    ("m1.small", Flavor(1, 1024, 10, "m1.small")),
    ({"vcpus": 2, "ram_mb": 2048}, Flavor(2, 2048, 0, None)),
    ({"vcpus": "2", "ram_mb": "2048", "disk_gb": "5"}, Flavor(2, 2048, 5, None)),
    ({"name": "custom", "vcpus": 1, "ram_mb": 16}, Flavor(1, 16, 0, "custom")),
    ("c1.pinned", Flavor(4, 4096, 0, "c1.pinned", {
        "hw:cpu_mode": "host-passthrough", "hw:cpu_sockets": "1", "hw:cpu_cores": "2", "hw:cpu_threads": "2",
        "aggregate_instance_extra_specs:ssd": "True"})),
    ({"vcpus": 2, "ram_mb": 512, "extra_specs": {"hw:cpu_mode": "custom", "hw:cpu_model": "Haswell"}},
     Flavor(2, 512, 0, None, {"hw:cpu_mode": "custom", "hw:cpu_model": "Haswell"})),
    ({"vcpus": 6, "ram_mb": 512, "extra_specs": {"hw:cpu_sockets": 2, "hw:cpu_cores": 3}},
     Flavor(6, 512, 0, None, {"hw:cpu_sockets": "2", "hw:cpu_cores": "3"})),
], ids=["none", "by name", "dict", "strings", "named dict", "topology", "custom model", "partial topology"])
def test_resolve_flavor(flavor, expected):
    assert resolve_flavor(flavor, CATALOGUE) == expected


@pytest.mark.parametrize("flavor, catalogue, message", [
    ("m9.giant", CATALOGUE, r"unknown flavor 'm9.giant' \(known flavors: c1.pinned, m1.small\)"),
    ("m1.small", {}, r"unknown flavor 'm1.small' \(known flavors: none defined\)"),
    ("m1.small", None, "none defined"),
    (["m1.small"], CATALOGUE, "must be a flavor name or a dict"),
    (2, CATALOGUE, "must be a flavor name or a dict"),
    ({"vcpus": 1, "ram_mb": 512, "ram": 1}, CATALOGUE, "unknown keys ram"),
    ({"ram_mb": 512}, CATALOGUE, "vcpus must be an integer, got None"),
    ({"vcpus": "two", "ram_mb": 512}, CATALOGUE, "vcpus must be an integer, got 'two'"),
    ({"vcpus": 0, "ram_mb": 512}, CATALOGUE, "vcpus must be at least 1, got 0"),
    ({"vcpus": 1, "ram_mb": 8}, CATALOGUE, "ram_mb must be at least 16, got 8"),
    ({"vcpus": 1, "ram_mb": 512, "disk_gb": -1}, CATALOGUE, "disk_gb must be at least 0, got -1"),
    ({"vcpus": 1, "ram_mb": 512, "extra_specs": {"hw:numa_nodes": 2}}, CATALOGUE,
     "unsupported extra spec hw:numa_nodes"),
    ({"vcpus": 1, "ram_mb": 512, "extra_specs": {"hw:cpu_mode": "host"}}, CATALOGUE,
     "hw:cpu_mode must be one of host-model, host-passthrough, custom"),
    ({"vcpus": 4, "ram_mb": 512, "extra_specs": {"hw:cpu_sockets": "two"}}, CATALOGUE, "must be integers"),
    ({"vcpus": 4, "ram_mb": 512, "extra_specs": {"hw:cpu_sockets": 2, "hw:cpu_threads": 3}}, CATALOGUE,
     r"sockets x cores x threads \(6\) must equal vcpus \(4\)"),
])
def test_resolve_flavor_refuses(flavor, catalogue, message):
    with raises(message):
        resolve_flavor(flavor, catalogue)


def test_build_nics():
    assert build_nics(None) is None
    assert build_nics([]) == []
    assert build_nics([{"bridge": "br0"}, {"bridge": "br1", "mac": "52-54-00-AA-BB-CC", "model": "e1000"},
                       {"bridge": "br0", "mac": None, "model": None}]) == [
        Nic("br0"), Nic("br1", "52:54:00:aa:bb:cc", "e1000"), Nic("br0")]


@pytest.mark.parametrize("nics, message", [
    ([{"bridge": ""}], r"nics\[0\]: give a bridge or a port"),
    ([{"bridge": "br0"}, {"mac": "52:54:00:00:00:01"}], r"nics\[1\]: give a bridge or a port"),
    ([{"bridge": "br0", "mac": "52:54:00:00:00:01"}, {"bridge": "br1", "mac": "52:54:00:00:00:01"}],
     r"nics\[1\]: MAC 52:54:00:00:00:01 is given twice"),
    ([{"bridge": "br0", "mac": "nope"}], r"nics\[0\]: 'nope' is not a MAC address"),
])
def test_build_nics_refuses(nics, message):
    with raises(message):
        build_nics(nics)


def test_derived_macs_are_stable_local_unicast_and_distinct():
    macs = [mac_for(U1, i) for i in range(4)] + [mac_for(U2, 0)]
    assert macs[:4] == [mac_for(U1, i) for i in range(4)]
    assert len(set(macs)) == len(macs)
    for mac in macs:
        assert mac.startswith("52:54:00:") and normalise_mac(mac, "derived") == mac


# --- seed -------------------------------------------------------------------

def test_seed_files():
    seed = Seed(hostname='web1 "quoted": #1', user_data="#cloud-config\npackages: [nginx]\n",
                ssh_authorized_keys=["ssh-ed25519 AAAA one", "ssh-rsa BBBB two: #x"],
                network_config={"version": 2, "ethernets": {"eth0": {"dhcp4": True}}})
    files = seed.files(U1)
    assert sorted(files) == ["meta-data", "network-config", "user-data"]
    assert yaml.safe_load(files["meta-data"]) == {
        "instance-id": U1, "local-hostname": 'web1 "quoted": #1',
        "public-keys": ["ssh-ed25519 AAAA one", "ssh-rsa BBBB two: #x"]}
    assert files["user-data"] == b"#cloud-config\npackages: [nginx]\n"
    assert json.loads(files["network-config"]) == {"version": 2, "ethernets": {"eth0": {"dhcp4": True}}}


def test_minimal_seed_is_an_empty_cloud_config():
    files = Seed(hostname="web1").files(U1)
    assert sorted(files) == ["meta-data", "user-data"]
    assert yaml.safe_load(files["meta-data"]) == {"instance-id": U1, "local-hostname": "web1"}
    assert yaml.safe_load(files["user-data"]) == {}


@pytest.mark.parametrize("other, instance_id", [
    (dataclasses.replace(SEED), U2),
    (dataclasses.replace(SEED, hostname="web2"), U1),
    (dataclasses.replace(SEED, user_data="#cloud-config\npackages: [vim]\n"), U1),
    (dataclasses.replace(SEED, ssh_authorized_keys=[]), U1),
    (dataclasses.replace(SEED, network_config={"version": 2}), U1),
], ids=["instance id", "hostname", "user data", "keys", "network"])
def test_seed_digest_follows_every_input(other, instance_id):
    assert SEED.digest(U1) == dataclasses.replace(SEED).digest(U1)
    assert other.digest(instance_id) != SEED.digest(U1)
    assert len(SEED.digest(U1)) == 64


# --- domain XML -------------------------------------------------------------

def created(**changes):
    return plan(full_spec(**changes), None, "qemu", U1, PATHS).after


def test_domain_xml():
    dom = ET.fromstring(build_domain_xml(created(), dict(PATHS, vnc=True)))
    assert dom.get("type") == "qemu" and dom.findtext("name") == "web1" and dom.findtext("uuid") == U1
    assert (dom.findtext("memory"), dom.find("memory").get("unit"), dom.findtext("vcpu")) == ("1024", "MiB", "1")
    assert dom.find("os/boot").get("dev") == "hd" and dom.find("os/kernel") is None
    # TCG without CPU extra specs: QEMU's default model, no <cpu> at all.
    assert dom.find("cpu") is None
    disks = dom.findall("devices/disk")
    assert [(d.find("source").get("file"), d.find("target").get("dev"), d.find("readonly") is not None)
            for d in disks] == [(PATHS["root_disk"], "vda", False), (PATHS["seed"], "vdb", True)]
    assert [d.find("driver").get("type") for d in disks] == ["qcow2", "raw"]
    iface = dom.find("devices/interface")
    assert (iface.get("type"), iface.find("mac").get("address"), iface.find("source").get("bridge"),
            iface.find("model").get("type")) == ("bridge", mac_for(U1, 0), "br0", "virtio")
    assert dom.find("devices/serial/log").get("file") == PATHS["console_log"]
    gfx = dom.find("devices/graphics")
    assert (gfx.get("type"), gfx.get("listen"), gfx.find("listen").get("address")) == ("vnc", "127.0.0.1",
                                                                                       "127.0.0.1")
    meta = dom.find("metadata/{%s}instance" % NS)
    assert meta.findtext("{%s}project" % NS) == "demo" and meta.findtext("{%s}image" % NS) == "debian-12.qcow2"
    assert meta.find("{%s}seed" % NS).get("sha256") == SEED.digest(U1)


def test_domain_xml_metadata_uses_the_collection_namespace():
    text = build_domain_xml(created(), PATHS)
    assert 'xmlns:nimbus="%s"' % NS in text and "<nimbus:instance>" in text


def test_domain_xml_without_vnc_or_seed():
    inst = created(seed=None)
    inst.vnc = False
    dom = ET.fromstring(build_domain_xml(inst, PATHS))
    assert dom.find("devices/graphics") is None
    assert [d.find("target").get("dev") for d in dom.findall("devices/disk")] == ["vda"]


VOLUME = "4d1c5b8e-2f59-4c1b-9a0e-6f7d9a3b2c11"


def test_an_attached_volume_is_a_network_disk_read_back_and_kept_by_a_redefinition():
    inst = created()
    disk = _compute.VolumeDisk(volume_id=VOLUME, device="vdc", portal="10.0.20.5:3260",
                               iqn="iqn.2026-12.cloud.nimbus:volume-" + VOLUME, lun=1, username="nimbus-4d1c5b8e")
    element = ET.fromstring(disk.xml())
    assert (element.get("type"), element.find("driver").get("type"), element.find("driver").get("cache")) == (
        "network", "raw", "none")
    source = element.find("source")
    assert (source.get("protocol"), source.get("name")) == ("iscsi", "iqn.2026-12.cloud.nimbus:volume-%s/1" % VOLUME)
    assert (source.find("host").get("name"), source.find("host").get("port")) == ("10.0.20.5", "3260")
    auth = source.find("auth")
    assert auth.get("username") == "nimbus-4d1c5b8e"
    assert (auth.find("secret").get("type"), auth.find("secret").get("usage")) == ("iscsi", "nimbus-volume-" + VOLUME)
    # no secret value anywhere in the XML
    assert "value" not in disk.xml() and element.findtext("serial") == VOLUME
    inst.volumes.append(disk)
    back = parse_domain_xml(build_domain_xml(inst, PATHS), "running")
    assert back.volumes == [disk]
    assert back.root_disk == PATHS["root_disk"] and back.seed_path == PATHS["seed"]
    assert back.view()["disks"][-1] == {"device": "vdc", "role": "volume", "volume_id": VOLUME,
                                        "target": "iscsi://10.0.20.5:3260/iqn.2026-12.cloud.nimbus:volume-%s/1"
                                                  % VOLUME}
    # A change that redefines the domain (more memory) keeps the attached volume.
    stopped = dataclasses.replace(back, state="shutoff")
    result = plan(full_spec(state="stopped", flavor=dataclasses.replace(created().flavor, ram_mb=2048)), stopped,
                  "qemu", U1, PATHS)
    assert result.redefine and result.after.volumes == [disk]
    assert ET.fromstring(build_domain_xml(result.after, PATHS)).find("devices/disk/serial").text == VOLUME


def test_a_boot_volume_is_vda_read_back_apart_from_the_attached_ones():
    boot = _compute.VolumeDisk(volume_id=VOLUME, device="vda", portal="10.0.20.5:3260",
                               iqn="iqn.2026-12.cloud.nimbus:volume-" + VOLUME, username="nimbus-4d1c5b8e")
    attached = _compute.VolumeDisk(volume_id=U1, device="vdc", portal="10.0.20.5:3260", iqn="iqn.2026-12.x:v")
    inst = dataclasses.replace(created(), root_disk=None, image=None, boot_volume=boot, volumes=[attached])
    dom = ET.fromstring(build_domain_xml(inst, PATHS))
    # Booted by its own boot order, not <os><boot>; no disk file at all.
    assert dom.find("os/boot") is None and dom.find("devices/disk[@type='file']/target[@dev='vda']") is None
    assert dom.find("devices/disk/boot").get("order") == "1"
    back = parse_domain_xml(build_domain_xml(inst, PATHS), "running")
    assert (back.boot_volume, back.volumes, back.root_disk) == (boot, [attached], None)
    disks = [(d["device"], d["role"]) for d in back.view()["disks"]]
    assert disks == [("vda", "root"), ("vdb", "seed"), ("vdc", "volume")]
    # With a kernel of its own, libvirt boots that: no boot order on the disk.
    kernel = dataclasses.replace(inst, kernel="/boot/vmlinuz")
    assert ET.fromstring(build_domain_xml(kernel, PATHS)).find("devices/disk/boot") is None
    # The flavor's disk does not apply to it: a larger one is no change, a smaller one no refusal.
    for disk_gb in (50, 1):
        stopped = dataclasses.replace(back, state="shutoff")
        result = plan(full_spec(state="stopped", image=None, flavor=dataclasses.replace(created().flavor,
                                                                                        disk_gb=disk_gb)),
                      stopped, "qemu", U1, PATHS)
        assert "disk_grow" not in result.changed_fields and "disk_shrink" not in result.changed_fields
        assert result.grow_disk_gb is None and result.after.boot_volume == boot


def test_an_ipv6_portal_is_read_back_with_brackets():
    disk = _compute.VolumeDisk(volume_id=VOLUME, device="vdb", portal="[fd00::5]:3260", iqn="iqn.2026-12.x:v")
    back = _compute.VolumeDisk.parse(ET.fromstring(disk.xml()))
    assert back.portal == "[fd00::5]:3260" and back.username is None
    assert ET.fromstring(disk.xml()).find("source/host").get("name") == "fd00::5"


def test_direct_kernel_boot():
    inst = created(kernel="/boot/vmlinuz", initrd="/boot/initrd.img", kernel_args="console=ttyS0 root=/dev/vda1")
    dom = ET.fromstring(build_domain_xml(inst, PATHS))
    assert dom.find("os/boot") is None
    assert [(el.tag, el.text) for el in dom.find("os")][1:] == [
        ("kernel", "/boot/vmlinuz"), ("initrd", "/boot/initrd.img"), ("cmdline", "console=ttyS0 root=/dev/vda1")]


@pytest.mark.parametrize("virt_type, specs, expected", [
    ("qemu", {}, None),
    ("kvm", {}, {"mode": "host-model"}),
    ("kvm", {"hw:cpu_mode": "host-passthrough"}, {"mode": "host-passthrough"}),
    ("qemu", {"hw:cpu_mode": "custom"}, {"mode": "custom", "model": "qemu64"}),
    ("kvm", {"hw:cpu_mode": "custom", "hw:cpu_model": "Haswell-noTSX"}, {"mode": "custom", "model": "Haswell-noTSX"}),
    ("qemu", {"hw:cpu_sockets": "2", "hw:cpu_threads": "2"},
     {"topology": {"sockets": "2", "dies": "1", "cores": "1", "threads": "2"}}),
    ("kvm", {"hw:cpu_cores": "4"},
     {"mode": "host-model", "topology": {"sockets": "1", "dies": "1", "cores": "4", "threads": "1"}}),
])
def test_cpu_element(virt_type, specs, expected):
    cpu = _compute._cpu_element(virt_type, specs)
    if expected is None:
        assert cpu is None
        return
    assert cpu.get("mode") == expected.get("mode")
    model = cpu.find("model")
    assert (model.text if model is not None else None) == expected.get("model")
    if model is not None:
        assert model.get("fallback") == "allow"
    topology = cpu.find("topology")
    assert (dict(topology.attrib) if topology is not None else None) == expected.get("topology")


@pytest.mark.parametrize("changes", [
    {},
    {"seed": None, "metadata": {}, "project": None},
    {"kernel": "/boot/vmlinuz", "initrd": "/boot/initrd.img", "kernel_args": "console=ttyS0"},
    {"nics": [Nic("br0", "52:54:00:12:34:56", "e1000"), Nic("br1", None, "rtl8139")], "server_group": "web"},
    {"flavor": Flavor(4, 4096, 40, "c1", {"hw:cpu_mode": "custom", "hw:cpu_model": "Haswell", "quota:x": ""})},
    {"metadata": {"a&b": "<x y='1'>\"&amp;\"</x>", "multi": "line 1\nline 2\ttab", "empty": "", "ünï": "cödé"},
     "project": "p & q", "server_group": "g<1>"},
], ids=["full", "bare", "kernel", "nics", "flavor", "escaping"])
def test_domain_xml_round_trip(changes):
    inst = created(**changes)
    assert parse_domain_xml(build_domain_xml(inst, PATHS), "running") == inst


def test_parse_libvirt_domain():
    text = """<domain type='kvm' id='3'>
      <name>web1</name><uuid>%s</uuid>
      <metadata><nimbus:instance xmlns:nimbus="%s"><nimbus:project>demo</nimbus:project>
        <nimbus:flavor name="m1.small" vcpus="1" ram_mb="1024" disk_gb="10"/>
        <nimbus:image>debian-12.qcow2</nimbus:image></nimbus:instance>
        <other:thing xmlns:other="https://example.org/other">kept apart</other:thing></metadata>
      <memory unit='KiB'>1048576</memory><currentMemory unit='KiB'>1048576</currentMemory>
      <vcpu placement='static'>1</vcpu>
      <devices>
        <disk type='file' device='disk'><source file='/srv/web1/disk.qcow2'/><target dev='vda' bus='virtio'/></disk>
        <disk type='file' device='cdrom'><source file='/srv/iso/tools.iso'/><target dev='vdb' bus='virtio'/></disk>
        <interface type='bridge'><mac address='52:54:00:AB:CD:EF'/><source bridge='br0'/>
          <target dev='vnet7'/><model type='virtio'/></interface>
        <interface type='network'><mac address='52:54:00:00:00:02'/></interface>
        <serial type='pty'><log file='/srv/web1/console.log' append='on'/></serial>
        <graphics type='vnc' port='5907' autoport='yes' listen='127.0.0.1'/>
      </devices></domain>""" % (U1, NS)
    inst = parse_domain_xml(text, "running")
    assert (inst.name, inst.uuid, inst.virt_type, inst.state, inst.vcpus, inst.ram_mb) == (
        "web1", U1, "kvm", "running", 1, 1024)
    assert (inst.root_disk, inst.seed_path, inst.console_log, inst.vnc_port) == (
        "/srv/web1/disk.qcow2", None, "/srv/web1/console.log", 5907)
    assert inst.nics == [Nic("br0", "52:54:00:ab:cd:ef", "virtio", "vnet7"), Nic(None, "52:54:00:00:00:02")]
    assert (inst.managed, inst.project, inst.flavor, inst.image) == (True, "demo", SMALL, "debian-12.qcow2")
    assert (inst.server_group, inst.seed_digest, inst.metadata) == (None, None, {})


def test_parse_domain_made_elsewhere():
    inst = parse_domain_xml("<domain type='qemu'><name>legacy</name><uuid>%s</uuid>"
                            "<memory>524288</memory><vcpu>2</vcpu>"
                            "<devices><graphics type='vnc' port='-1' autoport='yes'/></devices></domain>" % U2)
    assert (inst.managed, inst.state, inst.ram_mb, inst.vcpus, inst.vnc_port) == (False, "shutoff", 512, 2, None)
    assert (inst.project, inst.flavor, inst.metadata, inst.nics) == (None, None, {}, [])
    assert inst.view("compute1")["managed"] is False


@pytest.mark.parametrize("value, unit, mib", [
    (1048576, "KiB", 1024),
    (1048576, "k", 1024),
    (2048, "MiB", 2048),
    (2048, "M", 2048),
    (2, "GiB", 2048),
    (2, "G", 2048),
    (1073741824, "bytes", 1024),
    (1073741824, "b", 1024),
    (1048576, "KB", 1000),
    (1000, "MB", 954),
    (1, "GB", 954),
])
def test_memory_units(value, unit, mib):
    assert _compute._to_mib(value, unit) == mib


def test_view_never_holds_seed_contents():
    inst = created(seed=Seed("web1", user_data="#cloud-config\npassword: hunter2\n"))
    text = json.dumps(inst.view("compute1"))
    assert "hunter2" not in text and inst.seed_digest in text


# --- plan -------------------------------------------------------------------

def expect(create=False, delete=False, recreate=False, redefine=False, update_metadata=False, write_seed=False,
           grow_disk_gb=None, power=(), changed_fields=(), state=None):
    return dict(create=create, delete=delete, recreate=recreate, redefine=redefine, update_metadata=update_metadata,
                write_seed=write_seed, grow_disk_gb=grow_disk_gb, power=list(power),
                changed_fields=list(changed_fields), state=state)


def outcome(result):
    fields = {k: getattr(result, k) for k in ("create", "delete", "recreate", "redefine", "update_metadata",
                                              "write_seed", "grow_disk_gb", "power", "changed_fields")}
    fields["state"] = result.after.state if result.after else None
    return fields


OTHER_SEED = dataclasses.replace(SEED, user_data="#cloud-config\npackages: [vim]\n")
BIGGER_DISK = dataclasses.replace(SMALL, disk_gb=20)
SMALLER_DISK = dataclasses.replace(SMALL, disk_gb=5)
PINNED = dataclasses.replace(SMALL, extra_specs={"hw:cpu_mode": "host-passthrough"})

# id: (actual state, spec changes, plan options, expected outcome)
PLANS = {
    "nothing given": ("running", dict(name="web1"), {}, expect(state="running")),
    "same again": ("running", {}, {}, expect(state="running")),
    "same again, stopped": ("shutoff", {}, {}, expect(state="shutoff")),
    "MACs left out are kept": ("running", dict(nics=[Nic("br0")]), {}, expect(state="running")),
    "metadata": ("running", dict(metadata={"role": "db"}), {},
                 expect(update_metadata=True, changed_fields=["metadata"], state="running")),
    "metadata cleared": ("running", dict(metadata={}), {},
                         expect(update_metadata=True, changed_fields=["metadata"], state="running")),
    "project": ("running", dict(project="ops"), {},
                expect(update_metadata=True, changed_fields=["project"], state="running")),
    "server group": ("running", dict(server_group="web"), {},
                     expect(update_metadata=True, changed_fields=["server_group"], state="running")),
    "empty server group": ("running", dict(server_group=""), {}, expect(state="running")),
    "flavor renamed while running": ("running", dict(flavor=dataclasses.replace(SMALL, name="m1.renamed")), {},
                                     expect(update_metadata=True, changed_fields=["flavor_name"], state="running")),
    "vnc removed while stopped": ("shutoff", dict(vnc=False), {},
                                  expect(redefine=True, changed_fields=["vnc"], state="shutoff")),
    "vnc left out": ("running", dict(vnc=None), {}, expect(state="running")),
    "empty kernel": ("running", dict(kernel="", kernel_args=""), {}, expect(state="running")),
    "new seed while running": ("running", dict(seed=OTHER_SEED), {},
                               expect(update_metadata=True, write_seed=True, changed_fields=["seed_digest"],
                                      state="running")),
    "stop": ("running", dict(state="stopped"), {}, expect(power=["stop"], state="shutoff")),
    "stop a paused one": ("paused", dict(state="stopped"), {}, expect(power=["stop"], state="shutoff")),
    "start": ("shutoff", dict(state="running"), {}, expect(power=["start"], state="running")),
    "start a crashed one": ("crashed", dict(state="running"), {}, expect(power=["start"], state="running")),
    "present keeps it stopped": ("shutoff", dict(state="present"), {}, expect(state="shutoff")),
    "present keeps it paused": ("paused", dict(state="present"), {}, expect(state="paused")),
    "resume": ("paused", dict(state="running"), {}, expect(power=["resume"], state="running")),
    "wake": ("pmsuspended", dict(state="running"), {}, expect(power=["resume"], state="running")),
    "flavor while stopped": ("shutoff", dict(flavor=MEDIUM), {},
                             expect(redefine=True, update_metadata=True, grow_disk_gb=20, state="shutoff",
                                    changed_fields=["vcpus", "ram_mb", "flavor_name", "disk_grow"])),
    "flavor and start": ("shutoff", dict(flavor=MEDIUM, state="running"), {},
                         expect(redefine=True, update_metadata=True, grow_disk_gb=20, power=["start"], state="running",
                                changed_fields=["vcpus", "ram_mb", "flavor_name", "disk_grow"])),
    "flavor with restart": ("running", dict(flavor=MEDIUM), dict(allow_restart=True),
                            expect(redefine=True, update_metadata=True, grow_disk_gb=20, power=["stop", "start"], state="running",
                                   changed_fields=["vcpus", "ram_mb", "flavor_name", "disk_grow"])),
    "flavor while stopping": ("running", dict(flavor=MEDIUM, state="stopped"), {},
                              expect(redefine=True, update_metadata=True, grow_disk_gb=20, power=["stop"], state="shutoff",
                                     changed_fields=["vcpus", "ram_mb", "flavor_name", "disk_grow"])),
    "restart allowed but stopping": ("running", dict(flavor=MEDIUM, state="stopped"), dict(allow_restart=True),
                                     expect(redefine=True, update_metadata=True, grow_disk_gb=20, power=["stop"], state="shutoff",
                                            changed_fields=["vcpus", "ram_mb", "flavor_name", "disk_grow"])),
    "bigger disk only": ("shutoff", dict(flavor=BIGGER_DISK), {},
                         expect(redefine=True, grow_disk_gb=20, changed_fields=["disk_grow"], state="shutoff")),
    "extra specs": ("shutoff", dict(flavor=PINNED), {},
                    expect(redefine=True, changed_fields=["flavor"], state="shutoff")),
    "kernel": ("shutoff", dict(kernel="/boot/vmlinuz", kernel_args="console=ttyS0"), {},
               expect(redefine=True, changed_fields=["kernel", "kernel_args"], state="shutoff")),
    "live and offline at once": ("running", dict(flavor=MEDIUM, metadata={"role": "db"}), dict(allow_restart=True),
                                 expect(redefine=True, update_metadata=True, grow_disk_gb=20, power=["stop", "start"],
                                        state="running",
                                        changed_fields=["metadata", "vcpus", "ram_mb", "flavor_name", "disk_grow"])),
    "recreate for an image": ("running", dict(image="debian-13.qcow2"), dict(recreate=True),
                              expect(recreate=True, write_seed=True, power=["start"], changed_fields=["image"],
                                     state="running")),
    "recreate stopped": ("shutoff", dict(nics=[Nic("br1")]), dict(recreate=True),
                         expect(recreate=True, write_seed=True, changed_fields=["nics"], state="shutoff")),
    "recreate and start": ("shutoff", dict(flavor=SMALLER_DISK, state="running"), dict(recreate=True),
                           expect(recreate=True, write_seed=True, power=["start"], changed_fields=["disk_shrink"],
                                  state="running")),
    "recreate and stop": ("running", dict(image="debian-13.qcow2", state="stopped"), dict(recreate=True),
                          expect(recreate=True, write_seed=True, changed_fields=["image"], state="shutoff")),
    "recreate not needed": ("running", dict(metadata={"role": "db"}), dict(recreate=True),
                            expect(update_metadata=True, changed_fields=["metadata"], state="running")),
    "delete": ("running", dict(state="absent"), {}, expect(delete=True)),
    "delete stopped": ("shutoff", dict(state="absent"), {}, expect(delete=True)),
}


@pytest.mark.parametrize("state, changes, options, expected", PLANS.values(), ids=list(PLANS))
def test_plan(state, changes, options, expected):
    spec = Spec(**changes) if "name" in changes else full_spec(**changes)
    result = plan(spec, existing(state), "kvm", U2, PATHS, **options)
    assert outcome(result) == expected
    assert result.changed is any(v for k, v in expected.items() if k != "state" and k != "changed_fields")
    if result.after is not None:
        assert result.after.uuid == U1


# id: (actual state, spec changes, plan options, message)
REFUSALS = {
    "offline field while running": ("running", dict(flavor=MEDIUM), {},
                                    "web1 is running: vcpus, ram_mb, disk_gb \\(grow\\) can only change while "
                                    "it is stopped; set state=stopped first, or allow_restart=true"),
    "kernel while paused": ("paused", dict(kernel="/boot/vmlinuz"), {}, "web1 is paused: kernel can only change"),
    "image": ("shutoff", dict(image="debian-13.qcow2"), {}, "image cannot change on an existing instance; "
              "set recreate=true to replace it \\(its disk is rebuilt from the image\\)"),
    "NIC bridge": ("shutoff", dict(nics=[Nic("br1")]), {}, "NICs cannot change"),
    "NIC model": ("shutoff", dict(nics=[Nic("br0", model="e1000")]), {}, "NICs cannot change"),
    "NIC added": ("shutoff", dict(nics=[Nic("br0"), Nic("br1")]), {}, "NICs cannot change"),
    "NIC MAC": ("shutoff", dict(nics=[Nic("br0", "52:54:00:12:34:56")]), {}, "NICs cannot change"),
    "smaller disk": ("shutoff", dict(flavor=SMALLER_DISK), {}, "disk_gb \\(shrink\\) cannot change"),
    "vnc removed while running": ("running", dict(vnc=False), {}, "vnc can only change while it is stopped"),
    "fixed beats allow_restart": ("running", dict(image="debian-13.qcow2", flavor=MEDIUM), dict(allow_restart=True),
                                  "image cannot change"),
    "recreate without the seed": ("running", dict(name="web1", image="debian-13.qcow2"), dict(recreate=True),
                                  "recreate rebuilds its cloud-init seed as well; give cloud_init"),
}


@pytest.mark.parametrize("state, changes, options, message", REFUSALS.values(), ids=list(REFUSALS))
def test_plan_refuses(state, changes, options, message):
    spec = Spec(**changes) if "name" in changes else full_spec(**changes)
    with raises(message) as info:
        plan(spec, existing(state), "kvm", U2, PATHS, **options)
    assert info.value.details["fields"]


def test_adding_a_seed_disk_needs_the_instance_stopped():
    with raises("cloud_init \\(adding the seed disk\\) can only change while it is stopped") as info:
        plan(full_spec(), existing("running", seed=None), "kvm", U2, PATHS)
    assert info.value.details["fields"] == ["seed_disk"]


def test_adding_a_seed_to_a_stopped_instance():
    result = plan(full_spec(), existing("shutoff", seed=None), "kvm", U2, PATHS)
    assert outcome(result) == expect(redefine=True, update_metadata=True, write_seed=True, state="shutoff",
                                     changed_fields=["seed_digest", "seed_disk"])
    assert result.after.seed_path == PATHS["seed"]


@pytest.mark.parametrize("state, power", [("present", ["start"]), ("running", ["start"]), ("stopped", [])])
def test_plan_create(state, power):
    result = plan(full_spec(state=state), None, "kvm", U2, PATHS)
    assert outcome(result) == expect(create=True, write_seed=True, power=power,
                                     state="running" if power else "shutoff")
    after = result.after
    assert (after.uuid, after.virt_type, after.project, after.root_disk, after.console_log) == (
        U2, "kvm", "demo", PATHS["root_disk"], PATHS["console_log"])
    assert [n.mac for n in after.nics] == [mac_for(U2, 0)]


def test_plan_create_defaults():
    result = plan(Spec(name="web1", flavor=SMALL, image="debian-12.qcow2"), None, "qemu", U2, PATHS)
    assert outcome(result) == expect(create=True, power=["start"], state="running")
    assert (result.after.project, result.after.metadata, result.after.nics, result.after.seed_path) == (
        "default", {}, [], None)


@pytest.mark.parametrize("spec, message", [
    (Spec(name="web1", image="debian-12.qcow2"), r"flavor and image \(or boot_volume\) are required to create instance web1"),
    (Spec(name="web1", flavor=SMALL), r"flavor and image \(or boot_volume\) are required"),
])
def test_plan_create_needs_flavor_and_image(spec, message):
    with raises(message):
        plan(spec, None, "kvm", U2, PATHS)


def test_plan_delete_of_nothing_is_no_change():
    result = plan(Spec(name="web1", state="absent"), None, "kvm", U2, PATHS)
    assert not result.changed and result.after is None


@pytest.mark.parametrize("state", ["present", "stopped", "absent"])
def test_plan_refuses_domains_made_elsewhere(state):
    actual = dataclasses.replace(existing("running"), managed=False)
    with raises("domain web1 exists but was not created by nimbus.cloud; refusing to manage it"):
        plan(Spec(name="web1", state=state), actual, "kvm", U2, PATHS)


def test_recreate_keeps_what_the_task_leaves_out():
    actual = existing("running", nics=[Nic("br0", "52:54:00:12:34:56"), Nic("br1")], server_group="web",
                      kernel="/boot/vmlinuz", kernel_args="console=ttyS0")
    actual.nics[0].device = "vnet3"
    actual.vnc_port = 5901
    result = plan(Spec(name="web1", image="debian-13.qcow2", seed=SEED), actual, "qemu", U2, PATHS, recreate=True)
    after = result.after
    assert result.recreate and after.image == "debian-13.qcow2"
    assert (after.uuid, after.virt_type, after.flavor, after.project, after.metadata, after.server_group) == (
        U1, "kvm", SMALL, "demo", {"role": "web"}, "web")
    assert (after.kernel, after.kernel_args) == ("/boot/vmlinuz", "console=ttyS0")
    assert [(n.bridge, n.mac, n.device) for n in after.nics] == [
        ("br0", "52:54:00:12:34:56", None), ("br1", mac_for(U1, 1), None)]
    assert after.vnc_port is None and after.seed_digest == SEED.digest(U1)


def test_plan_keeps_the_uuid_of_an_existing_instance():
    result = plan(full_spec(uuid=U2, metadata={"x": "1"}), existing("running"), "kvm", U2, PATHS)
    assert result.after.uuid == U1 and result.after.seed_digest == SEED.digest(U1)


@pytest.mark.parametrize("fields, changed", [
    ({}, False),
    ({"create": True}, True),
    ({"delete": True}, True),
    ({"recreate": True}, True),
    ({"redefine": True}, True),
    ({"update_metadata": True}, True),
    ({"write_seed": True}, True),
    ({"grow_disk_gb": 20}, True),
    ({"power": ["start"]}, True),
    ({"changed_fields": ["vnc"]}, False),
])
def test_plan_changed(fields, changed):
    assert Plan(**fields).changed is changed


def test_instance_view_is_the_documented_shape():
    inst = Instance(name="web1", uuid=U1, state="running", virt_type="kvm", vcpus=1, ram_mb=512, vnc_port=5900)
    view = inst.view("compute1")
    assert view["console"] == {"log": None, "vnc": {"host": "127.0.0.1", "port": 5900}}
    assert (view["disks"], view["flavor"], view["boot"]) == ([], None, {"kernel": None, "initrd": None,
                                                                        "kernel_args": None})


if st is not None:
    text = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff"), max_size=20)

    @given(metadata=st.dictionaries(text, st.one_of(text, st.text("\n\t ", max_size=3)), max_size=4),
           project=text.filter(bool), server_group=text, disk_gb=st.integers(0, 4096),
           specs=st.dictionaries(st.sampled_from(["quota:cpu", "aggregate:ssd", "trait:X"]), text, max_size=2))
    def test_round_trip_is_idempotent(metadata, project, server_group, disk_gb, specs):
        # What the planner wrote, read back, must plan as no change: or every run reports one.
        flavor = Flavor(1, 512, disk_gb, "m1", specs)
        spec = full_spec(metadata=metadata, project=project, server_group=server_group, flavor=flavor)
        after = plan(dataclasses.replace(spec, state="stopped"), None, "kvm", U1, PATHS).after
        actual = parse_domain_xml(build_domain_xml(after, PATHS), "shutoff")
        again = plan(spec, actual, "kvm", U1, PATHS)
        assert again.changed_fields == [] and not again.changed
