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
import errno
import grp
import hashlib
import ipaddress
import json
import os
import re
import secrets
import stat
import time
import uuid

from ansible_collections.nimbus.cloud.plugins.module_utils import _images as images
from ansible_collections.nimbus.cloud.plugins.module_utils import _ipmi
from ansible_collections.nimbus.cloud.plugins.module_utils._errors import NimbusError, ValidationError
from ansible_collections.nimbus.cloud.plugins.module_utils._files import (
    atomic_write, locked, read_settings, read_text, remove, replace_file)

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

def json_files(directory):
    """The names of the JSON files in ``directory``, sorted (none when it does not exist)."""
    try:
        return sorted(name for name in os.listdir(directory) if name.endswith(".json"))
    except FileNotFoundError:
        return []


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
        for file_name in json_files(self.nodes_dir):
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
# the network, and waits for ``<state_dir>/reports/<name>.result.json``, which the callback service
# (roles/pxe/files/pxe_callback.py) writes when the ramdisk reports. The job, the service's reports of it and the
# scripts are gone once the wait ends, whatever its outcome.
#
# The callback service runs as its own user: the jobs are root's, readable by its group (mode 0640), and the
# reports directory is the service's. Root reads a report as data from a directory another user writes: never
# through a link, never anything but a small regular file.
#
# The web server serves an image only while a deploy job names it, as Ironic links an image under its HTTP root
# for one deploy: a deploy job's image is a link ``<http_dir>/images/<random>.raw`` to the raw copy (kept outside
# the web server's root), made with the job and removed with it. Nobody on the provisioning network can fetch
# an image no node is being deployed with, nor guess the name of one that is.

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


# A served image's link: 128 random bits, as hexadecimal (the web server's configuration takes no other name).
_IMAGE_LINK = re.compile(r"^[0-9a-f]{32}\.raw$")
# A job older than this is a killed run's (the callback service hands none out): its image is served no more.
MAX_JOB_AGE = 7200


def new_job(settings, record, mode, image=None, disk="", next_step=""):
    """A job for ``record``'s ramdisk; ``image`` ({path, size, sha256} of a raw copy) for a deploy, served under a
    name of the job's own; ``next_step``: the mode of the job the ramdisk asks for once it reported this one (fast
    track), instead of powering the machine off. The token is the ramdisk's for this job alone."""
    token = secrets.token_urlsafe(32)
    job = {"node": record["name"], "mode": mode, "address": record["address"], "macs": list(record["macs"]),
           "token": token, "token_sha256": hashlib.sha256(token.encode("ascii")).hexdigest(),
           "image_url": "", "image_size": "", "image_sha256": "", "image_link": "", "image_path": "", "disk": disk,
           "next_step": next_step, "created_at": now()}
    if image is not None:
        link = secrets.token_hex(16) + ".raw"
        job.update(image_url="%s/images/%s" % (settings["http_url"], link), image_link=link,
                   image_path=image["path"], image_size=str(image["size"]), image_sha256=image["sha256"])
    return job


def job_age(job, clock=time.time):
    """Seconds since ``job`` was made (a job whose time cannot be read is as old as can be)."""
    try:
        made = datetime.datetime.strptime(job["created_at"], "%Y-%m-%dT%H:%M:%SZ")
    except (KeyError, TypeError, ValueError):
        return float("inf")
    return clock() - made.replace(tzinfo=datetime.timezone.utc).timestamp()


def step_timings(reported, total, result, powered_on_at=None, booted=True):
    """Where one step's time went, in seconds: for a step that booted the ramdisk, from power on to the ramdisk's
    kernel (firmware, PXE, the kernel and ramdisk downloads), to its DHCP lease (kernel boot, drivers, DHCP), its
    job, the step's work (the image written and read back, or the wipe), its report, and from the report to the
    end (power off, boot device, power on; or the next step's start). A step the running ramdisk took on (fast
    track) starts at the last one's report: no firmware, no lease, ``job_s`` the wait for its job (the ramdisk's
    ``wait`` mark is its last report). The ramdisk's marks are its uptimes; a part it did not report is None.
    ``powered_on_at`` (the host's clock, seconds since the epoch) lines the boot up with dnsmasq's and the web
    server's logs."""
    result = result or {}
    uptime, marks = result.get("uptime"), result.get("marks") or {}

    def between(start, end):
        return None if start is None or end is None else round(max(end - start, 0.0), 1)

    lease, job, done = marks.get("lease"), marks.get("job"), marks.get("done")
    return {"total_s": round(total, 1), "reported_s": round(reported, 1), "ramdisk_uptime_s": uptime,
            "firmware_s": between(uptime, reported) if booted else None, "lease_s": lease if booted else None,
            "job_s": between(lease if booted else marks.get("wait"), job), "work_s": between(job, done),
            "after_report_s": between(reported, total),
            "powered_on_at": None if powered_on_at is None else round(powered_on_at, 3), "booted": booted}


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


# A report is a few hundred bytes; anything larger is not the callback service's.
MAX_REPORT = 65536


def read_report(path):
    """The bytes of the file at ``path``, which another user may write: opened without following a link or
    waiting on a FIFO, and only a regular file of MAX_REPORT bytes at most (FileNotFoundError when missing)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        if e.errno == errno.ENOENT:
            raise FileNotFoundError(path) from None
        raise NimbusError("the report %s cannot be read (%s): not taken" % (path, e.strerror))
    with os.fdopen(fd, "rb") as f:
        found = os.fstat(f.fileno())
        if not stat.S_ISREG(found.st_mode) or found.st_size > MAX_REPORT:
            raise NimbusError("the report %s is not a regular file of %d bytes at most: not taken" % (
                path, MAX_REPORT))
        return f.read(MAX_REPORT + 1)


class Jobs:
    """The jobs of a provisioning host's nodes, and their iPXE scripts."""

    def __init__(self, provisioner):
        self.provisioner = provisioner
        self.runner = provisioner.runner
        self.settings = provisioner.settings
        self.directory = os.path.join(provisioner.state_dir, "jobs")
        self.reports = os.path.join(provisioner.state_dir, "reports")

    def path(self, name, suffix=".json"):
        return os.path.join(self.directory, name + suffix)

    def report_path(self, name, suffix=".result.json"):
        return os.path.join(self.reports, name + suffix)

    def callback_gid(self):
        """The callback service's group, which reads the jobs (-1: the settings name none, the files' owner's)."""
        group = self.settings.get("callback_group")
        if not group:
            return -1
        try:
            return grp.getgrnam(group).gr_gid
        except KeyError:
            raise NimbusError("the callback service's group %s is missing: apply the nimbus.cloud.pxe role" % group)

    def start(self, record, job):
        """The job, its image's link and the node's scripts, written (a change: gated)."""
        script = ipxe_script(self.settings, record["name"], job["mode"])
        self.runner.apply("write the %s job of node %s" % (job["mode"], record["name"]), self._write, job)
        for mac in record["macs"]:
            path = os.path.join(self.settings["http_dir"], "nodes", script_name(mac))
            self.runner.apply("write %s" % path, atomic_write, path, script, 0o644)
        self.sweep()

    def lock(self):
        """The lock of the jobs directory, which the callback service holds around each of its reads and
        writes of a job: a lookup never writes back a job this run has just replaced or removed."""
        return locked(os.path.join(self.directory, ".lock"), check_mode=self.runner.check_mode)

    def _write(self, job):
        gid = self.callback_gid()
        os.makedirs(self.directory, mode=0o750, exist_ok=True)
        if job["image_link"]:
            os.makedirs(self.served_dir(), mode=0o755, exist_ok=True)
            link = os.path.join(self.served_dir(), job["image_link"])
            remove(link)
            os.symlink(job["image_path"], link)
        with self.lock():
            remove(self.report_path(job["node"]))
            remove(self.report_path(job["node"], ".issued.json"))
            replace_file(self.path(job["node"]), (json.dumps(job, indent=2, sort_keys=True) + "\n").encode("utf-8"),
                         0o640, gid=gid)

    def served_dir(self):
        return os.path.join(self.settings["http_dir"], "images")

    def live(self):
        """The jobs of this host that a ramdisk may still take: {node: job}."""
        found = {}
        for file_name in json_files(self.directory):
            try:
                job = json.loads(read_text(os.path.join(self.directory, file_name)) or "null")
            except ValueError:
                continue
            if isinstance(job, dict) and job_age(job) < MAX_JOB_AGE:
                found[file_name[:-len(".json")]] = job
        return found

    def sweep(self):
        """Whatever the web server's images directory holds that no live job names, removed: the links of
        ended or killed runs (and the raw copies an older version of the collection kept there)."""
        try:
            present = set(os.listdir(self.served_dir()))
        except FileNotFoundError:
            return
        named = {job.get("image_link") for job in self.live().values()}
        stale = sorted(name for name in present if name not in named or not _IMAGE_LINK.fullmatch(name))
        if stale:
            self.runner.apply("stop serving %s" % ", ".join(stale), self._unserve, stale)

    def _unserve(self, names):
        for name in names:
            remove(os.path.join(self.served_dir(), name))

    def result(self, name):
        """The callback service's report of node ``name``'s job, or None while there is none."""
        path = self.report_path(name)
        try:
            data = read_report(path)
        except FileNotFoundError:
            return None
        try:
            found = json.loads(data.decode("utf-8"))
        except ValueError:
            found = None
        if not isinstance(found, dict):
            raise NimbusError("the report %s is not a JSON object: not taken" % path)
        return found

    def wait(self, name, timeout, sleep=time.sleep, clock=time.monotonic, every=0.5):
        """The node's result, or None when none came within ``timeout`` seconds."""
        deadline = clock() + timeout
        while True:
            found = self.result(name)
            if found is not None or clock() >= deadline:
                return found
            sleep(every)

    def end(self, record):
        """The job, its result, its image's link and the node's scripts, removed (the node boots on from its
        disk)."""
        paths = [self.path(record["name"]), self.report_path(record["name"]),
                 self.report_path(record["name"], ".issued.json")]
        paths += [os.path.join(self.settings["http_dir"], "nodes", script_name(mac)) for mac in record["macs"]]
        if any(os.path.lexists(path) for path in paths):
            self.runner.apply("remove the job and the scripts of node %s" % record["name"], self._remove, paths)
        self.sweep()

    def _remove(self, paths):
        with self.lock():
            for path in paths:
                remove(path)


class DeployImages:
    """Images of the store made ready for deploys: pulled into ``<state_dir>/image-cache`` (its sha512 checked
    against the store's record, its format read under limits) and converted once to raw as
    ``<state_dir>/images/<id>.raw``, whose size and sha256 are kept in ``<state_dir>/images/<id>.json`` (the
    ramdisk checks what it wrote against them). The directory is not listed to others (mode 0711) and the records
    are root's: the web server reaches a raw copy only through a deploy job's link (``Jobs``)."""

    def __init__(self, provisioner, opener=None):
        settings = provisioner.settings
        url = settings.get("image_store_url") or None
        self.runner = provisioner.runner
        self.cache = images.Cache(self.runner, os.path.join(provisioner.state_dir, "image-cache"), url,
                                  opener=opener or (images.store_opener if url else None))
        self.directory = os.path.join(provisioner.state_dir, "images")

    def meta(self, image_id):
        text = read_text(os.path.join(self.directory, image_id + ".json"))
        return None if text is None else json.loads(text)

    def raw_path(self, image_id):
        return os.path.join(self.directory, image_id + ".raw")

    def prepare(self, image, project):
        """The store's record of ``image`` and {path, size, sha256} of its raw copy (None in check mode when the
        copy is still to be made)."""
        record = self.cache.resolve(image, project)
        meta = self.meta(record.id)
        if meta is None or meta.get("os_hash_value") != record.os_hash_value \
                or not os.path.isfile(self.raw_path(record.id)):
            cached = self.cache.ensure(record)
            self.runner.apply("convert image %s (%s) to raw in %s" % (record.name, record.id, self.directory),
                              self._convert, record, cached["path"], cached["format"])
            meta = self.meta(record.id)
        if meta is None:
            return record, None
        return record, {"path": self.raw_path(record.id), "size": meta["size"], "sha256": meta["sha256"]}

    def _convert(self, record, source, disk_format):
        os.makedirs(self.directory, mode=0o711, exist_ok=True)
        part = os.path.join(self.directory, ".%s.part" % record.id)
        try:
            remove(part)
            # The format the cache found the data to have when it pulled it (the store's record then), never
            # probed again: a raw image that looks like another format stays raw.
            self.runner.change(["qemu-img", "convert", "-f", disk_format, "-O", "raw", source, part])
            digests = images.file_digests(part, "sha256")
            os.chmod(part, 0o644)
            os.replace(part, self.raw_path(record.id))
        finally:
            remove(part)
        atomic_write(os.path.join(self.directory, record.id + ".json"), json.dumps({
            "id": record.id, "name": record.name, "os_hash_value": record.os_hash_value, "size": digests.size,
            "sha256": digests.hexdigest("sha256")}, indent=2, sort_keys=True) + "\n", mode=0o600)
