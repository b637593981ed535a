# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Volumes, their snapshots and their backups on a storage host (the ``volumes`` role).

A volume is a file in a backend's pool directory, named by its UUID, with its
JSON record beside it (``<id>.json``: name, size in GiB, type, format,
project, metadata, where it came from, its attachments). A volume type names
a backend and the format its volumes take (qcow2 or raw); a backend is a
directory with a capacity in GiB that the volumes' sizes may not pass
together (a full pool refuses a create or an extend before anything is made).

Snapshots of a qcow2 volume are internal qcow2 snapshots, tagged with the
snapshot's id (``qemu-img snapshot``); a raw volume's snapshot is a sparse copy
in ``snapshots/``. Either way the snapshot's record is
``snapshots/<id>.json``. Both are taken, and deleted, only while the volume is
not attached: the storage host must not change a file a guest is writing.

A backup is a compressed qcow2 copy in the backup directory with its record;
the record holds the sha256 of the backup file, checked before a restore.

Every new file is made under ``.incoming/`` and renamed into place once it is
complete, and the record is written last (and removed first): a failure, a
full disk or a bad source leaves nothing behind.

Settings (``/etc/nimbus/volumes.json``, written by the role)::

    {"backends": {"file": {"path": "/var/lib/nimbus/volumes", "capacity_gb": 100}},
     "types": {"standard": {"backend": "file", "format": "qcow2"}},
     "default_type": "standard",
     "backup_dir": "/var/lib/nimbus/volume-backups",
     "image_store_url": "http://store:9292",
     "lock": "/var/lib/nimbus/volumes.lock"}
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import ipaddress
import json
import os
import re
import secrets
import time
import uuid as uuidlib
from dataclasses import asdict, dataclass, field

from ansible_collections.nimbus.cloud.plugins.module_utils import _images as images
from ansible_collections.nimbus.cloud.plugins.module_utils import _tgt as tgtlib
from ansible_collections.nimbus.cloud.plugins.module_utils._errors import NimbusError, ValidationError
from ansible_collections.nimbus.cloud.plugins.module_utils._files import atomic_write, locked, read_settings, read_text, remove
from ansible_collections.nimbus.cloud.plugins.module_utils._resource import Call, Plan, ResourceModule, desired

SETTINGS = "/etc/nimbus/volumes.json"
FORMATS = ("qcow2", "raw")
GIB = 1024 ** 3
INCOMING = ".incoming"
SNAPSHOTS = "snapshots"
IMAGE_CACHE = ".images"
MAX_SIZE_GB = 16384
# A volume's attributes a task may change, and those fixed at its creation.
UPDATABLE = ("name", "description", "metadata", "bootable")
CREATE_ONLY = ("volume_type", "project")
DEFAULTS = {"description": "", "metadata": {}, "bootable": False, "project": None}
SNAPSHOT_UPDATABLE = ("name", "description", "metadata")
# Each attachment's CHAP password, root's only; the compute host's task reads it with no_log.
SECRETS_DIR = "/etc/nimbus/volume-secrets"
SERVER_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
HOST_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$")
BACKUP_UPDATABLE = ("name", "description")


def now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class Record:
    """The fields every record has; subclasses add their own."""

    @classmethod
    def from_dict(cls, data):
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})

    def view(self):
        return asdict(self)


@dataclass
class Volume(Record):
    id: str
    name: str
    size: int
    volume_type: str
    backend: str
    format: str
    status: str = "available"
    description: str = ""
    project: str | None = None
    metadata: dict = field(default_factory=dict)
    bootable: bool = False
    source: str | None = None
    attachments: list = field(default_factory=list)
    created_at: str | None = None
    updated_at: str | None = None


@dataclass
class Snapshot(Record):
    id: str
    name: str
    volume_id: str
    size: int
    status: str = "available"
    description: str = ""
    project: str | None = None
    metadata: dict = field(default_factory=dict)
    created_at: str | None = None
    updated_at: str | None = None


@dataclass
class Backup(Record):
    id: str
    name: str
    volume_id: str
    size: int
    status: str = "available"
    description: str = ""
    project: str | None = None
    sha256: str = ""
    bytes: int = 0
    created_at: str | None = None
    updated_at: str | None = None


# --- input ---------------------------------------------------------------------------

def check_name(kind, name):
    if name is not None and (not name.strip() or len(name) > 255):
        raise ValidationError("%s name must be 1 to 255 characters, not only spaces" % kind)


def check_id(kind, value):
    if value is None:
        return None
    try:
        return str(uuidlib.UUID(value))
    except ValueError:
        raise ValidationError("%s id %r is not a UUID" % (kind, value))


def check_metadata(metadata):
    metadata = dict(metadata or {})
    for key, value in metadata.items():
        if not isinstance(key, str) or not 0 < len(key) <= 255:
            raise ValidationError("metadata keys must be 1 to 255 characters")
        if not isinstance(value, str) or len(value) > 255:
            raise ValidationError("metadata %s: values must be strings of at most 255 characters" % key)
    return metadata


def check_size(size):
    if size is not None and not 1 <= size <= MAX_SIZE_GB:
        raise ValidationError("size must be 1 to %d (GiB), not %s" % (MAX_SIZE_GB, size))
    return size


# --- settings and pools -----------------------------------------------------------------

def load_settings(path=None):
    path = path or SETTINGS
    settings = read_settings(path, "storage host", "volumes")
    for key in ("backends", "types", "backup_dir"):
        if key not in settings:
            raise NimbusError("%s has no %s" % (path, key))
    return settings


def _fail_no_space(error, what, where):
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        raise NimbusError("%s: no space left in %s" % (what, where))
    text = str(getattr(error, "stderr", "") or error)
    if "No space left" in text:
        raise NimbusError("%s: no space left in %s" % (what, where))
    raise error


class Storage:
    """The storage host's backends, volume types, backups and records."""

    def __init__(self, runner, settings=None):
        self.runner = runner
        self.settings = settings if settings is not None else load_settings()
        self.backends = self.settings["backends"]
        self.types = self.settings["types"]
        self.backup_dir = self.settings["backup_dir"]

    # -- paths
    def pool(self, backend):
        return self.backends[backend]["path"]

    def data_path(self, volume):
        return os.path.join(self.pool(volume.backend), volume.id)

    def record_path(self, backend, volume_id):
        return os.path.join(self.pool(backend), volume_id + ".json")

    def snapshot_dir(self, backend):
        return os.path.join(self.pool(backend), SNAPSHOTS)

    def incoming(self, directory, name):
        path = os.path.join(directory, INCOMING)
        os.makedirs(path, mode=0o700, exist_ok=True)
        part = os.path.join(path, name)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(part)
        return part

    def lock(self):
        path = self.settings.get("lock") or os.path.join(os.path.dirname(self.backup_dir.rstrip("/")), "volumes.lock")
        return locked(path, check_mode=self.runner.check_mode)

    # -- volume types
    def volume_type(self, name):
        name = name or self.settings.get("default_type")
        if not name:
            raise ValidationError("no volume_type given and this storage host has no default_type")
        if name not in self.types:
            raise ValidationError("volume type %s does not exist here (types: %s)"
                                  % (name, ", ".join(sorted(self.types)) or "none"))
        spec = self.types[name]
        backend = spec.get("backend")
        if not backend or backend not in self.backends:
            raise ValidationError("volume type %s names backend %s, which this storage host does not have "
                                  "(backends: %s)" % (name, backend, ", ".join(sorted(self.backends)) or "none"))
        fmt = spec.get("format", "qcow2")
        if fmt not in FORMATS:
            raise ValidationError("volume type %s has format %s; only %s" % (name, fmt, " and ".join(FORMATS)))
        return name, backend, fmt

    # -- reading records
    def _records(self, directory, cls):
        found = []
        try:
            names = sorted(os.listdir(directory))
        except FileNotFoundError:
            return found
        for name in names:
            if name.endswith(".json") and images.UUID_RE.match(name[:-5]):
                text = read_text(os.path.join(directory, name))
                if text:
                    found.append(cls.from_dict(json.loads(text)))
        return found

    def volumes(self):
        return [v for backend in sorted(self.backends) for v in self._records(self.pool(backend), Volume)]

    def snapshots(self):
        return [s for backend in sorted(self.backends) for s in self._records(self.snapshot_dir(backend), Snapshot)]

    def backups(self):
        return self._records(self.backup_dir, Backup)

    @staticmethod
    def _find(kind, found, ident, name):
        if ident:
            match = [r for r in found if r.id == ident]
            if match and name and match[0].name != name:
                raise ValidationError("%s %s is named %s, not %s" % (kind, ident, match[0].name, name))
            return match[0] if match else None
        named = [r for r in found if r.name == name]
        if len(named) > 1:
            raise ValidationError("%d %ss are named %s (%s): give the id of the one to manage"
                                  % (len(named), kind, name, ", ".join(r.id for r in named)))
        return named[0] if named else None

    def find_volume(self, ident=None, name=None):
        return self._find("volume", self.volumes(), ident, name)

    def find_snapshot(self, ident=None, name=None):
        return self._find("snapshot", self.snapshots(), ident, name)

    def find_backup(self, ident=None, name=None):
        return self._find("backup", self.backups(), ident, name)

    def lookup(self, kind, ref):
        """A volume, snapshot or backup named by id or by name (which must be unique), or a clear error."""
        finder = {"volume": self.find_volume, "snapshot": self.find_snapshot, "backup": self.find_backup}[kind]
        if images.UUID_RE.match(ref or ""):
            found = finder(ref, None)
        else:
            found = finder(None, ref)
        if found is None:
            raise ValidationError("%s %s does not exist" % (kind, ref))
        return found

    def snapshots_of(self, volume_id):
        return [s for s in self.snapshots() if s.volume_id == volume_id]

    # -- capacity
    def capacity_gb(self, backend):
        spec = self.backends[backend]
        if spec.get("capacity_gb"):
            return int(spec["capacity_gb"])
        stat = os.statvfs(self.pool(backend))
        return stat.f_blocks * stat.f_frsize // GIB

    def allocated_gb(self, backend, besides=None):
        return sum(v.size for v in self.volumes() if v.backend == backend and v.id != besides)

    def check_room(self, backend, size, name, besides=None):
        capacity, allocated = self.capacity_gb(backend), self.allocated_gb(backend, besides)
        if allocated + size > capacity:
            raise ValidationError("volume %s: backend %s is full (%d of %d GiB allocated; %d GiB more asked for)"
                                  % (name, backend, allocated, capacity, size))

    # -- writing records
    def write_volume(self, volume):
        atomic_write(self.record_path(volume.backend, volume.id), _json(volume), mode=0o600)

    def write_snapshot(self, volume, snapshot):
        directory = self.snapshot_dir(volume.backend)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        atomic_write(os.path.join(directory, snapshot.id + ".json"), _json(snapshot), mode=0o600)

    def write_backup(self, backup):
        atomic_write(os.path.join(self.backup_dir, backup.id + ".json"), _json(backup), mode=0o600)

    # -- the data
    def qemu_img(self, argv, what, where):
        """qemu-img making or changing a file (only ever inside a step, so never in check mode)."""
        try:
            return self.runner.change(["qemu-img"] + list(argv))
        except NimbusError as e:
            _fail_no_space(e, what, where)

    def make_volume(self, volume, fill):
        """Make ``volume``'s file with ``fill(part)`` under .incoming, grow it to the volume's size, then publish
        the file and its record; nothing is left when any step fails."""
        pool = self.pool(volume.backend)
        part = self.incoming(pool, volume.id)
        try:
            fill(part)
            info = images.inspect(self.runner, part, "volume %s" % volume.name)
            if info["virtual_size"] > volume.size * GIB:
                raise ValidationError("volume %s: its source needs %d GiB, more than the %d GiB asked for"
                                      % (volume.name, -(-info["virtual_size"] // GIB), volume.size))
            if info["virtual_size"] < volume.size * GIB:
                self.qemu_img(["resize", "-q", "-f", volume.format, part, str(volume.size * GIB)],
                              "volume %s" % volume.name, pool)
            os.chmod(part, 0o600)
            os.replace(part, self.data_path(volume))
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(part)
        try:
            self.write_volume(volume)
        except BaseException:
            remove(self.data_path(volume))
            raise
        return volume

    def convert(self, volume, source_format, source, extra=()):
        def fill(part):
            self.qemu_img(["convert", "-q", "-f", source_format] + list(extra) + ["-O", volume.format, source, part],
                          "volume %s" % volume.name, self.pool(volume.backend))
        return fill

    def blank(self, volume):
        def fill(part):
            self.qemu_img(["create", "-q", "-f", volume.format, part, str(volume.size * GIB)],
                          "volume %s" % volume.name, self.pool(volume.backend))
        return fill

    def from_image(self, volume, image_ref, cache):
        record = cache.resolve(image_ref, volume.project)
        if record.min_disk and record.min_disk > volume.size:
            raise ValidationError("volume %s: image %s needs at least %d GiB (min_disk)"
                                  % (volume.name, record.name, record.min_disk))
        pulled = cache.ensure(record)
        volume.source = "image:%s" % record.id
        volume.bootable = True
        self.make_volume(volume, self.convert(volume, pulled["format"], pulled["path"]))

    def from_snapshot(self, volume, snapshot, source_volume):
        source = self.data_path(source_volume)
        if source_volume.format == "qcow2":
            fill = self.convert(volume, "qcow2", source, ("-l", "snapshot.name=" + snapshot.id))
        else:
            fill = self.convert(volume, "raw", os.path.join(self.snapshot_dir(source_volume.backend), snapshot.id))
        self.make_volume(volume, fill)

    def from_backup(self, volume, backup):
        path = os.path.join(self.backup_dir, backup.id)
        digest = _sha256(path)
        if digest != backup.sha256:
            raise NimbusError("backup %s (%s): its file's sha256 is %s, its record says %s: the backup is damaged, "
                              "nothing was restored" % (backup.name, backup.id, digest, backup.sha256))
        self.make_volume(volume, self.convert(volume, "qcow2", path))

    def extend(self, volume, size):
        self.qemu_img(["resize", "-q", "-f", volume.format, self.data_path(volume), str(size * GIB)],
                      "volume %s" % volume.name, self.pool(volume.backend))
        volume.size = size
        volume.updated_at = now()
        self.write_volume(volume)

    def delete_volume(self, volume, snapshots=()):
        for snapshot in snapshots:
            self.delete_snapshot(volume, snapshot, data=False)
        # The record goes first: without it the volume does not exist, whatever happens to the data after.
        remove(self.record_path(volume.backend, volume.id))
        remove(self.data_path(volume))

    def take_snapshot(self, volume, snapshot):
        directory = self.snapshot_dir(volume.backend)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        if volume.format == "qcow2":
            self.qemu_img(["snapshot", "-c", snapshot.id, self.data_path(volume)], "snapshot %s" % snapshot.name,
                          directory)
        else:
            part = self.incoming(directory, snapshot.id)
            try:
                self.qemu_img(["convert", "-q", "-f", "raw", "-O", "raw", "-S", "4k", self.data_path(volume), part],
                              "snapshot %s" % snapshot.name, directory)
                os.chmod(part, 0o600)
                os.replace(part, os.path.join(directory, snapshot.id))
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(part)
        try:
            self.write_snapshot(volume, snapshot)
        except BaseException:
            self.delete_snapshot(volume, snapshot, data=True, record=False)
            raise

    def delete_snapshot(self, volume, snapshot, data=True, record=True):
        directory = self.snapshot_dir(volume.backend)
        if record:
            remove(os.path.join(directory, snapshot.id + ".json"))
        if volume.format == "qcow2":
            # A cascade removes the volume's file anyway: its internal snapshots go with it.
            if data:
                self.qemu_img(["snapshot", "-d", snapshot.id, self.data_path(volume)], "snapshot %s" % snapshot.name,
                              directory)
        else:
            remove(os.path.join(directory, snapshot.id))

    def take_backup(self, volume, backup):
        os.makedirs(self.backup_dir, mode=0o700, exist_ok=True)
        part = self.incoming(self.backup_dir, backup.id)
        try:
            self.qemu_img(["convert", "-q", "-c", "-f", volume.format, "-O", "qcow2", self.data_path(volume), part],
                          "backup %s" % backup.name, self.backup_dir)
            backup.sha256 = _sha256(part)
            backup.bytes = os.path.getsize(part)
            os.chmod(part, 0o600)
            os.replace(part, os.path.join(self.backup_dir, backup.id))
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(part)
        try:
            self.write_backup(backup)
        except BaseException:
            remove(os.path.join(self.backup_dir, backup.id))
            raise

    def delete_backup(self, backup):
        remove(os.path.join(self.backup_dir, backup.id + ".json"))
        remove(os.path.join(self.backup_dir, backup.id))

    # -- exports over iSCSI (an attachment)
    @property
    def secrets_dir(self):
        return self.settings.get("secrets_dir") or SECRETS_DIR

    @property
    def iscsi(self):
        return self.settings.get("iscsi") or {}

    def tgt(self):
        return tgtlib.Tgt(self.settings.get("tgt_socket"))

    def export(self, volume, attachment, password):
        """Write the CHAP password, create the target, record the attachment; undone when a step fails."""
        os.makedirs(self.secrets_dir, mode=0o700, exist_ok=True)
        atomic_write(attachment["secret_file"], password + "\n", mode=0o600)
        tgt = self.tgt()
        try:
            tgt.export(attachment["tid"], attachment["iqn"], self.data_path(volume), attachment["initiator"],
                       attachment["username"], password)
        except (tgtlib.TgtError, ConnectionError, ValueError) as e:
            remove(attachment["secret_file"])
            raise NimbusError("volume %s: %s" % (volume.name, e))
        try:
            self._record_attachments(volume, [a for a in volume.attachments if a["server_id"] !=
                                              attachment["server_id"]] + [attachment])
        except BaseException:
            tgt.unexport(attachment["tid"], attachment["username"], force=True, missing_ok=True)
            remove(attachment["secret_file"])
            raise

    def reexport(self, volume, attachment):
        """The target again, from the record and the stored password (tgtd lost it in a restart)."""
        with open(attachment["secret_file"]) as f:
            password = f.read().strip()
        try:
            self.tgt().export(attachment["tid"], attachment["iqn"], self.data_path(volume), attachment["initiator"],
                              attachment["username"], password)
        except (tgtlib.TgtError, ConnectionError, ValueError) as e:
            raise NimbusError("volume %s: %s" % (volume.name, e))

    def unexport(self, volume, attachment):
        try:
            self.tgt().unexport(attachment["tid"], attachment["username"], missing_ok=True)
        except tgtlib.TgtError as e:
            if e.code == tgtlib.TARGET_ACTIVE:
                raise NimbusError("volume %s: server %s's host is still logged in to its target; detach the volume "
                                  "from the instance first" % (volume.name, attachment["server_id"]))
            raise NimbusError("volume %s: %s" % (volume.name, e))
        except ConnectionError as e:
            raise NimbusError("volume %s: %s" % (volume.name, e))
        remove(attachment["secret_file"])
        self._record_attachments(volume, [a for a in volume.attachments if a["server_id"] != attachment["server_id"]])

    def _record_attachments(self, volume, attachments):
        current = self.find_volume(volume.id)
        current.attachments = attachments
        current.status = "in-use" if attachments else "available"
        current.updated_at = now()
        self.write_volume(current)

    def image_cache(self, backend, timeout=60):
        """The images this host pulled from the image store to make volumes of, kept per backend."""
        directory = os.path.join(self.pool(backend), IMAGE_CACHE)
        url = self.settings.get("image_store_url")
        return images.Cache(self.runner, directory, url, images.store_opener if url else None, timeout)


def _json(record):
    return json.dumps(asdict(record), indent=2, sort_keys=True) + "\n"


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(images.CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --- planning: volumes -------------------------------------------------------------------

SOURCES = ("image", "snapshot", "source_volume", "backup")


def plan_volume_present(storage, current, task, size, source, volume_id=None, name=None):
    """A plan for a volume that should exist. ``source`` is (kind, reference) or None; ``task`` the attributes
    given (see UPDATABLE and CREATE_ONLY)."""
    task = dict(task)
    if "metadata" in task:
        task["metadata"] = check_metadata(task["metadata"])
    if current is None:
        return _plan_create(storage, task, size, source, volume_id, name)
    attrs = desired("volume", current.name, _attributes(current), task, create_only=CREATE_ONLY, defaults=DEFAULTS)
    after = Volume.from_dict(dict(asdict(current), **attrs))
    steps, changed = [], sorted(k for k in attrs if attrs[k] != _attributes(current).get(k))
    if size is not None and size != current.size:
        if size < current.size:
            raise ValidationError("volume %s is %d GiB: a volume only grows (shrinking would cut its data), not to "
                                  "%d GiB" % (current.name, current.size, size))
        if current.attachments:
            raise ValidationError("volume %s is attached to %s: detach it before extending it"
                                  % (current.name, ", ".join(a.get("server_id", "?") for a in current.attachments)))
        storage.check_room(current.backend, size - current.size, current.name)
        after.size = size
        steps.append(Call("extend volume %s (%s) from %d to %d GiB" % (current.name, current.id, current.size, size),
                          storage.extend, (current, size)))
    if changed:
        after.updated_at = now()
        steps.append(Call("update volume %s (%s): %s" % (current.name, current.id, ", ".join(changed)),
                          _update_volume, (storage, current.id, current.backend, attrs)))
    if not steps:
        return Plan(before=current.view(), after=current.view())
    return Plan(steps=steps, before=current.view(), after=after.view())


def _attributes(volume):
    return {k: getattr(volume, k) for k in UPDATABLE + CREATE_ONLY}


def _update_volume(storage, volume_id, backend, attrs):
    # Re-read: an extend in the same plan wrote the record first.
    volume = Volume.from_dict(json.loads(read_text(storage.record_path(backend, volume_id))))
    for key, value in attrs.items():
        setattr(volume, key, value)
    volume.updated_at = now()
    storage.write_volume(volume)


def _plan_create(storage, task, size, source, volume_id, name):
    if name is None:
        raise ValidationError("volume %s does not exist: give name (and size) to create it" % volume_id)
    type_name, backend, fmt = storage.volume_type(task.get("volume_type"))
    attrs = desired("volume", name, None, task, create_only=CREATE_ONLY, defaults=DEFAULTS)
    stamp = now()
    volume = Volume(id=volume_id or str(uuidlib.uuid4()), name=name, size=0, volume_type=type_name,
                    backend=backend, format=fmt, description=attrs["description"], project=attrs["project"],
                    metadata=dict(attrs["metadata"]), bootable=attrs["bootable"], created_at=stamp,
                    updated_at=stamp)
    kind, ref = source if source is not None else (None, None)
    if kind is None:
        if size is None:
            raise ValidationError("volume %s does not exist: give size (GiB) to create it" % name)
        volume.size = size
        storage.check_room(backend, size, name)
        return Plan(steps=[Call("create volume %s (%s): %d GiB %s, type %s" % (name, volume.id, size, fmt, type_name),
                                storage.make_volume, (volume, storage.blank(volume)))],
                    before={}, after=volume.view())
    if kind == "image":
        if size is None:
            raise ValidationError("volume %s: give size (GiB) for a volume made from an image" % name)
        if not storage.settings.get("image_store_url"):
            raise ValidationError("volume %s: no image store is configured on this storage host "
                                  "(volumes_image_store_url)" % name)
        volume.size = size
        storage.check_room(backend, size, name)
        cache = storage.image_cache(backend)
        volume.source = "image:%s" % ref
        volume.bootable = True
        step = Call("create volume %s (%s): %d GiB %s from image %s" % (name, volume.id, size, fmt, ref),
                    storage.from_image, (volume, ref, cache))
        return Plan(steps=[step], before={}, after=volume.view())
    if kind == "snapshot":
        snapshot = storage.lookup("snapshot", ref)
        parent = storage.find_volume(snapshot.volume_id)
        if parent is None:
            raise NimbusError("snapshot %s belongs to volume %s, which is gone" % (snapshot.id, snapshot.volume_id))
        _same_project(volume, "snapshot", snapshot)
        volume.size = _at_least(size, snapshot.size, name, "snapshot %s" % snapshot.name)
        volume.bootable = parent.bootable or volume.bootable
        storage.check_room(backend, volume.size, name)
        volume.source = "snapshot:%s" % snapshot.id
        what = "create volume %s (%s): %d GiB %s from snapshot %s" % (name, volume.id, volume.size, fmt, snapshot.id)
        step = Call(what, storage.from_snapshot, (volume, snapshot, parent))
        return Plan(steps=[step], before={}, after=volume.view())
    if kind == "source_volume":
        parent = storage.lookup("volume", ref)
        _same_project(volume, "volume", parent)
        if parent.attachments:
            raise ValidationError("volume %s is attached: detach it before cloning it (a guest may be writing it)"
                                  % parent.name)
        volume.size = _at_least(size, parent.size, name, "volume %s" % parent.name)
        volume.bootable = parent.bootable or volume.bootable
        storage.check_room(backend, volume.size, name)
        volume.source = "volume:%s" % parent.id
        step = Call("create volume %s (%s): %d GiB %s from volume %s" % (name, volume.id, volume.size, fmt, parent.id),
                    storage.make_volume, (volume, storage.convert(volume, parent.format, storage.data_path(parent))))
        return Plan(steps=[step], before={}, after=volume.view())
    if kind == "backup":
        backup = storage.lookup("backup", ref)
        _same_project(volume, "backup", backup)
        volume.size = _at_least(size, backup.size, name, "backup %s" % backup.name)
        storage.check_room(backend, volume.size, name)
        volume.source = "backup:%s" % backup.id
        step = Call("restore backup %s into volume %s (%s): %d GiB %s" % (backup.id, name, volume.id, volume.size,
                                                                          fmt),
                    storage.from_backup, (volume, backup))
        return Plan(steps=[step], before={}, after=volume.view())
    raise ValidationError("unknown volume source %s" % kind)


def _same_project(volume, kind, source):
    if volume.project is not None and source.project is not None and source.project != volume.project:
        raise ValidationError("%s %s is not project %s's" % (kind, source.id, volume.project))


def _at_least(size, minimum, name, what):
    if size is None:
        return minimum
    if size < minimum:
        raise ValidationError("volume %s: %s is %d GiB; the volume must be at least that, not %d GiB"
                              % (name, what, minimum, size))
    return size


def plan_volume_absent(storage, current, cascade=False):
    if current.attachments:
        raise ValidationError("volume %s (%s) is attached to %s: detach it before deleting it"
                              % (current.name, current.id,
                                 ", ".join(a.get("server_id", "?") for a in current.attachments)))
    snapshots = storage.snapshots_of(current.id)
    if snapshots and not cascade:
        raise ValidationError("volume %s (%s) has snapshots (%s): delete them first, or set cascade=true"
                              % (current.name, current.id, ", ".join(s.name for s in snapshots)))
    what = "delete volume %s (%s)" % (current.name, current.id)
    if snapshots:
        what += " and its snapshots %s" % ", ".join(s.id for s in snapshots)
    return Plan(steps=[Call(what, storage.delete_volume, (current, snapshots))], before=current.view(), after={})


# --- planning: snapshots and backups ------------------------------------------------------

def _detached(volume, doing):
    if volume.attachments:
        servers = ", ".join(a.get("server_id", "?") for a in volume.attachments)
        raise ValidationError("volume %s is attached to %s: detach it before %s (the storage host does not change a "
                              "file a guest is writing)" % (volume.name, servers, doing))


def plan_snapshot_present(storage, current, task, volume_ref, snapshot_id=None, name=None):
    task = dict(task)
    if "metadata" in task:
        task["metadata"] = check_metadata(task["metadata"])
    if current is None:
        if name is None:
            raise ValidationError("snapshot %s does not exist: give name and volume to take it" % snapshot_id)
        if volume_ref is None:
            raise ValidationError("snapshot %s does not exist: give volume to take it of" % name)
        volume = storage.lookup("volume", volume_ref)
        _detached(volume, "taking a snapshot")
        stamp = now()
        snapshot = Snapshot(id=snapshot_id or str(uuidlib.uuid4()), name=name, volume_id=volume.id, size=volume.size,
                            description=task.get("description", ""), project=volume.project,
                            metadata=task.get("metadata", {}), created_at=stamp, updated_at=stamp)
        return Plan(steps=[Call("take snapshot %s (%s) of volume %s" % (name, snapshot.id, volume.id),
                                storage.take_snapshot, (volume, snapshot))], before={}, after=snapshot.view())
    if volume_ref is not None and volume_ref not in (current.volume_id,) and \
            storage.lookup("volume", volume_ref).id != current.volume_id:
        raise ValidationError("snapshot %s is of volume %s, not %s" % (current.name, current.volume_id, volume_ref))
    return _plan_update(storage, "snapshot", current, task, SNAPSHOT_UPDATABLE, _write_snapshot)


def _write_snapshot(storage, snapshot):
    storage.write_snapshot(storage.find_volume(snapshot.volume_id), snapshot)


def _write_backup(storage, backup):
    storage.write_backup(backup)


def plan_snapshot_absent(storage, current):
    volume = storage.find_volume(current.volume_id)
    if volume is None:
        raise NimbusError("snapshot %s belongs to volume %s, which is gone" % (current.id, current.volume_id))
    _detached(volume, "deleting its snapshot")
    return Plan(steps=[Call("delete snapshot %s (%s) of volume %s" % (current.name, current.id, volume.id),
                            storage.delete_snapshot, (volume, current))], before=current.view(), after={})


def plan_backup_present(storage, current, task, volume_ref, backup_id=None, name=None):
    task = dict(task)
    if current is None:
        if name is None or volume_ref is None:
            raise ValidationError("backup %s does not exist: give name and volume to take it"
                                  % (backup_id or name))
        volume = storage.lookup("volume", volume_ref)
        _detached(volume, "backing it up")
        stamp = now()
        backup = Backup(id=backup_id or str(uuidlib.uuid4()), name=name, volume_id=volume.id, size=volume.size,
                        description=task.get("description", ""), project=volume.project, created_at=stamp,
                        updated_at=stamp)
        after = backup.view()
        after.update(sha256=None, bytes=None)  # known once written
        return Plan(steps=[Call("back up volume %s into backup %s (%s)" % (volume.id, name, backup.id),
                                storage.take_backup, (volume, backup))], before={}, after=after)
    if volume_ref is not None and storage.lookup("volume", volume_ref).id != current.volume_id:
        raise ValidationError("backup %s is of volume %s, not %s" % (current.name, current.volume_id, volume_ref))
    return _plan_update(storage, "backup", current, task, BACKUP_UPDATABLE, _write_backup)


def plan_backup_absent(storage, current):
    return Plan(steps=[Call("delete backup %s (%s)" % (current.name, current.id), storage.delete_backup, (current,))],
                before=current.view(), after={})


def _plan_update(storage, kind, current, task, updatable, write):
    attrs = {k: v for k, v in task.items() if k in updatable}
    changed = sorted(k for k, v in attrs.items() if getattr(current, k) != v)
    if not changed:
        return Plan(before=current.view(), after=current.view())
    after = type(current).from_dict(dict(asdict(current), **attrs))
    after.updated_at = now()
    return Plan(steps=[Call("update %s %s (%s): %s" % (kind, current.name, current.id, ", ".join(changed)),
                            write, (storage, after))], before=current.view(), after=after.view())


# --- planning: exports (the storage side of an attachment) ---------------------------------------

def check_export_input(server_id, initiator=None, portal_address=None):
    if not SERVER_ID_RE.match(server_id or ""):
        raise ValidationError("server_id must be 1 to 64 letters, digits, '.', '_' or '-', not %r" % server_id)
    if initiator is not None:
        try:
            initiator = str(ipaddress.ip_address(initiator))
        except ValueError:
            raise ValidationError("initiator must be the compute host's IP address, not %r" % initiator)
    if portal_address is not None and not HOST_RE.match(portal_address):
        try:
            ipaddress.ip_address(portal_address)
        except ValueError:
            raise ValidationError("portal_address must be a host name or an IP address, not %r" % portal_address)
    return initiator


def connection(storage, volume, attachment, portal_address=None):
    address = portal_address or storage.iscsi.get("address")
    if not address or address in ("0.0.0.0", "::"):
        raise ValidationError("the target listens on every address (volumes_iscsi_address %s): give portal_address, "
                              "the address compute hosts reach this host at" % (address or "unset"))
    if ":" in address:
        address = "[%s]" % address
    return {"portal": "%s:%d" % (address, int(storage.iscsi.get("port", 3260))), "iqn": attachment["iqn"], "lun": 1,
            "username": attachment["username"]}


def plan_export_present(storage, volume, server_id, host, initiator, live_tids):
    """A plan that exports ``volume`` to ``server_id``'s compute host (at ``initiator``); ``live_tids`` are the
    targets tgtd has. Returns (plan, attachment)."""
    if volume.format != "raw":
        raise ValidationError("volume %s is %s (type %s): only raw volumes are served over iSCSI (a LUN cannot grow "
                              "under qcow2's new clusters); make a raw copy with source_volume"
                              % (volume.name, volume.format, volume.volume_type))
    others = [a for a in volume.attachments if a["server_id"] != server_id]
    if others:
        raise ValidationError("volume %s is attached to server %s: detach it first (a volume has one attachment)"
                              % (volume.name, others[0]["server_id"]))
    mine = next((a for a in volume.attachments if a["server_id"] == server_id), None)
    if mine is not None:
        if mine["initiator"] != initiator:
            raise ValidationError("volume %s is exported to server %s at %s, not %s: detach it before moving it"
                                  % (volume.name, server_id, mine["initiator"], initiator))
        if mine["tid"] in live_tids:
            return Plan(before=volume.view(), after=volume.view()), mine
        step = Call("export volume %s again as target %d (tgtd lost it)" % (volume.id, mine["tid"]),
                    storage.reexport, (volume, mine))
        return Plan(steps=[step], before=volume.view(), after=volume.view()), mine
    used = set(live_tids) | {a["tid"] for v in storage.volumes() for a in v.attachments}
    tid = next(n for n in range(1, len(used) + 2) if n not in used)
    prefix = storage.iscsi.get("iqn_prefix") or "iqn.2026-12.cloud.nimbus"
    attachment = {"server_id": server_id, "host": host, "initiator": initiator, "tid": tid,
                  "iqn": "%s:volume-%s" % (prefix, volume.id), "username": "volume-%s" % volume.id,
                  "secret_file": os.path.join(storage.secrets_dir, volume.id), "attached_at": now()}
    after = Volume.from_dict(asdict(volume))
    after.attachments = volume.attachments + [attachment]
    after.status = "in-use"
    password = secrets.token_urlsafe(24)
    step = Call("export volume %s to %s (server %s) as target %d" % (volume.id, initiator, server_id, tid),
                storage.export, (volume, attachment, password))
    return Plan(steps=[step], before=volume.view(), after=after.view()), attachment


def plan_export_absent(storage, volume, server_id):
    mine = next((a for a in volume.attachments if a["server_id"] == server_id), None)
    if mine is None:
        return Plan(before=volume.view(), after=volume.view())
    after = Volume.from_dict(asdict(volume))
    after.attachments = [a for a in volume.attachments if a["server_id"] != server_id]
    after.status = "in-use" if after.attachments else "available"
    step = Call("unexport volume %s from server %s (target %d)" % (volume.id, server_id, mine["tid"]),
                storage.unexport, (volume, mine))
    return Plan(steps=[step], before=volume.view(), after=after.view())


# --- the modules' shared steps -----------------------------------------------------------------------

class StorageResourceModule(ResourceModule):
    """volume, volume_snapshot and volume_backup: the id and name checked, the storage host's settings read and
    its lock held, the resource found by id (else by name), and a new or changed resource reported as written."""

    def prepare(self):
        self.params["id"] = check_id(self.kind, self.params["id"])
        check_name(self.kind, self.params["name"])
        self.storage = Storage(self.runner)

    def session(self):
        return self.storage.lock()

    def task(self):
        task = super().task()
        # The name is how the resource is found without its id: it changes only when the id finds it.
        if self.params["id"] is None:
            task.pop("name", None)
        return task

    def find(self):
        p = self.params
        return getattr(self.storage, "find_" + self.kind)(p["id"], None if p["id"] else p["name"])

    def run(self):
        result = super().run()
        if self.changed and result[self.resource] and not self.check_mode:
            # What was written: sizes and checksums known only once the data is in, an image's id for its name.
            written = getattr(self.storage, "find_" + self.kind)(result[self.resource]["id"])
            result[self.resource] = written.view()
            self.set_diff(self._diff["before"], result[self.resource])
        return result
