"""An in-memory stand-in for libvirt-python and the hypervisor's commands.

The compute modules run against it unchanged: ``install`` swaps it in for the
``libvirt`` binding that ``_libvirt`` imports (the ansible-core 2.17 test
environment has none), answers qemu-img and xorrisofs, and points the
settings, the lock and the pools at a temporary directory.

It behaves as libvirt does where the modules depend on it: memory comes back
in KiB, only the live definition of a running domain names its tap devices and
VNC port, redefining a running domain leaves the live one alone, a name or
UUID cannot be taken twice, and resume refuses a guest that suspended itself.
"""

import copy
import json
import os
import uuid as uuidlib
import xml.etree.ElementTree as ET

from ansible.module_utils import basic

from ansible_collections.nimbus.cloud.plugins.module_utils import _libvirt
from ansible_collections.nimbus.cloud.plugins.module_utils import _compute
from ansible_collections.nimbus.cloud.plugins.module_utils import _nftables
from ansible_collections.nimbus.cloud.plugins.module_utils._compute import NS

GIB = 1024 ** 3

VIR_ERR_OPERATION_INVALID = 55
VIR_ERR_NO_DOMAIN = 42
VIR_ERR_NO_STORAGE_POOL = 49
VIR_ERR_DOM_EXIST = 52
VIR_ERR_INTERNAL_ERROR = 1

NOSTATE, RUNNING, BLOCKED, PAUSED, SHUTDOWN, SHUTOFF, CRASHED, PMSUSPENDED = range(8)
STATE_NUMBERS = {"nostate": NOSTATE, "running": RUNNING, "blocked": BLOCKED, "paused": PAUSED,
                 "shutdown": SHUTDOWN, "shutoff": SHUTOFF, "crashed": CRASHED, "pmsuspended": PMSUSPENDED}
INACTIVE = (SHUTOFF, CRASHED, NOSTATE)


class libvirtError(Exception):  # noqa: N801 - the binding's own spelling
    def __init__(self, msg, code=1):
        super().__init__(msg)
        self.code = code

    def get_error_code(self):
        return self.code


class FakeLibvirt:
    """The ``libvirt`` module: its constants, ``open`` and ``libvirtError``."""

    libvirtError = libvirtError
    VIR_ERR_NO_DOMAIN = VIR_ERR_NO_DOMAIN
    VIR_DOMAIN_XML_INACTIVE = 2
    VIR_DOMAIN_AFFECT_LIVE = 1
    VIR_DOMAIN_AFFECT_CONFIG = 2
    VIR_DOMAIN_METADATA_ELEMENT = 2
    VIR_DOMAIN_RUNNING = RUNNING
    VIR_DOMAIN_PAUSED = PAUSED
    VIR_DOMAIN_SHUTOFF = SHUTOFF
    VIR_DOMAIN_PMSUSPENDED = PMSUSPENDED
    VIR_DOMAIN_UNDEFINE_MANAGED_SAVE = 1
    VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA = 2
    VIR_DOMAIN_UNDEFINE_NVRAM = 4
    VIR_SECRET_USAGE_TYPE_ISCSI = 3

    def __init__(self, memory_mb=8192, cpus=4, hostname="compute1"):
        self.conn = FakeConnection(memory_mb, cpus, hostname)
        self.uris = []
        self.open_error = None

    def open(self, uri):
        self.uris.append(uri)
        if self.open_error:
            raise libvirtError(self.open_error)
        return self.conn

    @staticmethod
    def registerErrorHandler(handler, ctx):
        return None


class FakePool:
    def __init__(self, conn, name):
        self.conn = conn
        self.name = name

    def refresh(self, flags=0):
        self.conn.log.append(("refresh", self.name))


class FakeConnection:
    def __init__(self, memory_mb, cpus, hostname):
        self.memory_mb = memory_mb
        self.cpus = cpus
        self.hostname = hostname
        self.domains = {}
        self.pools = set()
        # Every call that changes something, as (call, domain name).
        self.log = []
        # call name -> libvirtError to raise instead of doing it.
        self.failures = {}
        self._vnet = 0
        # usage -> FakeSecret (iSCSI CHAP secrets of attached volumes)
        self.secrets = {}

    def getHostname(self):
        return self.hostname

    def getInfo(self):
        return ["x86_64", self.memory_mb, self.cpus, 2400, 1, 1, self.cpus, 1]

    def lookupByName(self, name):
        if "lookupByName" in self.failures:
            raise self.failures["lookupByName"]
        try:
            return self.domains[name]
        except KeyError:
            raise libvirtError("Domain not found: no domain with matching name '%s'" % name, VIR_ERR_NO_DOMAIN)

    def listAllDomains(self, flags=0):
        return list(self.domains.values())

    def storagePoolLookupByName(self, name):
        if name not in self.pools:
            raise libvirtError("Storage pool not found: %s" % name, VIR_ERR_NO_STORAGE_POOL)
        return FakePool(self, name)

    def defineXML(self, xml):
        root = ET.fromstring(xml)
        name, uuid = root.findtext("name"), root.findtext("uuid")
        self.log.append(("defineXML", name))
        self._fail("defineXML")
        for other in self.domains.values():
            if other.name() == name and other.UUIDString() != uuid:
                raise libvirtError("domain '%s' already exists with uuid %s" % (name, other.UUIDString()),
                                   VIR_ERR_DOM_EXIST)
            if other.name() != name and other.UUIDString() == uuid:
                raise libvirtError("domain '%s' is already defined with uuid %s" % (other.name(), uuid),
                                   VIR_ERR_DOM_EXIST)
        xml = _as_libvirt_writes_it(root)
        if name in self.domains:
            self.domains[name].xml = xml
        else:
            self.domains[name] = FakeDomain(self, xml)
        return self.domains[name]

    def add_domain(self, xml, state="shutoff", managed_save=False):
        """A domain that exists before the module runs, in any libvirt state."""
        dom = FakeDomain(self, _as_libvirt_writes_it(ET.fromstring(xml)))
        self.domains[dom.name()] = dom
        if STATE_NUMBERS[state] not in INACTIVE:
            dom.boot()
        dom.state_no = STATE_NUMBERS[state]
        dom.saved = managed_save
        return dom

    def secretLookupByUsage(self, kind, usage):
        try:
            return self.secrets[usage]
        except KeyError:
            raise libvirtError("Secret not found: no secret with matching usage '%s'" % usage)

    def secretDefineXML(self, xml):
        usage = ET.fromstring(xml).findtext("usage/target")
        self.log.append(("secretDefineXML", usage))
        self.secrets[usage] = FakeSecret(self, usage)
        return self.secrets[usage]

    def calls(self, name=None):
        return [call for call, dom in self.log if name is None or dom == name]

    def _fail(self, call):
        if call in self.failures:
            raise self.failures[call]

    def next_vnet(self):
        self._vnet += 1
        return "vnet%d" % (self._vnet - 1)


class FakeSecret:
    def __init__(self, conn, usage):
        self.conn = conn
        self.usage = usage
        self.value = None

    def setValue(self, value, flags=0):
        self.value = value

    def undefine(self):
        self.conn.log.append(("secret undefine", self.usage))
        del self.conn.secrets[self.usage]


class FakeDomain:
    def __init__(self, conn, xml):
        self.conn = conn
        self.xml = xml
        self.live = None
        self.state_no = SHUTOFF
        self.saved = False
        self.undefine_flags = None

    def name(self):
        return ET.fromstring(self.xml).findtext("name")

    def UUIDString(self):
        return ET.fromstring(self.xml).findtext("uuid")

    def state(self, flags=0):
        return [self.state_no, 1]

    def isActive(self):
        return int(self.state_no not in INACTIVE)

    def XMLDesc(self, flags=0):
        if self.live is not None and not flags & FakeLibvirt.VIR_DOMAIN_XML_INACTIVE:
            return self.live
        return self.xml

    def boot(self):
        root = ET.fromstring(self.xml)
        for iface in root.findall("devices/interface"):
            ET.SubElement(iface, "target", dev=self.conn.next_vnet())
        for gfx in root.findall("devices/graphics"):
            gfx.set("port", str(5900 + len(self.conn.domains)))
        self.live = ET.tostring(root, encoding="unicode")
        self.state_no = RUNNING

    def _act(self, call, allowed):
        self.conn.log.append((call, self.name()))
        self.conn._fail(call)
        if self.state_no not in allowed:
            raise libvirtError("Requested operation is not valid: cannot %s in state %d" % (call, self.state_no),
                               VIR_ERR_OPERATION_INVALID)

    def create(self):
        self._act("create", INACTIVE)
        self.boot()
        self.saved = False
        return 0

    def shutdown(self):
        self._act("shutdown", (RUNNING, BLOCKED))
        self._power_off()
        return 0

    def destroy(self):
        self._act("destroy", (RUNNING, BLOCKED, PAUSED, SHUTDOWN, PMSUSPENDED))
        self._power_off()
        return 0

    def _power_off(self):
        self.state_no = SHUTOFF
        self.live = None

    def suspend(self):
        self._act("suspend", (RUNNING, BLOCKED))
        self.state_no = PAUSED
        return 0

    def resume(self):
        if self.state_no == PMSUSPENDED:
            self.conn.log.append(("resume", self.name()))
            raise libvirtError("Requested operation is not valid: domain is pmsuspended", VIR_ERR_OPERATION_INVALID)
        self._act("resume", (PAUSED,))
        self.state_no = RUNNING
        return 0

    def pMWakeup(self, flags=0):
        self._act("pMWakeup", (PMSUSPENDED,))
        self.state_no = RUNNING
        return 0

    def reboot(self, flags=0):
        self._act("reboot", (RUNNING, BLOCKED))
        return 0

    def reset(self, flags=0):
        self._act("reset", (RUNNING, BLOCKED, PAUSED))
        return 0

    def managedSave(self, flags=0):
        self._act("managedSave", (RUNNING, BLOCKED, PAUSED))
        self._power_off()
        self.saved = True
        return 0

    def hasManagedSaveImage(self, flags=0):
        return int(self.saved)

    def undefineFlags(self, flags=0):
        self.conn.log.append(("undefineFlags", self.name()))
        self.conn._fail("undefineFlags")
        self.undefine_flags = flags
        del self.conn.domains[self.name()]
        return 0

    def setMetadata(self, kind, metadata, key, uri, flags=0):
        self.conn.log.append(("setMetadata", self.name()))
        self.conn._fail("setMetadata")
        assert (kind, key, uri) == (FakeLibvirt.VIR_DOMAIN_METADATA_ELEMENT, "nimbus", NS)
        if flags & FakeLibvirt.VIR_DOMAIN_AFFECT_CONFIG:
            self.xml = _with_metadata(self.xml, metadata, uri)
        if flags & FakeLibvirt.VIR_DOMAIN_AFFECT_LIVE:
            if self.live is None:
                raise libvirtError("Requested operation is not valid: domain is not running",
                                   VIR_ERR_OPERATION_INVALID)
            self.live = _with_metadata(self.live, metadata, uri)
        return 0


def _as_libvirt_writes_it(root):
    root = copy.deepcopy(root)
    memory = root.find("memory")
    if memory is not None and memory.get("unit", "KiB") == "MiB":
        memory.text = str(int(memory.text) * 1024)
        memory.set("unit", "KiB")
    return ET.tostring(root, encoding="unicode")


def _with_metadata(xml, element, uri):
    root = ET.fromstring(xml)
    meta = root.find("metadata")
    if meta is None:
        meta = ET.SubElement(root, "metadata")
    for child in list(meta):
        if child.tag.startswith("{%s}" % uri):
            meta.remove(child)
    new = ET.fromstring(element)
    # Like libvirt: the caller's element must not declare the namespace; the
    # key and uri arguments put it there.
    if any(el.tag.startswith("{") for el in new.iter()):
        raise libvirtError("internal error: failed to create a new XML namespace", VIR_ERR_INTERNAL_ERROR)
    for el in new.iter():
        el.tag = "{%s}%s" % (uri, el.tag)
    meta.append(new)
    return ET.tostring(root, encoding="unicode")


def unmanaged_xml(name, uuid, mac="52:54:00:aa:bb:cc", bridge="br0", memory_kib=524288, vcpus=1):
    """A domain made with virt-install or virsh: no nimbus metadata."""
    return (
        "<domain type='kvm'><name>%s</name><uuid>%s</uuid><memory unit='KiB'>%d</memory><vcpu>%d</vcpu>"
        "<os><type arch='x86_64'>hvm</type></os><devices>"
        "<interface type='bridge'><mac address='%s'/><source bridge='%s'/><model type='virtio'/></interface>"
        "</devices></domain>" % (name, uuid, memory_kib, vcpus, mac, bridge)
    )


class Host:
    """A hypervisor in a temporary directory, with the fake libvirt swapped in."""

    def __init__(self, monkeypatch, tmp_path, memory_mb=8192, cpus=4):
        self.libvirt = FakeLibvirt(memory_mb, cpus)
        self.conn = self.libvirt.conn
        self.images = tmp_path / "images"
        self.instances = tmp_path / "instances"
        self.images.mkdir()
        self.instances.mkdir()
        self.settings = {
            "virt_type": "qemu",
            "nested": False,
            "availability_zone": "nova",
            "aggregates": [],
            "allocation_ratios": {"vcpus": 4.0, "ram_mb": 1.0, "disk_gb": 1.0},
            "reserved": {"vcpus": 0, "ram_mb": 512, "disk_gb": 0},
            "pools": {"instances": {"name": "nimbus-instances", "path": str(self.instances)},
                      "images": {"name": "nimbus-images", "path": str(self.images)}},
        }
        self.conn.pools.update(pool["name"] for pool in self.settings["pools"].values())
        self.bridges = {"br0", "br1"}
        # argv of every command run, the program as its base name.
        self.commands = []
        # instance name -> the files its last seed ISO was built from.
        self.seeds = {}
        # "qemu-img create" and the like -> (rc, out, err) to answer instead.
        self.command_failures = {}
        self._image_info = {}
        # nftables: the JSON `nft -j list table FAMILY nimbus` answers (None: no table), and the scripts applied.
        self.nft = {"inet": None, "bridge": None}
        self.nft_scripts = []

        monkeypatch.setattr(_libvirt, "libvirt", self.libvirt)
        monkeypatch.setattr(_libvirt, "LIBVIRT_IMPORT_ERROR", None)
        monkeypatch.setattr(_libvirt, "load_settings", lambda path=None: self.settings)
        monkeypatch.setattr(_libvirt, "LOCK_FILE", str(tmp_path / "lock" / "nimbus-compute.lock"))
        monkeypatch.setattr(_nftables, "SAVE_FILE", str(tmp_path / "nftables.nft"))
        monkeypatch.setattr(basic.AnsibleModule, "run_command", self._run_command_method())
        monkeypatch.setattr(basic.AnsibleModule, "get_bin_path",
                            lambda module, name, required=False, opt_dirs=None: "/usr/bin/" + name)
        isdir = os.path.isdir

        def bridge_aware_isdir(path):
            prefix = "/sys/class/net/"
            if str(path).startswith(prefix):
                return str(path)[len(prefix):].split("/", 1)[0] in self.bridges and str(path).endswith("/bridge")
            return isdir(path)

        monkeypatch.setattr(_libvirt.os.path, "isdir", bridge_aware_isdir)

    def add_image(self, name="debian-12.qcow2", virtual_size=2 * GIB, fmt="qcow2"):
        path = self.images / name
        path.write_bytes(b"image")
        self._image_info[str(path)] = {"format": fmt, "virtual-size": virtual_size, "filename": str(path)}
        return path

    def paths(self, name):
        base = self.instances / name
        return {"dir": str(base), "root_disk": str(base / _compute.ROOT_DISK), "seed": str(base / _compute.SEED_FILE),
                "console_log": str(base / _compute.CONSOLE_LOG)}

    def add_instance(self, name, state="running", project="demo", flavor=None, bridges=("br0",), macs=(),
                     server_group=None, metadata=None, seed=None, managed_save=False):
        """An instance this collection made earlier, as its domain XML would be."""
        spec = _compute.Spec(
            name=name, state="stopped", flavor=flavor or _compute.Flavor(1, 512, 10, "m1.tiny"),
            image="debian-12.qcow2", project=project, metadata=metadata, server_group=server_group, seed=seed,
            nics=[_compute.Nic(bridge, mac) for bridge, mac in zip(bridges, list(macs) + [None] * len(bridges))])
        uuid = str(uuidlib.uuid5(uuidlib.NAMESPACE_DNS, name + ".instances.test"))
        after = _compute.plan(spec, None, self.settings["virt_type"], uuid, self.paths(name)).after
        (self.instances / name).mkdir()
        (self.instances / name / _compute.ROOT_DISK).write_bytes(b"overlay")
        if seed:
            (self.instances / name / _compute.SEED_FILE).write_bytes(b"ISO 9660 cidata")
        return self.conn.add_domain(_compute.build_domain_xml(after, self.paths(name)), state, managed_save)

    def domain_xml(self, name):
        return ET.fromstring(self.conn.domains[name].xml)

    def commands_run(self, program, subcommand=None):
        return [argv for argv in self.commands
                if argv[0] == program and (subcommand is None or argv[1] == subcommand)]

    def _run_command_method(self):
        host = self

        def run_command(module, args, **kwargs):
            argv = [os.path.basename(args[0])] + [str(a) for a in args[1:]]
            host.commands.append(argv)
            if argv[:2] == ["nft", "-f"]:
                host.nft_scripts.append(kwargs.get("data"))
            key = " ".join(argv[:2])
            if key in host.command_failures:
                return host.command_failures[key]
            return host._answer(argv)

        return run_command

    def _answer(self, argv):
        if argv[0] == "prlimit":  # the limits qemu-img reads untrusted headers under
            argv = [os.path.basename(argv[argv.index("--") + 1])] + argv[argv.index("--") + 2:]
        if argv[:2] == ["qemu-img", "info"]:
            info = self._image_info.get(argv[-1])
            if info is None:
                return 1, "", "qemu-img: Could not open '%s': No such file or directory" % argv[-1]
            return 0, json.dumps(info), ""
        if argv[:2] == ["qemu-img", "create"]:
            with open(argv[-2], "wb") as f:
                f.write(b"overlay of " + argv[argv.index("-b") + 1].encode())
            return 0, "", ""
        if argv[:2] == ["qemu-img", "resize"]:
            return 0, "", ""
        if argv[0] == "xorrisofs":
            content, iso = argv[-1], argv[argv.index("-output") + 1]
            files = {}
            for fname in sorted(os.listdir(content)):
                with open(os.path.join(content, fname), "rb") as f:
                    files[fname] = f.read()
            self.seeds[os.path.basename(os.path.dirname(os.path.dirname(iso)))] = files
            with open(iso, "wb") as f:
                f.write(b"ISO 9660 cidata")
            return 0, "", ""
        if argv[0] == "nft":
            if argv[1] == "-f":
                return 0, "", ""
            family = argv[-2]
            if self.nft.get(family) is None:
                return 1, "", "Error: No such file or directory"
            return 0, (json.dumps(self.nft[family]) if argv[1] == "-j" else "table %s nimbus {}\n" % family), ""
        raise AssertionError("unexpected command: %r" % (argv,))


def install(monkeypatch, tmp_path, **kwargs):
    return Host(monkeypatch, tmp_path, **kwargs)
