# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bare-metal nodes on a provisioning host (the ``pxe`` role's): their records and what dnsmasq answers.

A node is a JSON record in ``<state_dir>/nodes/<name>.json`` (mode 0600: it holds the BMC's password), read
and written under one lock by ``nimbus.cloud.baremetal_node``. dnsmasq answers DHCP only for the MACs of
enrolled nodes: its ``dhcp-hostsfile`` is made whole from the records after every change, then dnsmasq is
told to read it again (SIGHUP through its unit's reload). A lease dnsmasq still holds for a MAC that left is
given back with ``dhcp_release``, so its address can be handed to another node at once.

Every write goes through ``runner.apply`` or ``runner.change``, the collection's check-mode gate.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import json
import os
import re
import secrets
import time
import uuid

from ansible_collections.nimbus.cloud.plugins.module_utils import _images as images
from ansible_collections.nimbus.cloud.plugins.module_utils import _ipmi
from ansible_collections.nimbus.cloud.plugins.module_utils._errors import NimbusError, ValidationError
from ansible_collections.nimbus.cloud.plugins.module_utils._files import atomic_write, locked, read_settings, read_text, remove

SETTINGS_FILE = "/etc/nimbus/pxe.json"

# The states a task may ask for, in order: each one's node has passed through those before it (Ironic's names).
STATES = ("enrolled", "manageable", "available", "active")
# States whose node a task can clean or deploy: it has a BMC that answered.
# "cleaning" and "deploying" are the states a node is in while its ramdisk works: a run that was killed leaves
# the node in them, and the next run cleans (and deploys) it again.
PROVISIONABLE = ("manageable", "available", "active", "cleaning", "deploying", "deploy failed", "clean failed")

# A node's name is its DHCP host name and a file name: a DNS label, lower case.
_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_MAC = re.compile(r"^([0-9a-f]{2}[:-]){5}[0-9a-f]{2}$")

# Properties a scheduler or an operator reads (Ironic's names); nothing else is stored.
PROPERTIES = {
    "cpus": int,
    "memory_mb": int,
    "local_gb": int,
    "cpu_arch": ("x86_64", "aarch64"),
    "boot_mode": ("bios", "uefi"),
}

# What of the BMC option a record keeps (the password apart: it is kept, never shown).
BMC_KEPT = ("address", "port", "username", "password", "privilege", "allow_insecure")


# --- input ----------------------------------------------------------------------------

def check_name(name):
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValidationError("name %r must be a DNS label: 1-63 of a-z, 0-9 and '-', not starting or ending with "
                              "'-'" % (name,))
    return name


def check_macs(macs):
    """The MACs in lower case with colons; unicast and distinct."""
    if not macs:
        raise ValidationError("macs must name at least one of the node's network interfaces")
    found = []
    for mac in macs:
        if not isinstance(mac, str) or not _MAC.fullmatch(mac.lower()):
            raise ValidationError("macs: %r is not a MAC address (six hexadecimal pairs)" % (mac,))
        mac = mac.lower().replace("-", ":")
        first = int(mac[:2], 16)
        if first & 1 or mac == "00:00:00:00:00:00":
            raise ValidationError("macs: %s is a multicast or null address, not an interface's" % mac)
        if mac in found:
            raise ValidationError("macs: %s is given twice" % mac)
        found.append(mac)
    return found


def check_properties(properties):
    checked = {}
    for key, value in (properties or {}).items():
        kind = PROPERTIES.get(key)
        if kind is None:
            raise ValidationError("properties: %r is not one of %s" % (key, ", ".join(sorted(PROPERTIES))))
        if kind is int:
            # Ansible may hand a number over as text; a bool is no count.
            if isinstance(value, bool) or not re.fullmatch(r"[0-9]{1,9}", str(value)) or int(value) < 1:
                raise ValidationError("properties.%s must be a positive whole number, not %r" % (key, value))
            checked[key] = int(value)
        elif value not in kind:
            raise ValidationError("properties.%s must be one of %s, not %r" % (key, ", ".join(kind), value))
        else:
            checked[key] = value
    return checked


def kept_bmc(options):
    return {key: options[key] for key in BMC_KEPT}


def bmc_view(bmc):
    """The BMC as a result or diff shows it: everything but the password."""
    return None if bmc is None else {key: bmc[key] for key in BMC_KEPT if key != "password"}


def node_view(record):
    """A record as results and diffs show it."""
    if record is None:
        return None
    view = {key: value for key, value in record.items() if key != "bmc"}
    view["bmc"] = bmc_view(record.get("bmc"))
    return view


def diff_views(before, after):
    """The diff's two views; a changed BMC password shows as such, never as itself."""
    before_view, after_view = node_view(before), node_view(after)
    if (before or {}).get("bmc") and after.get("bmc") and before["bmc"]["password"] != after["bmc"]["password"]:
        before_view["bmc"]["password"] = "(set)"
        after_view["bmc"]["password"] = "(changed)"
    return before_view, after_view


def session_options(kept, given):
    """The options of a session with a node's BMC: the task's own when it gives them (its timeouts and retries
    too), else the record's with the defaults for what a record does not keep."""
    if given is not None:
        return given
    defaults = {key: spec["default"] for key, spec in _ipmi.bmc_options().items() if "default" in spec}
    return dict(defaults, **kept)


def drift(record, power, boot_device):
    """What the BMC says that the record does not: a list of {field, recorded, bmc}."""
    found = []
    for field, truth in (("power", power), ("boot_device", boot_device)):
        if record.get(field) is not None and record[field] != truth:
            found.append({"field": field, "recorded": record[field], "bmc": truth})
    return found


# --- the provisioning host ------------------------------------------------------------

def load_settings(path=None):
    return read_settings(path or SETTINGS_FILE, "provisioning host", "pxe")


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_record(name):
    return {"name": name, "uuid": str(uuid.uuid4()), "provision_state": "enrolled", "macs": [], "address": None,
            "properties": {}, "bmc": None, "power": None, "boot_device": None, "last_error": None, "instance_info": None,
            "created_at": now(), "updated_at": None}


def hosts_text(records):
    """dnsmasq's dhcp-hostsfile: a line per node, its MACs sharing its one fixed address and host name."""
    lines = ["# nimbus.cloud.baremetal_node: the enrolled nodes (rewritten whole on every change)\n"]
    for record in sorted(records.values(), key=lambda r: r["name"]):
        lines.append(",".join(record["macs"] + [record["address"], record["name"]]) + "\n")
    return "".join(lines)


def parse_leases(text):
    """dnsmasq's lease file: {mac: address} (``expiry mac address host client-id`` per line)."""
    leases = {}
    for line in (text or "").splitlines():
        fields = line.split()
        if len(fields) >= 3 and _MAC.fullmatch(fields[1]):
            leases[fields[1].lower()] = fields[2]
    return leases


class Provisioner:
    """The provisioning host's node records and dnsmasq's view of them."""

    def __init__(self, runner, settings=None):
        self.runner = runner
        self.settings = settings if settings is not None else load_settings()
        self.state_dir = self.settings["state_dir"]
        self.nodes_dir = os.path.join(self.state_dir, "nodes")

    def lock(self):
        return locked(os.path.join(self.state_dir, ".lock"), check_mode=self.runner.check_mode)

    def record_path(self, name):
        return os.path.join(self.nodes_dir, name + ".json")

    def records(self):
        found = {}
        try:
            names = sorted(os.listdir(self.nodes_dir))
        except FileNotFoundError:
            return found
        for file_name in names:
            if not file_name.endswith(".json"):
                continue
            path = os.path.join(self.nodes_dir, file_name)
            try:
                record = json.loads(read_text(path))
            except (TypeError, ValueError) as e:
                raise NimbusError("node record %s cannot be read (%s): fix or remove it" % (path, e))
            found[record["name"]] = record
        return found

    def leases(self):
        return parse_leases(read_text(self.settings["leasefile"]))

    def allocate(self, name, macs, records):
        """The node's address: the one it has, or the first of the range that no other node holds and dnsmasq
        leases to none of another node's MACs (a lease outlives the node it was given to until it expires or
        is given back)."""
        if records.get(name, {}).get("address"):
            return records[name]["address"]
        taken = {r["address"] for n, r in records.items() if n != name}
        taken.add(self.settings["server_address"])
        leases = self.leases()
        taken.update(address for mac, address in leases.items() if mac not in macs)
        first = ipaddress.ip_address(self.settings["range_start"])
        last = ipaddress.ip_address(self.settings["range_end"])
        # A machine that still holds a lease of the range keeps that address.
        for mac in macs:
            held = leases.get(mac)
            if held and held not in taken and first <= ipaddress.ip_address(held) <= last:
                return held
        address = first
        while address <= last:
            if str(address) not in taken:
                return str(address)
            address += 1
        raise NimbusError("no free address left in the provisioning range %s-%s (%d nodes enrolled)" % (
            first, last, len(records)))

    def save(self, record):
        record = dict(record, updated_at=now())
        self.runner.apply("write node record %s" % self.record_path(record["name"]), self._write, record)
        return record

    def _write(self, record):
        os.makedirs(self.nodes_dir, mode=0o700, exist_ok=True)
        atomic_write(self.record_path(record["name"]), json.dumps(record, indent=2, sort_keys=True) + "\n",
                     mode=0o600)

    def delete(self, name):
        self.runner.apply("remove node record %s" % self.record_path(name), remove, self.record_path(name))

    def publish(self, records):
        """dnsmasq's hosts file made from ``records``; True when it changed (dnsmasq then reads it again)."""
        path = self.settings["hostsfile"]
        text = hosts_text(records)
        if read_text(path) == text:
            return False
        self.runner.apply("write %s" % path, atomic_write, path, text, 0o644)
        self.runner.change(["systemctl", "reload-or-restart", self.settings["dnsmasq_unit"]])
        return True

    def release(self, macs):
        """Give back what dnsmasq leases to ``macs`` (MACs that are no longer any node's)."""
        leases = self.leases()
        for mac in sorted(macs):
            if mac in leases:
                self.runner.change(["dhcp_release", self.settings["interface"], leases[mac], mac])


def enrolled_node(provisioner, name):
    """The record of node ``name`` on this provisioning host, which must have a BMC (for the modules that reach a
    machine by its node's name)."""
    record = provisioner.records().get(check_name(name))
    if record is None:
        raise NimbusError("node %s is not enrolled on this host (nimbus.cloud.baremetal_node enrols it)" % name)
    if not record.get("bmc"):
        raise NimbusError("node %s has no BMC: give nimbus.cloud.baremetal_node its bmc" % name)
    return record


def track_power(provisioner, record, power, boot_device):
    """After a module of the collection changed a node's power or boot device through its BMC: the record takes
    the new state, so that it is not reported as drift. Only a record that tracks them (manageable and beyond)."""
    if record.get("power") is None:
        return record
    updated = dict(record, power=power, boot_device=boot_device)
    return record if updated == record else provisioner.save(updated)


# --- deploy and clean ------------------------------------------------------------------
#
# A deploy or a cleaning is a job for the node's deploy ramdisk: the module writes ``<state_dir>/jobs/<name>.json``
# (what to do, the image, a one-time token) and an iPXE script for each of the node's MACs, boots the node from
# the network, and waits for ``<name>.result.json``, which the callback service (roles/pxe/files/pxe_callback.py)
# writes when the ramdisk reports. The job and the scripts are gone once the wait ends, whatever its outcome.

DEPLOY_FAILED = "deploy failed"
CLEAN_FAILED = "clean failed"
_DISK = re.compile(r"^/dev/[a-z0-9]{1,16}$")


def check_root_device(path):
    """The disk a deploy writes, as the ramdisk's kernel names it (a whole disk under /dev)."""
    if path is not None and not _DISK.fullmatch(path):
        raise ValidationError("root_device %r must be a whole disk such as /dev/sda or /dev/nvme0n1" % (path,))
    return path or ""


def script_name(mac):
    """A MAC's iPXE script in ``<http_dir>/nodes``: what boot.ipxe chains to (``${netX/mac:hexhyp}``)."""
    return mac.replace(":", "-") + ".ipxe"


def ipxe_script(settings, name, mode):
    """The script that boots the deploy kernel and ramdisk, told where the callback service listens. The serial
    port is the last console, the ramdisk's /dev/console: its messages reach a BMC's serial-over-LAN."""
    http = settings["http_url"]
    callback = "http://%s:%d" % (settings["server_address"], int(settings["callback_port"]))
    return ("#!ipxe\n"
            "# nimbus.cloud.baremetal_node: %s of node %s\n"
            "kernel %s/deploy/vmlinuz nimbus.callback=%s console=tty0 console=ttyS0,115200\n"
            "initrd %s/deploy/initrd.img\n"
            "boot || exit\n") % (mode, name, http, callback, http)


def new_job(record, mode, image=None, disk=""):
    """A job for ``record``'s ramdisk; ``image`` ({url, size, sha256}) for a deploy. The token is kept in the job
    until the ramdisk takes it (the callback service then keeps only its sha256)."""
    token = secrets.token_urlsafe(32)
    job = {"node": record["name"], "mode": mode, "address": record["address"], "macs": list(record["macs"]),
           "token": token, "token_sha256": hashlib.sha256(token.encode("ascii")).hexdigest(), "issued_at": None,
           "image_url": "", "image_size": "", "image_sha256": "", "disk": disk, "created_at": now()}
    if image is not None:
        job.update(image_url=image["url"], image_size=str(image["size"]), image_sha256=image["sha256"])
    return job


def step_timings(reported, total, result, powered_on_at=None):
    """Where one ramdisk boot's time went, in seconds: from power on to the ramdisk's kernel (firmware, PXE, the
    kernel and ramdisk downloads), to its DHCP lease (kernel boot, drivers, DHCP), its job, the step's work (the
    image written and read back, or the wipe), its report, and from the report to the end (power off, boot
    device, power on). The ramdisk's marks are its uptimes; a part it did not report is None. ``powered_on_at``
    (the host's clock, seconds since the epoch) lines the boot up with dnsmasq's and the web server's logs."""
    result = result or {}
    uptime, marks = result.get("uptime"), result.get("marks") or {}

    def between(start, end):
        return None if start is None or end is None else round(max(end - start, 0.0), 1)

    lease, job, done = marks.get("lease"), marks.get("job"), marks.get("done")
    return {"total_s": round(total, 1), "reported_s": round(reported, 1), "ramdisk_uptime_s": uptime,
            "firmware_s": between(uptime, reported), "lease_s": lease, "job_s": between(lease, job),
            "work_s": between(job, done), "after_report_s": between(reported, total),
            "powered_on_at": None if powered_on_at is None else round(powered_on_at, 3)}


def result_error(result, job):
    """What is wrong with a ramdisk's report of ``job``, or None when it did what it was asked."""
    if result is None:
        return "the deploy ramdisk never reported"
    if result.get("mode") != job["mode"]:
        return "the report is of a %s, not of this %s" % (result.get("mode"), job["mode"])
    if result.get("status") != "ok":
        return "the deploy ramdisk reports a failure: %s" % (result.get("message") or "(no message)")
    if job["mode"] == "deploy" and result.get("sha256") != job["image_sha256"]:
        return "the disk holds %s after the write, the image is %s" % (result.get("sha256"), job["image_sha256"])
    return None


class Jobs:
    """The jobs of a provisioning host's nodes, and their iPXE scripts."""

    def __init__(self, provisioner):
        self.provisioner = provisioner
        self.runner = provisioner.runner
        self.settings = provisioner.settings
        self.directory = os.path.join(provisioner.state_dir, "jobs")

    def path(self, name, suffix=".json"):
        return os.path.join(self.directory, name + suffix)

    def start(self, record, job):
        """The job and the node's scripts, written (a change: gated)."""
        script = ipxe_script(self.settings, record["name"], job["mode"])
        self.runner.apply("write the %s job of node %s" % (job["mode"], record["name"]), self._write, job)
        for mac in record["macs"]:
            path = os.path.join(self.settings["http_dir"], "nodes", script_name(mac))
            self.runner.apply("write %s" % path, atomic_write, path, script, 0o644)

    def lock(self):
        """The lock of the jobs directory, which the callback service holds around each of its reads and
        writes of a job: a lookup never writes back a job this run has just replaced or removed."""
        return locked(os.path.join(self.directory, ".lock"), check_mode=self.runner.check_mode)

    def _write(self, job):
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        with self.lock():
            remove(self.path(job["node"], ".result.json"))
            atomic_write(self.path(job["node"]), json.dumps(job, indent=2, sort_keys=True) + "\n", mode=0o600)

    def result(self, name):
        text = read_text(self.path(name, ".result.json"))
        return None if text is None else json.loads(text)

    def wait(self, name, timeout, sleep=time.sleep, clock=time.monotonic, every=0.5):
        """The node's result, or None when none came within ``timeout`` seconds."""
        deadline = clock() + timeout
        while True:
            found = self.result(name)
            if found is not None or clock() >= deadline:
                return found
            sleep(every)

    def end(self, record):
        """The job, its result and the node's scripts, removed (the node boots on from its disk)."""
        paths = [self.path(record["name"]), self.path(record["name"], ".result.json")]
        paths += [os.path.join(self.settings["http_dir"], "nodes", script_name(mac)) for mac in record["macs"]]
        if not any(os.path.exists(path) for path in paths):
            return
        self.runner.apply("remove the job and the scripts of node %s" % record["name"], self._remove, paths)

    def _remove(self, paths):
        with self.lock():
            for path in paths:
                remove(path)


class DeployImages:
    """Images of the store made ready for deploys: pulled into ``<state_dir>/image-cache`` (its sha512 checked
    against the store's record, its format read under limits) and converted once to raw under
    ``<http_dir>/images/<id>.raw``, whose size and sha256 are kept in ``<state_dir>/images/<id>.json`` (the
    ramdisk checks what it wrote against them)."""

    def __init__(self, provisioner, opener=None):
        settings = provisioner.settings
        url = settings.get("image_store_url") or None
        self.runner = provisioner.runner
        self.cache = images.Cache(self.runner, os.path.join(provisioner.state_dir, "image-cache"), url,
                                  opener=opener or (images.store_opener if url else None))
        self.raw_dir = os.path.join(settings["http_dir"], "images")
        self.meta_dir = os.path.join(provisioner.state_dir, "images")
        self.http_url = settings["http_url"]

    def meta(self, image_id):
        text = read_text(os.path.join(self.meta_dir, image_id + ".json"))
        return None if text is None else json.loads(text)

    def prepare(self, image, project):
        """The store's record of ``image`` and {url, size, sha256} of its raw copy (None in check mode when the
        copy is still to be made)."""
        record = self.cache.resolve(image, project)
        meta = self.meta(record.id)
        if meta is None or meta.get("os_hash_value") != record.os_hash_value:
            cached = self.cache.ensure(record)
            self.runner.apply("convert image %s (%s) to raw in %s" % (record.name, record.id, self.raw_dir),
                              self._convert, record, cached["path"], cached["format"])
            meta = self.meta(record.id)
        if meta is None:
            return record, None
        return record, {"url": "%s/images/%s.raw" % (self.http_url, record.id), "size": meta["size"],
                        "sha256": meta["sha256"]}

    def _convert(self, record, source, disk_format):
        os.makedirs(self.raw_dir, mode=0o755, exist_ok=True)
        os.makedirs(self.meta_dir, mode=0o700, exist_ok=True)
        part = os.path.join(self.raw_dir, ".%s.part" % record.id)
        try:
            remove(part)
            # The format the cache found the data to have when it pulled it (the store's record then), never
            # probed again: a raw image that looks like another format stays raw.
            self.runner.change(["qemu-img", "convert", "-f", disk_format, "-O", "raw", source, part])
            digests = images.file_digests(part, "sha256")
            os.chmod(part, 0o644)
            os.replace(part, os.path.join(self.raw_dir, record.id + ".raw"))
        finally:
            remove(part)
        atomic_write(os.path.join(self.meta_dir, record.id + ".json"), json.dumps({
            "id": record.id, "name": record.name, "os_hash_value": record.os_hash_value, "size": digests.size,
            "sha256": digests.hexdigest("sha256")}, indent=2, sort_keys=True) + "\n", mode=0o600)
