# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Instances as typed data: desired spec, actual state, and the plan between them.

Pure code: no libvirt, no host access. ``_libvirt`` reads and applies; this
file builds and parses domain XML, renders cloud-init seeds and decides what
must change. The XML the user never sees is the only place an instance's
project, flavor and metadata live, under the collection's own namespace.
"""

from __future__ import annotations

import hashlib
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace

from ansible_collections.nimbus.cloud.plugins.module_utils._errors import ValidationError
from ansible_collections.nimbus.cloud.plugins.module_utils._names import normalise_mac

NS = "https://nimbus.cloud/xmlns/instance/1"
NS_PREFIX = "nimbus"
ET.register_namespace(NS_PREFIX, NS)

# QEMU/KVM's locally administered prefix, as libvirt and Nova use.
MAC_PREFIX = "52:54:00"
NIC_MODELS = ("virtio", "e1000", "rtl8139")
CPU_MODES = ("host-model", "host-passthrough", "custom")
# Extra specs this collection turns into domain XML; other hw: keys are
# refused as typos, other scopes are kept as metadata (e.g. for aggregates).
KNOWN_HW_SPECS = ("hw:cpu_mode", "hw:cpu_model", "hw:cpu_sockets", "hw:cpu_cores", "hw:cpu_threads")

STATES = ("present", "running", "stopped", "absent")
# libvirt's virDomainState numbers, as names a user reads.
DOMAIN_STATES = {
    0: "nostate", 1: "running", 2: "blocked", 3: "paused", 4: "shutdown",
    5: "shutoff", 6: "crashed", 7: "pmsuspended",
}
ACTIVE_STATES = ("running", "blocked", "paused", "shutdown", "pmsuspended")

ROOT_DISK = "disk.qcow2"
SEED_FILE = "seed.iso"
CONSOLE_LOG = "console.log"


@dataclass
class Flavor:
    vcpus: int
    ram_mb: int
    disk_gb: int = 0
    name: str | None = None
    extra_specs: dict = field(default_factory=dict)

    def view(self):
        return {"name": self.name, "vcpus": self.vcpus, "ram_mb": self.ram_mb, "disk_gb": self.disk_gb,
                "extra_specs": dict(self.extra_specs)}


# A volume served over iSCSI by a storage host (the volumes role's tgt), attached as a virtio disk whose serial is
# the volume's UUID: the guest finds it under /dev/disk/by-id/virtio-<first 20 characters>, and the domain XML
# is the compute host's record of the attachment.
VOLUME_DEVICES = tuple("vd" + c for c in "bcdefghijklmnopqrstuvwxyz")
# An instance booted from a volume has it as its first disk.
BOOT_DEVICE = "vda"
SECRET_USAGE = "nimbus-volume-%s"
PORTAL_RE = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$")
IQN_RE = re.compile(r"^iqn\.[0-9]{4}-[0-9]{2}\.[a-z0-9.-]+(:[A-Za-z0-9.:_-]+)?$")
CHAP_USER_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def check_volume_target(portal, iqn, lun, username, where="volume"):
    """Refuse an iSCSI target that is not one: each part goes into domain XML and to QEMU's initiator."""
    if not PORTAL_RE.match(portal or "") or not 0 < int(portal.rsplit(":", 1)[1]) < 65536:
        raise ValidationError("%s: portal must be HOST:PORT, not %r" % (where, portal))
    if not IQN_RE.match(iqn or "") or len(iqn) > 223:
        raise ValidationError("%s: iqn must be an iSCSI qualified name (iqn.YYYY-MM.domain:name), not %r"
                              % (where, iqn))
    if not 0 <= lun < 16384:
        raise ValidationError("%s: lun must be 0 to 16383" % where)
    if username is not None and not CHAP_USER_RE.match(username):
        raise ValidationError("%s: username must be 1 to 64 letters, digits, '.', '_' or '-'" % where)


@dataclass
class VolumeDisk:
    volume_id: str
    device: str
    portal: str  # host:port of the iSCSI target
    iqn: str
    lun: int = 1
    username: str | None = None

    @property
    def secret_usage(self):
        return SECRET_USAGE % self.volume_id

    @property
    def identity(self):
        """What makes it the same disk: another target is another disk."""
        return self.volume_id, self.portal, self.iqn, self.lun, self.username

    def view(self, role="volume"):
        return {"device": self.device, "role": role, "volume_id": self.volume_id,
                "target": "iscsi://%s/%s/%d" % (self.portal, self.iqn, self.lun)}

    def element(self, boot_order=None):
        """The disk element (libvirt's network disk with CHAP through a secret of usage ``secret_usage``); with
        ``boot_order``, the firmware boots from it."""
        disk = ET.Element("disk", type="network", device="disk")
        # raw: the LUN is the volume's bytes; no host cache, as for any shared block device.
        _sub(disk, "driver", name="qemu", type="raw", cache="none")
        source = _sub(disk, "source", protocol="iscsi", name="%s/%d" % (self.iqn, self.lun))
        host, _sep, port = self.portal.rpartition(":")
        _sub(source, "host", name=host.strip("[]"), port=port)
        if self.username:
            auth = _sub(source, "auth", username=self.username)
            _sub(auth, "secret", type="iscsi", usage=self.secret_usage)
        _sub(disk, "target", dev=self.device, bus="virtio")
        _sub(disk, "serial", self.volume_id)
        if boot_order is not None:
            _sub(disk, "boot", order=boot_order)
        return disk

    def xml(self):
        return ET.tostring(self.element(), encoding="unicode")

    @classmethod
    def parse(cls, disk):
        """A VolumeDisk from a disk element, or None when it is not one of ours."""
        source = disk.find("source")
        target = disk.find("target")
        serial = disk.findtext("serial")
        if disk.get("type") != "network" or source is None or source.get("protocol") != "iscsi" or not serial:
            return None
        iqn, _sep, lun = (source.get("name") or "").rpartition("/")
        host = source.find("host")
        auth = source.find("auth")
        address = host.get("name") if host is not None else ""
        if ":" in address:
            address = "[%s]" % address
        return cls(volume_id=serial, device=target.get("dev") if target is not None else None,
                   portal="%s:%s" % (address, host.get("port", "3260") if host is not None else "3260"),
                   iqn=iqn, lun=int(lun) if lun.isdigit() else 0,
                   username=auth.get("username") if auth is not None else None)


PORT_KEYS = ("id", "name", "network", "fixed_ips", "security_groups", "port_security")


@dataclass
class Nic:
    bridge: str
    mac: str | None = None
    model: str = "virtio"
    device: str | None = None
    # A nimbus.cloud.port plugged into this NIC (its PORT_KEYS), or None for a bare bridge NIC.
    port: dict | None = None

    @property
    def tap(self):
        """Port NICs get a tap named after the port, so its filter can name it before it exists."""
        return "tap" + self.port["id"][:11] if self.port else None

    def view(self):
        return {"bridge": self.bridge, "mac": self.mac, "model": self.model, "device": self.device,
                "port": dict(self.port) if self.port else None}


@dataclass
class Seed:
    """A cloud-init NoCloud seed; only its digest is ever shown."""

    hostname: str
    user_data: str | None = None
    ssh_authorized_keys: list = field(default_factory=list)
    network_config: dict | None = None

    def files(self, instance_id):
        meta = {"instance-id": instance_id, "local-hostname": self.hostname}
        if self.ssh_authorized_keys:
            meta["public-keys"] = list(self.ssh_authorized_keys)
        out = {"meta-data": _yaml_block(meta), "user-data": self.user_data or "#cloud-config\n{}\n"}
        if self.network_config is not None:
            out["network-config"] = json.dumps(self.network_config, sort_keys=True, indent=2) + "\n"
        return {k: v.encode("utf-8") for k, v in out.items()}

    def digest(self, instance_id):
        h = hashlib.sha256()
        for name, data in sorted(self.files(instance_id).items()):
            h.update(name.encode() + b"\0" + data + b"\0")
        return h.hexdigest()


@dataclass
class Spec:
    """What the user asked for. None means "not given": never compared."""

    name: str
    state: str = "present"
    flavor: Flavor | None = None
    image: str | None = None
    nics: list | None = None
    seed: Seed | None = None
    kernel: str | None = None
    initrd: str | None = None
    kernel_args: str | None = None
    project: str | None = None
    metadata: dict | None = None
    server_group: str | None = None
    uuid: str | None = None
    vnc: bool | None = None
    # A VolumeDisk (device vda) the instance boots from instead of a disk made from an image.
    boot_volume: VolumeDisk | None = None


@dataclass
class Instance:
    """An instance as read from libvirt (or as it will be after a plan)."""

    name: str
    uuid: str | None
    state: str
    virt_type: str
    vcpus: int
    ram_mb: int
    flavor: Flavor | None = None
    image: str | None = None
    root_disk: str | None = None
    seed_path: str | None = None
    seed_digest: str | None = None
    nics: list = field(default_factory=list)
    kernel: str | None = None
    initrd: str | None = None
    kernel_args: str | None = None
    console_log: str | None = None
    vnc_port: int | None = None
    vnc: bool = True
    project: str | None = None
    metadata: dict = field(default_factory=dict)
    server_group: str | None = None
    managed: bool = True
    volumes: list = field(default_factory=list)
    boot_volume: VolumeDisk | None = None

    @property
    def active(self):
        return self.state in ACTIVE_STATES

    def view(self, hypervisor=None):
        """The documented return shape; never holds seed contents."""
        return {
            "name": self.name,
            "uuid": self.uuid,
            "state": self.state,
            "hypervisor": hypervisor,
            "virt_type": self.virt_type,
            "project": self.project,
            "flavor": self.flavor.view() if self.flavor else None,
            "vcpus": self.vcpus,
            "ram_mb": self.ram_mb,
            "image": self.image,
            "nics": [n.view() for n in self.nics],
            "disks": [d for d in (
                self.boot_volume.view("root") if self.boot_volume else None,
                {"device": "vda", "role": "root", "path": self.root_disk} if self.root_disk else None,
                {"device": "vdb", "role": "seed", "path": self.seed_path, "sha256": self.seed_digest}
                if self.seed_path else None,
            ) if d] + [v.view() for v in self.volumes],
            "boot": {"kernel": self.kernel, "initrd": self.initrd, "kernel_args": self.kernel_args},
            "console": {"log": self.console_log,
                        "vnc": {"host": "127.0.0.1", "port": self.vnc_port} if self.vnc_port else None},
            "metadata": dict(self.metadata),
            "server_group": self.server_group,
            "managed": self.managed,
        }


def _yaml_block(mapping):
    """A tiny, safe YAML writer for meta-data: JSON scalars are valid YAML."""
    lines = []
    for key, value in mapping.items():
        if isinstance(value, list):
            lines.append("%s:" % key)
            lines.extend("  - %s" % json.dumps(v) for v in value)
        else:
            lines.append("%s: %s" % (key, json.dumps(value)))
    return "\n".join(lines) + "\n"


# --- input ------------------------------------------------------------------

def resolve_flavor(flavor, catalogue):
    """A flavor given as a name (looked up in the catalogue) or as a dict."""
    if flavor is None:
        return None
    name = None
    if isinstance(flavor, str):
        if flavor not in (catalogue or {}):
            known = ", ".join(sorted(catalogue or {})) or "none defined"
            raise ValidationError("unknown flavor %r (known flavors: %s)" % (flavor, known))
        name, flavor = flavor, catalogue[flavor]
    if not isinstance(flavor, dict):
        raise ValidationError("flavor must be a flavor name or a dict with vcpus, ram_mb and disk_gb")
    unknown = set(flavor) - {"name", "vcpus", "ram_mb", "disk_gb", "extra_specs"}
    if unknown:
        raise ValidationError("flavor %s: unknown keys %s" % (name or "", ", ".join(sorted(unknown))))
    values = {}
    for key, low in (("vcpus", 1), ("ram_mb", 16), ("disk_gb", 0)):
        raw = flavor.get(key, 0 if key == "disk_gb" else None)
        try:
            values[key] = int(raw)
        except (TypeError, ValueError):
            raise ValidationError("flavor %s: %s must be an integer, got %r" % (name or "", key, raw))
        if values[key] < low:
            raise ValidationError("flavor %s: %s must be at least %d, got %d" % (name or "", key, low, values[key]))
    specs = {str(k): str(v) for k, v in (flavor.get("extra_specs") or {}).items()}
    for key in specs:
        if key.startswith("hw:") and key not in KNOWN_HW_SPECS:
            raise ValidationError("flavor %s: unsupported extra spec %s (supported: %s)"
                                  % (name or "", key, ", ".join(KNOWN_HW_SPECS)))
    if specs.get("hw:cpu_mode", "host-model") not in CPU_MODES:
        raise ValidationError("flavor %s: hw:cpu_mode must be one of %s" % (name or "", ", ".join(CPU_MODES)))
    topology = [specs.get("hw:cpu_" + k) for k in ("sockets", "cores", "threads")]
    if any(topology):
        try:
            product = 1
            for part in topology:
                product *= int(part or 1)
        except ValueError:
            raise ValidationError("flavor %s: hw:cpu_sockets, cores and threads must be integers" % (name or ""))
        if product != values["vcpus"]:
            raise ValidationError("flavor %s: sockets x cores x threads (%d) must equal vcpus (%d)"
                                  % (name or "", product, values["vcpus"]))
    return Flavor(name=flavor.get("name", name), extra_specs=specs, **values)


def build_nics(nics):
    if nics is None:
        return None
    out, seen = [], set()
    for index, nic in enumerate(nics):
        where = "nics[%d]" % index
        port = _port(nic.get("port"), where) if nic.get("port") else None
        if port is not None:
            for key, value in (("bridge", port["bridge"]), ("mac", port["mac"])):
                if nic.get(key) and str(nic[key]).lower() != value:
                    raise ValidationError("%s: %s %s conflicts with the port's %s %s" % (where, key, nic[key], key, value))
            nic = dict(nic, bridge=port["bridge"], mac=port["mac"])
        if not nic.get("bridge"):
            raise ValidationError("%s: give a bridge or a port" % where)
        mac = normalise_mac(nic["mac"], where) if nic.get("mac") else None
        if mac and mac in seen:
            raise ValidationError("%s: MAC %s is given twice" % (where, mac))
        seen.add(mac)
        out.append(Nic(bridge=nic["bridge"], mac=mac, model=nic.get("model") or "virtio",
                       port={k: port[k] for k in PORT_KEYS} if port else None))
    return out


def _port(port, where):
    """The fields of a nimbus.cloud.port result that an instance keeps."""
    if not isinstance(port, dict):
        raise ValidationError("%s: port must be what nimbus.cloud.port returns (a dict)" % where)
    missing = [k for k in ("id", "mac", "bridge") if not port.get(k)]
    if missing:
        raise ValidationError("%s: port lacks %s; pass the port module's result (its 'port' key)"
                              % (where, ", ".join(missing)))
    return {
        "id": str(port["id"]), "name": port.get("name"), "network": port.get("network"), "bridge": port["bridge"],
        "mac": normalise_mac(port["mac"], where + ".port.mac"),
        "fixed_ips": [{"subnet": f.get("subnet"), "ip": f.get("ip")} for f in port.get("fixed_ips") or []],
        "security_groups": sorted(port.get("security_groups") or []),
        "port_security": bool(port.get("port_security", True)),
    }


def mac_for(uuid, index):
    """A MAC derived from the instance UUID: the same instance always gets the same MACs."""
    digest = hashlib.sha256(("%s/%d" % (uuid, index)).encode()).hexdigest()
    return "%s:%s:%s:%s" % (MAC_PREFIX, digest[0:2], digest[2:4], digest[4:6])


# --- domain XML -------------------------------------------------------------

def _sub(parent, tag, text=None, **attrs):
    el = ET.SubElement(parent, tag, {k: str(v) for k, v in attrs.items()})
    if text is not None:
        el.text = str(text)
    return el


def _q(tag):
    return "{%s}%s" % (NS, tag)


def metadata_element(spec_like):
    """The <nimbus:instance> element holding what libvirt has no field for."""
    root = ET.Element(_q("instance"))
    _sub(root, _q("project"), spec_like.project or "")
    if spec_like.flavor:
        fl = _sub(root, _q("flavor"), name=spec_like.flavor.name or "", vcpus=spec_like.flavor.vcpus,
                  ram_mb=spec_like.flavor.ram_mb, disk_gb=spec_like.flavor.disk_gb)
        for key, value in sorted(spec_like.flavor.extra_specs.items()):
            _sub(fl, _q("extra_spec"), value, key=key)
    if spec_like.image:
        _sub(root, _q("image"), spec_like.image)
    if spec_like.server_group:
        _sub(root, _q("server_group"), spec_like.server_group)
    if getattr(spec_like, "seed_digest", None):
        _sub(root, _q("seed"), sha256=spec_like.seed_digest)
    for key, value in sorted((spec_like.metadata or {}).items()):
        _sub(root, _q("meta"), value, key=key)
    for index, nic in enumerate(getattr(spec_like, "nics", None) or []):
        if nic.port:
            port = _sub(root, _q("port"), nic=index, id=nic.port["id"], name=nic.port.get("name") or "",
                        network=nic.port.get("network") or "", security_groups=",".join(nic.port["security_groups"]),
                        port_security="true" if nic.port["port_security"] else "false")
            for fixed in nic.port["fixed_ips"]:
                _sub(port, _q("ip"), fixed["ip"], subnet=fixed.get("subnet") or "")
    return root


def metadata_text(inst):
    """The metadata element for virDomainSetMetadata, which adds the namespace itself.

    libvirt refuses an element that already declares the namespace, so the
    tags go without it.
    """
    element = metadata_element(inst)
    for el in element.iter():
        el.tag = el.tag.split("}", 1)[-1]
    return ET.tostring(element, encoding="unicode")


def build_domain_xml(inst, paths):
    """Domain XML for an Instance (the after-state of a plan)."""
    dom = ET.Element("domain", type=inst.virt_type)
    _sub(dom, "name", inst.name)
    _sub(dom, "uuid", inst.uuid)
    meta = _sub(dom, "metadata")
    meta.append(metadata_element(inst))
    _sub(dom, "memory", inst.ram_mb, unit="MiB")
    _sub(dom, "vcpu", inst.vcpus, placement="static")
    os_el = _sub(dom, "os")
    _sub(os_el, "type", "hvm", arch="x86_64")
    if inst.kernel:
        _sub(os_el, "kernel", inst.kernel)
        if inst.initrd:
            _sub(os_el, "initrd", inst.initrd)
        if inst.kernel_args:
            _sub(os_el, "cmdline", inst.kernel_args)
    elif not inst.boot_volume:
        _sub(os_el, "boot", dev="hd")
    features = _sub(dom, "features")
    _sub(features, "acpi")
    _sub(features, "apic")
    specs = inst.flavor.extra_specs if inst.flavor else {}
    cpu = _cpu_element(inst.virt_type, specs)
    if cpu is not None:
        dom.append(cpu)
    _sub(dom, "clock", offset="utc")
    _sub(dom, "on_poweroff", "destroy")
    _sub(dom, "on_reboot", "restart")
    _sub(dom, "on_crash", "destroy")
    devices = _sub(dom, "devices")
    if inst.boot_volume:
        # The firmware boots it by its own boot order (libvirt takes that or <os><boot>, not both).
        devices.append(inst.boot_volume.element(boot_order=None if inst.kernel else 1))
    else:
        disk = _sub(devices, "disk", type="file", device="disk")
        _sub(disk, "driver", name="qemu", type="qcow2", discard="unmap")
        _sub(disk, "source", file=paths["root_disk"])
        _sub(disk, "target", dev="vda", bus="virtio")
    if inst.seed_path:
        seed = _sub(devices, "disk", type="file", device="disk")
        _sub(seed, "driver", name="qemu", type="raw")
        _sub(seed, "source", file=inst.seed_path)
        _sub(seed, "target", dev="vdb", bus="virtio")
        _sub(seed, "readonly")
    # Attached volumes stay attached when the instance is redefined (a resize, a new NIC).
    for volume in inst.volumes:
        devices.append(volume.element())
    for nic in inst.nics:
        iface = _sub(devices, "interface", type="bridge")
        _sub(iface, "mac", address=nic.mac)
        _sub(iface, "source", bridge=nic.bridge)
        if nic.port:
            _sub(iface, "target", dev=nic.tap)
        _sub(iface, "model", type=nic.model)
    # A pty console for `virsh console`, logged to a file by virtlogd.
    serial = _sub(devices, "serial", type="pty")
    _sub(serial, "log", file=paths["console_log"], append="on")
    _sub(serial, "target", port="0")
    console = _sub(devices, "console", type="pty")
    _sub(console, "target", type="serial", port="0")
    if inst.vnc:
        gfx = _sub(devices, "graphics", type="vnc", port="-1", autoport="yes", listen="127.0.0.1")
        _sub(gfx, "listen", type="address", address="127.0.0.1")
    rng = _sub(devices, "rng", model="virtio")
    _sub(rng, "backend", "/dev/urandom", model="random")
    return ET.tostring(dom, encoding="unicode")


def _cpu_element(virt_type, specs):
    mode = specs.get("hw:cpu_mode")
    if mode is None and virt_type == "kvm":
        mode = "host-model"
    topology = [specs.get("hw:cpu_" + k) for k in ("sockets", "cores", "threads")]
    if mode is None and not any(topology):
        return None
    cpu = ET.Element("cpu", {"mode": mode} if mode else {})
    if mode == "custom":
        _sub(cpu, "model", specs.get("hw:cpu_model", "qemu64"), fallback="allow")
    if any(topology):
        _sub(cpu, "topology", sockets=topology[0] or 1, dies=1, cores=topology[1] or 1, threads=topology[2] or 1)
    return cpu


def parse_domain_xml(text, state="shutoff"):
    """Read an Instance from domain XML (libvirt's, or ours)."""
    dom = ET.fromstring(text)
    memory = dom.find("memory")
    inst = Instance(
        name=dom.findtext("name"),
        uuid=dom.findtext("uuid"),
        state=state,
        virt_type=dom.get("type"),
        vcpus=int(dom.findtext("vcpu") or 0),
        ram_mb=_to_mib(int(memory.text), memory.get("unit", "KiB")) if memory is not None else 0,
        kernel=dom.findtext("os/kernel"),
        initrd=dom.findtext("os/initrd"),
        kernel_args=dom.findtext("os/cmdline"),
    )
    for disk in dom.findall("devices/disk"):
        volume = VolumeDisk.parse(disk)
        if volume is not None and volume.device == BOOT_DEVICE:
            inst.boot_volume = volume
            continue
        if volume is not None:
            inst.volumes.append(volume)
            continue
        target = disk.find("target")
        source = disk.find("source")
        path = source.get("file") if source is not None else None
        dev = target.get("dev") if target is not None else None
        if dev == "vda":
            inst.root_disk = path
        elif dev == "vdb" and disk.find("readonly") is not None:
            inst.seed_path = path
    for iface in dom.findall("devices/interface"):
        mac = iface.find("mac")
        source = iface.find("source")
        model = iface.find("model")
        target = iface.find("target")
        inst.nics.append(Nic(
            bridge=source.get("bridge") if source is not None else None,
            mac=mac.get("address").lower() if mac is not None else None,
            model=model.get("type") if model is not None else "virtio",
            device=target.get("dev") if target is not None else None,
        ))
    log = dom.find("devices/serial/log")
    if log is not None:
        inst.console_log = log.get("file")
    gfx = dom.find("devices/graphics[@type='vnc']")
    inst.vnc = gfx is not None
    if gfx is not None and gfx.get("port", "-1") not in ("-1", ""):
        inst.vnc_port = int(gfx.get("port"))
    meta = dom.find("metadata/" + _q("instance"))
    if meta is None:
        inst.managed = False
        return inst
    read_metadata(meta, inst)
    return inst


def read_metadata(meta, inst):
    inst.project = meta.findtext(_q("project")) or None
    fl = meta.find(_q("flavor"))
    if fl is not None:
        inst.flavor = Flavor(
            name=fl.get("name") or None, vcpus=int(fl.get("vcpus")), ram_mb=int(fl.get("ram_mb")),
            disk_gb=int(fl.get("disk_gb", 0)),
            extra_specs={e.get("key"): e.text or "" for e in fl.findall(_q("extra_spec"))},
        )
    inst.image = meta.findtext(_q("image"))
    inst.server_group = meta.findtext(_q("server_group"))
    seed = meta.find(_q("seed"))
    inst.seed_digest = seed.get("sha256") if seed is not None else None
    inst.metadata = {m.get("key"): m.text or "" for m in meta.findall(_q("meta"))}
    for port in meta.findall(_q("port")):
        index = int(port.get("nic", -1))
        if 0 <= index < len(inst.nics):
            inst.nics[index].port = {
                "id": port.get("id"), "name": port.get("name") or None, "network": port.get("network") or None,
                "fixed_ips": [{"subnet": ip.get("subnet") or None, "ip": ip.text} for ip in port.findall(_q("ip"))],
                "security_groups": [g for g in (port.get("security_groups") or "").split(",") if g],
                "port_security": port.get("port_security") != "false",
            }


def _to_mib(value, unit):
    factors = {"b": 1.0 / 1048576, "bytes": 1.0 / 1048576, "k": 1.0 / 1024, "kib": 1.0 / 1024, "kb": 1000.0 / 1048576,
               "m": 1, "mib": 1, "mb": 1e6 / 1048576, "g": 1024, "gib": 1024, "gb": 1e9 / 1048576}
    return int(round(value * factors.get(unit.lower(), 1.0 / 1024)))


# --- plan -------------------------------------------------------------------

# What may change, and when. Anything else is refused (or, with recreate,
# replaced): changing them in place would silently rebuild a disk or a NIC.
LIVE_FIELDS = ("project", "metadata", "server_group", "seed_digest", "flavor_name", "ports")
STOPPED_FIELDS = ("vcpus", "ram_mb", "flavor", "kernel", "initrd", "kernel_args", "disk_grow", "seed_disk", "vnc")
FIXED_FIELDS = ("image", "boot_volume", "disk_shrink", "nics")


@dataclass
class Plan:
    create: bool = False
    delete: bool = False
    recreate: bool = False
    redefine: bool = False
    update_metadata: bool = False
    write_seed: bool = False
    grow_disk_gb: int | None = None
    power: list = field(default_factory=list)
    changed_fields: list = field(default_factory=list)
    after: Instance | None = None

    @property
    def changed(self):
        return bool(self.create or self.delete or self.recreate or self.redefine or self.update_metadata
                    or self.write_seed or self.grow_disk_gb or self.power)


def desired_instance(spec, actual, virt_type, uuid, paths):
    """The Instance the spec describes, keeping what the user left out from actual."""
    base = actual
    flavor = spec.flavor or (base.flavor if base else None)
    nics = []
    given = spec.nics if spec.nics is not None else (base.nics if base else [])
    for index, nic in enumerate(given):
        old = base.nics[index] if base and index < len(base.nics) else None
        mac = nic.mac or (old.mac if old else None) or mac_for(uuid, index)
        device = nic.tap or (old.device if old else None)
        nics.append(Nic(bridge=nic.bridge, mac=mac, model=nic.model, device=device, port=nic.port))
    seed_digest = spec.seed.digest(uuid) if spec.seed else (base.seed_digest if base else None)
    pick = _picker(spec, base)
    inst = Instance(
        name=spec.name,
        uuid=uuid,
        state=base.state if base else "shutoff",
        virt_type=base.virt_type if base else virt_type,
        vcpus=flavor.vcpus if flavor else base.vcpus,
        ram_mb=flavor.ram_mb if flavor else base.ram_mb,
        flavor=flavor,
        image=pick("image"),
        boot_volume=spec.boot_volume or (base.boot_volume if base else None),
        root_disk=(None if spec.boot_volume else paths["root_disk"]) if not base else base.root_disk,
        seed_path=paths["seed"] if seed_digest else None,
        seed_digest=seed_digest,
        nics=nics,
        kernel=pick("kernel") or None,
        initrd=pick("initrd") or None,
        kernel_args=pick("kernel_args") or None,
        console_log=base.console_log if base else paths["console_log"],
        vnc_port=base.vnc_port if base else None,
        vnc=spec.vnc if spec.vnc is not None else (base.vnc if base else True),
        project=pick("project") or "default",
        metadata=spec.metadata if spec.metadata is not None else (base.metadata if base else {}),
        server_group=pick("server_group") or None,
        # Attached by nimbus.cloud.volume_attachment; the instance module keeps them as they are.
        volumes=list(base.volumes) if base else [],
    )
    return inst


def _picker(spec, base):
    # "" counts as given, so it clears a field; callers store it as None, which
    # is what the XML reads back, or every later run would find a change.
    def pick(attr):
        value = getattr(spec, attr)
        if value is not None:
            return value
        return getattr(base, attr) if base else None
    return pick


def diff_fields(actual, after):
    """The fields that differ, by category name."""
    changed = []
    for attr in ("project", "metadata", "server_group", "seed_digest", "vcpus", "ram_mb", "kernel", "initrd",
                 "kernel_args", "image", "vnc"):
        if getattr(actual, attr) != getattr(after, attr):
            changed.append(attr)
    if (actual.flavor.view() if actual.flavor else None) != (after.flavor.view() if after.flavor else None):
        old, new = actual.flavor, after.flavor
        # A new name alone is bookkeeping; extra specs shape the domain.
        if old is None or new is None or old.extra_specs != new.extra_specs:
            changed.append("flavor")
        elif old.name != new.name:
            changed.append("flavor_name")
        # A boot volume is the volume's size, whatever the flavor says (as in Nova).
        if old and new and new.disk_gb > old.disk_gb and not after.boot_volume:
            changed.append("disk_grow")
        elif old and new and new.disk_gb < old.disk_gb and not after.boot_volume:
            changed.append("disk_shrink")
    if (actual.boot_volume.identity if actual.boot_volume else None) != \
            (after.boot_volume.identity if after.boot_volume else None):
        changed.append("boot_volume")

    def identity(nic):
        return nic.bridge, nic.mac, nic.model, nic.port["id"] if nic.port else None

    if [identity(n) for n in actual.nics] != [identity(n) for n in after.nics]:
        changed.append("nics")
    elif [n.port for n in actual.nics] != [n.port for n in after.nics]:
        changed.append("ports")
    if bool(actual.seed_path) != bool(after.seed_path):
        changed.append("seed_disk")
    return changed


def plan(spec, actual, virt_type, uuid, paths, allow_restart=False, recreate=False):
    """Decide what to do; raise ValidationError for what cannot be done."""
    if actual is not None and not actual.managed:
        raise ValidationError("domain %s exists but was not created by nimbus.cloud; refusing to manage it" % spec.name)
    if spec.state == "absent":
        return Plan(delete=actual is not None, after=None)
    if spec.image and spec.boot_volume:
        raise ValidationError("instance %s: give image or boot_volume, not both" % spec.name)
    if actual is None:
        if spec.flavor is None or not (spec.image or spec.boot_volume):
            raise ValidationError("flavor and image (or boot_volume) are required to create instance %s" % spec.name)
        after = desired_instance(spec, None, virt_type, uuid, paths)
        result = Plan(create=True, write_seed=bool(after.seed_digest), after=after)
        if spec.state in ("present", "running"):
            result.power.append("start")
            after.state = "running"
        return result
    after = desired_instance(spec, actual, virt_type, actual.uuid, paths)
    changed = diff_fields(actual, after)
    result = Plan(changed_fields=changed, after=after)
    fixed = [f for f in changed if f in FIXED_FIELDS]
    if fixed and (actual.boot_volume or "boot_volume" in changed):
        raise ValidationError("instance %s: %s cannot change on an instance booted from a volume (nor one become "
                              "such an instance); delete it and create it again"
                              % (spec.name, ", ".join(_label(f) for f in fixed)), fields=fixed)
    if fixed:
        if not recreate:
            raise ValidationError(
                "instance %s: %s cannot change on an existing instance; set recreate=true to replace it "
                "(its disk is rebuilt from the image)" % (spec.name, ", ".join(_label(f) for f in fixed)),
                fields=fixed)
        if spec.seed is None and actual.seed_path:
            # The old seed goes with the instance directory; the new disk needs one.
            raise ValidationError("instance %s: recreate rebuilds its cloud-init seed as well; give cloud_init"
                                  % spec.name, fields=fixed)
        # The replacement keeps what the task leaves out, as an update in place would.
        fresh = replace(spec, uuid=actual.uuid, **{attr: getattr(after, attr) for attr in (
            "flavor", "image", "nics", "kernel", "initrd", "kernel_args", "project", "metadata", "server_group")})
        after = desired_instance(fresh, None, actual.virt_type, actual.uuid, paths)
        after.state = "running" if spec.state in ("present", "running") and (
            actual.active or spec.state == "running") else "shutoff"
        return Plan(recreate=True, write_seed=bool(after.seed_digest), changed_fields=changed,
                    power=["start"] if after.state == "running" else [], after=after)
    offline = [f for f in changed if f in STOPPED_FIELDS]
    if offline and actual.active:
        if spec.state == "stopped":
            result.power.append("stop")
        elif allow_restart:
            result.power.extend(["stop", "start"])
        else:
            raise ValidationError(
                "instance %s is %s: %s can only change while it is stopped; set state=stopped first, or "
                "allow_restart=true to stop and start it" % (spec.name, actual.state,
                                                             ", ".join(_label(f) for f in offline)),
                fields=offline)
    elif actual.active and spec.state == "stopped":
        result.power.append("stop")
    elif not actual.active and spec.state == "running":
        result.power.append("start")
    elif actual.state in ("paused", "pmsuspended") and spec.state == "running":
        result.power.append("resume")
    result.redefine = bool(offline)
    result.update_metadata = any(f in LIVE_FIELDS for f in changed)
    result.write_seed = "seed_digest" in changed
    if "disk_grow" in changed:
        result.grow_disk_gb = after.flavor.disk_gb
    if result.power:
        after.state = "running" if result.power[-1] in ("start", "resume") else "shutoff"
    return result


def _label(fieldname):
    return {"disk_grow": "disk_gb (grow)", "disk_shrink": "disk_gb (shrink)", "seed_digest": "cloud_init",
            "nics": "NICs", "seed_disk": "cloud_init (adding the seed disk)", "boot_volume": "boot_volume"}.get(fieldname, fieldname)
