# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A hypervisor as the compute modules see it: libvirt, the pools, the settings.

Reads go straight to libvirt and qemu-img; every change goes through the
command runner's gate (``change`` for commands, ``apply`` for library calls
and file writes), so check mode never touches the host.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from fractions import Fraction

from ansible_collections.nimbus.cloud.plugins.module_utils._compute import (
    CONSOLE_LOG, DOMAIN_STATES, NS, NS_PREFIX, ROOT_DISK, SEED_FILE, build_domain_xml, metadata_text,
    parse_domain_xml,
)
from ansible_collections.nimbus.cloud.plugins.module_utils import _images as images
from ansible_collections.nimbus.cloud.plugins.module_utils._errors import NimbusError, ValidationError
from ansible_collections.nimbus.cloud.plugins.module_utils._files import locked, read_settings
from ansible_collections.nimbus.cloud.plugins.module_utils._ipam import derive_id

try:
    import libvirt
except ImportError as e:
    libvirt = None
    LIBVIRT_IMPORT_ERROR = e
else:
    LIBVIRT_IMPORT_ERROR = None

SETTINGS_FILE = "/etc/nimbus/hypervisor.json"
# One writer at a time per hypervisor: the duplicate-MAC check and the
# define must not interleave with another task's.
LOCK_FILE = "/run/lock/nimbus-compute.lock"
GIB = 1024 ** 3


def load_settings(path=SETTINGS_FILE):
    return read_settings(path, "hypervisor", "kvm")


IMAGE_FORMATS = ("qcow2", "raw")


def cached_images(runner, settings):
    """The images of a hypervisor's cache (regular files only), with the format qemu-img reads in each."""
    root = settings["pools"]["images"]["path"]
    try:
        entries = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    found = []
    records = images.Cache(runner, root).records()
    for name in entries:
        path = os.path.join(root, name)
        if name.startswith(".") or os.path.islink(path) \
                or not os.path.isfile(path):
            continue
        result = runner.read(["qemu-img", "info", "--output=json", "--force-share", path], check_rc=False)
        try:
            info = json.loads(result.stdout) if result.rc == 0 else {}
        except ValueError:
            info = {}
        if info.get("format") not in IMAGE_FORMATS:
            continue
        stat = os.stat(path)
        # An image pulled from the store keeps its store identity; a file copied by hand gets one from its name.
        record = records.get(name)
        found.append({"id": record.id if record else derive_id("image", name),
                      "name": record.name if record else name, "file": name, "disk_format": info["format"],
                      "size": stat.st_size, "virtual_size": int(info.get("virtual-size") or 0),
                      "updated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stat.st_mtime))})
    return found


class Hypervisor:
    def __init__(self, runner, uri="qemu:///system", settings=None):
        self.runner = runner
        self.uri = uri
        self.settings = settings if settings is not None else load_settings()
        self._conn = None
        self._hostname = None

    # --- reading ------------------------------------------------------------

    @property
    def conn(self):
        if self._conn is None:
            # libvirt prints every error to stderr by default; ours are raised.
            libvirt.registerErrorHandler(lambda ctx, err: None, None)
            try:
                self._conn = libvirt.open(self.uri)
            except libvirt.libvirtError as e:
                raise NimbusError("cannot connect to libvirt at %s: %s" % (self.uri, e))
        return self._conn

    @property
    def virt_type(self):
        return self.settings.get("virt_type", "qemu")

    @property
    def instances_dir(self):
        return self.settings["pools"]["instances"]["path"]

    @property
    def image_dir(self):
        return self.settings["pools"]["images"]["path"]

    def hostname(self):
        # Asked once: a task reports it for the before and the after view.
        if self._hostname is None:
            self._hostname = self.conn.getHostname()
        return self._hostname

    def paths(self, name):
        base = os.path.join(self.instances_dir, name)
        return {"dir": base, "root_disk": os.path.join(base, ROOT_DISK), "seed": os.path.join(base, SEED_FILE),
                "console_log": os.path.join(base, CONSOLE_LOG)}

    def lookup(self, name):
        try:
            return self.conn.lookupByName(name)
        except libvirt.libvirtError as e:
            if e.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise NimbusError("cannot read domain %s: %s" % (name, e))

    def read(self, name):
        dom = self.lookup(name)
        return self.read_domain(dom) if dom is not None else None

    def read_domain(self, dom):
        state = DOMAIN_STATES.get(dom.state()[0], "nostate")
        # The persistent definition is what the user manages; the live one
        # adds what exists only while running (tap devices, the VNC port).
        inst = parse_domain_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE), state)
        if dom.isActive():
            live = parse_domain_xml(dom.XMLDesc(0), state)
            inst.vnc_port = live.vnc_port
            for nic, live_nic in zip(inst.nics, live.nics):
                nic.device = live_nic.device
        return inst

    def list_instances(self):
        return [self.read_domain(dom) for dom in self.conn.listAllDomains(0)]

    def macs_in_use(self, exclude=None):
        return {nic.mac: inst.name for inst in self.list_instances() if inst.name != exclude for nic in inst.nics}

    def host_info(self):
        model, memory_mb, cpus = self.conn.getInfo()[:3]
        return {"model": model, "memory_mb": memory_mb, "cpus": cpus}

    def image_cache(self):
        store = self.settings.get("image_store") or {}
        return images.Cache(self.runner, self.image_dir, store.get("url"), opener=images.store_opener)

    def image(self, name, project=None):
        """The image called ``name`` for ``project``: its path, format and virtual size.

        A file of that name in the cache is used as it is (images copied there by hand keep working);
        otherwise ``name`` is an image of the store, by UUID or name, pulled into the cache when missing.
        """
        if "/" in name or name in ("", ".", "..") or name.startswith("."):
            raise ValidationError("image %r must be a file name in the image cache %s, or an image's name or id"
                                  % (name, self.image_dir))
        path = os.path.join(self.image_dir, name)
        if images.UUID_RE.match(name) or not os.path.isfile(path):
            cache = self.image_cache()
            return cache.ensure(cache.resolve(name, project))
        info = images.inspect(self.runner, path, "image %s" % name)
        return {"path": path, "format": info["format"], "virtual_size": info["virtual_size"]}

    # --- changing -----------------------------------------------------------

    def lock(self):
        """Serialise changes to this hypervisor's instances (placement checks read, then define)."""
        return locked(LOCK_FILE, check_mode=self.runner.check_mode)

    def make_dir(self, name):
        path = self.paths(name)["dir"]
        self.runner.apply("create directory %s" % path, os.makedirs, path, mode=0o711, exist_ok=True)

    def create_disk(self, name, image, disk_gb):
        size = max(disk_gb * GIB, image["virtual_size"])
        self.runner.change(["qemu-img", "create", "-q", "-f", "qcow2", "-F", image["format"], "-b", image["path"],
                            self.paths(name)["root_disk"], str(size)])

    def grow_disk(self, name, disk_gb):
        self.runner.change(["qemu-img", "resize", "-q", self.paths(name)["root_disk"], "%dG" % disk_gb])

    def write_seed(self, name, files):
        """Build the NoCloud ISO beside its final place and swap it in atomically."""
        target = self.paths(name)["seed"]
        self.runner.apply("write cloud-init seed %s" % target, self._write_seed, target, files)

    def _write_seed(self, target, files):
        work = tempfile.mkdtemp(prefix=".seed-", dir=os.path.dirname(target))
        try:
            content = os.path.join(work, "content")
            os.mkdir(content, 0o700)
            for fname, data in files.items():
                with open(os.path.join(content, fname), "wb") as f:
                    f.write(data)
            iso = os.path.join(work, SEED_FILE)
            self.runner.change(["xorrisofs", "-quiet", "-output", iso, "-volid", "cidata", "-joliet", "-rock",
                                content])
            os.chmod(iso, 0o600)
            os.replace(iso, target)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def define(self, xml):
        return self.runner.apply("define domain", self._call, "define", self.conn.defineXML, xml)

    def set_metadata(self, name, inst):
        text = metadata_text(inst)
        self.runner.apply("update metadata of %s" % name, self._set_metadata, name, text)

    def _set_metadata(self, name, text):
        dom = self.lookup(name)
        flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG
        if dom.isActive():
            flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
        self._call("update metadata of %s" % name, dom.setMetadata, libvirt.VIR_DOMAIN_METADATA_ELEMENT, text,
                   NS_PREFIX, NS, flags)

    def start(self, name):
        self.runner.apply("start %s" % name, self.domain_call, "start", name, "create")

    def resume(self, name):
        self.runner.apply("resume %s" % name, self._resume, name)

    def _resume(self, name):
        dom = self.lookup(name)
        # libvirt's resume refuses a guest that suspended itself: that one is woken.
        if dom.state()[0] == libvirt.VIR_DOMAIN_PMSUSPENDED:
            self._call("wake %s" % name, dom.pMWakeup, 0)
        else:
            self._call("resume %s" % name, dom.resume)

    def stop(self, name, timeout):
        """ACPI shutdown, then power off if the guest has not stopped within ``timeout`` seconds."""
        self.runner.apply("stop %s" % name, self._stop, self.lookup(name), timeout)

    def domain_call(self, what, name, method, *args):
        dom = self.lookup(name)
        return self._call("%s %s" % (what, name), getattr(dom, method), *args)

    def _stop(self, dom, timeout):
        if dom.state()[0] in (libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PMSUSPENDED) or timeout <= 0:
            self._call("power off %s" % dom.name(), dom.destroy)
            return
        with contextlib.suppress(libvirt.libvirtError):
            dom.shutdown()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not dom.isActive():
                return
            time.sleep(0.5)
        if dom.isActive():
            self._call("power off %s" % dom.name(), dom.destroy)

    def delete(self, name, keep_disk=False):
        dom = self.lookup(name)
        if dom is not None:
            self.runner.apply("delete domain %s" % name, self._undefine, dom)
        if not keep_disk:
            self.runner.apply("remove %s" % self.paths(name)["dir"], shutil.rmtree, self.paths(name)["dir"], True)

    def _undefine(self, dom):
        # Its volumes' CHAP secrets go with it, the boot volume's too (the storage side's exports are the
        # runbook's to remove).
        defined = parse_domain_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        volumes = defined.volumes + ([defined.boot_volume] if defined.boot_volume else [])
        if dom.isActive():
            self._call("power off %s" % dom.name(), dom.destroy)
        flags = (libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                 | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
        self._call("undefine %s" % dom.name(), dom.undefineFlags, flags)
        for disk in volumes:
            self._remove_secret(disk.secret_usage)

    # --- volumes ----------------------------------------------------------------

    def attach_volume(self, name, disk, password=None):
        """Attach a VolumeDisk: its CHAP password into a libvirt secret (a library call, never argv), then the disk,
        to the running guest and to its definition."""
        self.runner.apply("attach volume %s to %s as %s" % (disk.volume_id, name, disk.device), self._attach_volume,
                          name, disk, password)

    def _attach_volume(self, name, disk, password):
        dom = self.lookup(name)
        if password is not None:
            self._set_secret(disk.secret_usage, password)
        flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG
        if dom.isActive():
            flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
        try:
            self._call("attach volume %s to %s" % (disk.volume_id, name), dom.attachDeviceFlags, disk.xml(), flags)
        except NimbusError:
            self._remove_secret(disk.secret_usage)
            raise

    def set_volume_secret(self, disk, password):
        """The CHAP password of a volume disk into its libvirt secret (a library call, never argv)."""
        self.runner.apply("set the CHAP secret of volume %s" % disk.volume_id, self._set_secret, disk.secret_usage,
                          password)

    def remove_volume_secret(self, disk):
        self.runner.apply("remove the CHAP secret of volume %s" % disk.volume_id, self._remove_secret,
                          disk.secret_usage)

    def _set_secret(self, usage, password):
        try:
            secret = self.conn.secretLookupByUsage(libvirt.VIR_SECRET_USAGE_TYPE_ISCSI, usage)
        except libvirt.libvirtError:
            # private: libvirt never gives the value back through its API.
            xml = ("<secret ephemeral='no' private='yes'><description>CHAP secret of %s</description>"
                   "<usage type='iscsi'><target>%s</target></usage></secret>" % (usage, usage))
            secret = self._call("define the secret %s" % usage, self.conn.secretDefineXML, xml)
        self._call("set the secret %s" % usage, secret.setValue, password.encode("utf-8"))

    def _remove_secret(self, usage):
        try:
            secret = self.conn.secretLookupByUsage(libvirt.VIR_SECRET_USAGE_TYPE_ISCSI, usage)
        except libvirt.libvirtError:
            return
        self._call("remove the secret %s" % usage, secret.undefine)

    def detach_volume(self, name, disk, timeout=30):
        """Detach a VolumeDisk from the running guest (which must let it go within ``timeout`` seconds) and from
        the definition, then remove its secret."""
        self.runner.apply("detach volume %s (%s) from %s" % (disk.volume_id, disk.device, name), self._detach_volume,
                          name, disk, timeout)

    def _detach_volume(self, name, disk, timeout):
        dom = self.lookup(name)
        if dom.isActive() and self._live_volume(dom, disk.volume_id) is not None:
            self._call("detach volume %s from %s" % (disk.volume_id, name), dom.detachDeviceFlags, disk.xml(),
                       libvirt.VIR_DOMAIN_AFFECT_LIVE)
            # The guest is asked to let the device go: wait until it has (virtio-blk unplug needs its answer).
            deadline = time.monotonic() + timeout
            while self._live_volume(dom, disk.volume_id) is not None:
                if time.monotonic() > deadline:
                    raise NimbusError("instance %s did not release volume %s (%s) within %d s; it is still attached"
                                      % (name, disk.volume_id, disk.device, timeout))
                time.sleep(0.5)
        if self._config_volume(dom, disk.volume_id) is not None:
            self._call("detach volume %s from %s" % (disk.volume_id, name), dom.detachDeviceFlags, disk.xml(),
                       libvirt.VIR_DOMAIN_AFFECT_CONFIG)
        self._remove_secret(disk.secret_usage)

    @staticmethod
    def _volumes_in(xml):
        return {v.volume_id: v for v in parse_domain_xml(xml).volumes}

    def _live_volume(self, dom, volume_id):
        return self._volumes_in(dom.XMLDesc(0)).get(volume_id)

    def _config_volume(self, dom, volume_id):
        return self._volumes_in(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)).get(volume_id)

    def has_managed_save(self, name):
        dom = self.lookup(name)
        return bool(dom is not None and dom.hasManagedSaveImage(0))

    def refresh_pools(self):
        """Let `virsh vol-list` see the files just made or removed; best effort."""
        self.runner.apply("refresh the storage pools", self._refresh_pools)

    def _refresh_pools(self):
        for pool in self.settings.get("pools", {}).values():
            with contextlib.suppress(libvirt.libvirtError):
                self.conn.storagePoolLookupByName(pool["name"]).refresh(0)

    @staticmethod
    def _call(what, func, *args):
        try:
            return func(*args)
        except libvirt.libvirtError as e:
            raise NimbusError("libvirt could not %s: %s" % (what, e))


def check_feasible(hv, spec, after, image):
    """Refuse, before anything changes, what this host cannot run."""
    host = hv.host_info()
    if after.ram_mb > host["memory_mb"]:
        raise ValidationError("instance %s: ram_mb %d is more than this hypervisor's %d MiB of memory"
                              % (spec.name, after.ram_mb, host["memory_mb"]))
    if after.flavor and image and after.flavor.disk_gb and image["virtual_size"] > after.flavor.disk_gb * GIB:
        raise ValidationError("instance %s: image %s is %.1f GiB, larger than the flavor's disk_gb %d"
                              % (spec.name, after.image, image["virtual_size"] / GIB, after.flavor.disk_gb))
    in_use = hv.macs_in_use(exclude=spec.name)
    for nic in after.nics:
        if nic.mac in in_use:
            raise ValidationError("instance %s: MAC %s is already used by instance %s"
                                  % (spec.name, nic.mac, in_use[nic.mac]))
        if not os.path.isdir("/sys/class/net/%s/bridge" % nic.bridge):
            raise ValidationError("instance %s: bridge %s does not exist on this hypervisor" % (spec.name, nic.bridge))
    for label, path in (("kernel", after.kernel), ("initrd", after.initrd)):
        if path and not os.path.isfile(path):
            raise ValidationError("instance %s: %s %s does not exist on this hypervisor" % (spec.name, label, path))
    if after.initrd and not after.kernel:
        raise ValidationError("instance %s: initrd needs kernel" % spec.name)


def converge(hv, plan, spec, image, shutdown_timeout=60, keep_disk=False, boot_password=None):
    """Carry out a plan from ``_compute.plan``; a failed create leaves nothing behind. ``boot_password``: the
    CHAP password of a new instance's boot volume."""
    name = spec.name
    paths = hv.paths(name)
    if plan.delete:
        hv.delete(name, keep_disk=keep_disk)
    if plan.recreate:
        hv.delete(name, keep_disk=False)
    if plan.create or plan.recreate:
        boot_volume = plan.after.boot_volume
        try:
            hv.make_dir(name)
            if boot_volume is None:
                hv.create_disk(name, image, plan.after.flavor.disk_gb)
            elif boot_password is not None:
                hv.set_volume_secret(boot_volume, boot_password)
            if plan.write_seed:
                hv.write_seed(name, spec.seed.files(plan.after.uuid))
            hv.define(build_domain_xml(plan.after, paths))
            if "start" in plan.power:
                hv.start(name)
        except NimbusError:
            hv.delete(name, keep_disk=False)
            if boot_volume is not None:
                hv.remove_volume_secret(boot_volume)
            raise
    else:
        if "stop" in plan.power:
            hv.stop(name, shutdown_timeout)
        if plan.write_seed:
            hv.write_seed(name, spec.seed.files(plan.after.uuid))
        if plan.grow_disk_gb:
            hv.grow_disk(name, plan.grow_disk_gb)
        if plan.redefine:
            hv.define(build_domain_xml(plan.after, paths))
        elif plan.update_metadata:
            hv.set_metadata(name, plan.after)
        if "start" in plan.power:
            hv.start(name)
        if "resume" in plan.power:
            hv.resume(name)
    if plan.changed:
        hv.refresh_pools()


# instance_action: action -> (states it acts from, states where it is already
# done, how). Actions already done report no change; reboot always acts.
ACTIONS = {
    "start": (("shutoff", "crashed"), ("running", "blocked"), "start"),
    "shutdown": (("running", "blocked", "paused", "pmsuspended", "shutdown"), ("shutoff",), "stop"),
    "reboot": (("running", "blocked"), (), "reboot"),
    "pause": (("running", "blocked"), ("paused",), "suspend"),
    "unpause": (("paused",), ("running", "blocked"), "resume"),
    "suspend": (("running", "blocked", "paused"), (), "managedSave"),
    "resume": (("shutoff", "paused", "pmsuspended"), ("running", "blocked"), "resume"),
}

# The state each action leaves the instance in, for check mode's prediction.
ACTION_RESULTS = {"start": "running", "shutdown": "shutoff", "reboot": "running", "pause": "paused",
                  "unpause": "running", "suspend": "shutoff", "resume": "running"}


def run_action(hv, inst, action, reboot_type="soft", shutdown_timeout=60):
    """Carry out an imperative action on an instance; returns whether it acted."""
    acts_from, done_in, how = ACTIONS[action]
    if action == "suspend" and inst.state == "shutoff" and hv.has_managed_save(inst.name):
        return False
    if inst.state in done_in:
        return False
    if inst.state not in acts_from:
        raise ValidationError("cannot %s instance %s while it is %s" % (action, inst.name, inst.state))
    name = inst.name
    if how == "start" or (action == "resume" and inst.state == "shutoff"):
        if action == "resume" and not hv.has_managed_save(name):
            raise ValidationError("cannot resume instance %s: it is shut off and was not suspended" % name)
        hv.start(name)
    elif how == "stop":
        hv.stop(name, shutdown_timeout)
    elif how == "reboot":
        method, arg = ("reset", 0) if reboot_type == "hard" else ("reboot", 0)
        hv.runner.apply("%s reboot %s" % (reboot_type, name), hv.domain_call, "reboot", name, method, arg)
    elif action == "resume" and inst.state == "pmsuspended":
        hv.runner.apply("wake %s" % name, hv.domain_call, "wake", name, "pMWakeup", 0)
    else:
        hv.runner.apply("%s %s" % (action, name), hv.domain_call, action, name, how)
    return True


def capacity(total, reserved, ratio, used):
    """Nova placement's arithmetic: what the scheduler may still place here."""
    # The ratio as written, as the scheduler reads it: 100 at 1.15 is 115, not binary floating point's 114.
    cap = int((total - reserved) * Fraction(repr(float(ratio))))
    return {"total": total, "reserved": reserved, "ratio": ratio, "capacity": cap, "used": used, "free": cap - used}


def hypervisor_summary(hv):
    """Resources, ratios and instances of this hypervisor, as the scheduler reads them."""
    settings = hv.settings
    host = hv.host_info()
    st = os.statvfs(hv.instances_dir)
    disk_total = int(st.f_blocks * st.f_frsize // GIB)
    instances = hv.list_instances()
    used = {"vcpus": 0, "ram_mb": 0, "disk_gb": 0}
    listed = []
    for inst in instances:
        # Stopped instances keep their allocation, as in Nova: they may start at any time.
        disk = inst.flavor.disk_gb if inst.flavor else 0
        used["vcpus"] += inst.vcpus
        used["ram_mb"] += inst.ram_mb
        used["disk_gb"] += disk
        listed.append({"name": inst.name, "uuid": inst.uuid, "project": inst.project, "state": inst.state,
                       "vcpus": inst.vcpus, "ram_mb": inst.ram_mb, "disk_gb": disk,
                       "server_group": inst.server_group, "managed": inst.managed})
    ratios = settings.get("allocation_ratios", {})
    reserved = settings.get("reserved", {})
    totals = {"vcpus": host["cpus"], "ram_mb": host["memory_mb"], "disk_gb": disk_total}
    result = {
        "hostname": hv.hostname(),
        "virt_type": hv.virt_type,
        "nested": bool(settings.get("nested", False)),
        "availability_zone": settings.get("availability_zone", "nova"),
        "aggregates": list(settings.get("aggregates", [])),
        "cpu_model": host["model"],
        "instances": sorted(listed, key=lambda i: i["name"]),
    }
    for key, total in totals.items():
        result[key] = capacity(total, int(reserved.get(key, 0)), float(ratios.get(key, 1.0)), used[key])
    return result
