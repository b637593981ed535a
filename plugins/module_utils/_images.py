# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The image store and the hypervisors' image caches.

The store is a directory on the image host (the ``images`` role): each image
is a data file named by its UUID with a JSON record beside it
(``<id>.json``: name, format, checksums, owner, visibility ...), so the
image's identity lives with its bytes and survives a rebuilt controller.
``index.json`` lists the records, for hypervisors that look an image up by
name. The role's web server publishes exactly these three kinds of file.

Nothing about an image is taken on trust: its format comes from
``qemu-img info`` (run with CPU and memory limits, as Glance and Nova do),
a qcow2 with a backing file, an external data file or encryption is refused
(the image format inspector's rules: such a file can make the host read
any path), a declared checksum is checked before the image exists, and a
hypervisor verifies the sha512 of every image it pulls.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import time
import uuid as uuidlib
from dataclasses import asdict, dataclass, field

from ansible_collections.nimbus.cloud.plugins.module_utils._errors import NimbusError, ValidationError
from ansible_collections.nimbus.cloud.plugins.module_utils._files import atomic_write, locked, read_settings, read_text, remove
from ansible_collections.nimbus.cloud.plugins.module_utils._resource import Call, Plan, desired

KIND = "image"
STORE_SETTINGS = "/etc/nimbus/image-store.json"
DISK_FORMATS = ("qcow2", "raw")
VISIBILITIES = ("private", "shared", "community", "public")
STATES = ("present", "deactivated", "absent")
CHECKSUM_ALGORITHMS = {"sha256": 64, "sha512": 128}
URL_SCHEMES = ("http", "https")
CHUNK = 1 << 20
INDEX = "index.json"
INCOMING = ".incoming"
# qemu-img reading an untrusted header gets these limits (oslo.concurrency's
# prlimit for image probes uses 1 GiB of address space and 30 s of CPU).
PROBE_LIMITS = ("--as=1073741824", "--cpu=30")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
SHA512_RE = re.compile(r"^[0-9a-f]{128}$")


def _shown(value):
    """Another host's value in an error message: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


PROPERTY_KEY_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_:.-]{0,254}$")
# Keys that are the image's own fields in Glance; a property may not shadow one.
RESERVED_PROPERTIES = frozenset((
    "id", "name", "status", "visibility", "owner", "protected", "checksum", "os_hash_algo", "os_hash_value",
    "size", "virtual_size", "disk_format", "container_format", "min_disk", "min_ram", "created_at", "updated_at",
    "tags", "file", "schema", "self", "locations", "direct_url", "members", "os_hidden",
))
UPDATABLE = ("visibility", "project", "members", "protected", "min_disk", "min_ram", "properties")
CREATE_ONLY = ("disk_format",)
# What a task is compared on: the options above and the status its state asks for.
ATTRIBUTES = UPDATABLE + ("status",) + CREATE_ONLY
DEFAULTS = {"visibility": "private", "project": None, "members": [], "protected": False, "min_disk": 0,
            "min_ram": 0, "properties": {}, "status": "active"}


@dataclass
class Image:
    """An image's record, as stored beside its data file."""

    id: str
    name: str
    disk_format: str
    size: int
    virtual_size: int
    checksum: str
    os_hash_algo: str
    os_hash_value: str
    status: str = "active"
    container_format: str = "bare"
    visibility: str = "private"
    project: str | None = None
    members: list = field(default_factory=list)
    protected: bool = False
    min_disk: int = 0
    min_ram: int = 0
    properties: dict = field(default_factory=dict)
    source: str | None = None
    created_at: str | None = None
    updated_at: str | None = None

    @classmethod
    def from_dict(cls, data):
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def from_store(cls, data, store_url):
        """A record the image store sent, checked before any of it names a file or a format: its id becomes the
        cached file's and the raw copy's name, its format qemu-img's input format."""
        what = "a record from the image store at %s" % store_url
        if not isinstance(data, dict):
            raise NimbusError("%s is not an image record: refused" % what)
        image_id, disk_format, digest = data.get("id"), data.get("disk_format"), data.get("os_hash_value")
        if not isinstance(image_id, str) or not UUID_RE.match(image_id):
            raise NimbusError("%s has an id that is not a UUID (%s): refused" % (what, _shown(image_id)))
        if disk_format not in DISK_FORMATS:
            raise NimbusError("%s (image %s) has disk_format %s, not one of %s: refused"
                              % (what, image_id, _shown(disk_format), ", ".join(DISK_FORMATS)))
        if not isinstance(digest, str) or not SHA512_RE.match(digest):
            raise NimbusError("%s (image %s) has no sha512 (os_hash_value): refused" % (what, image_id))
        if not isinstance(data.get("name"), str):
            raise NimbusError("%s (image %s) has no name: refused" % (what, image_id))
        return cls.from_dict(data)

    def attributes(self):
        return {k: getattr(self, k) for k in ATTRIBUTES}

    def view(self):
        view = asdict(self)
        view["file"] = self.id
        return view


# --- input ---------------------------------------------------------------------------

def parse_checksum(value):
    """``sha256:<hex>`` or ``sha512:<hex>`` -> (algorithm, lowercase hex)."""
    algo, sep, digest = str(value).partition(":")
    algo, digest = algo.strip().lower(), digest.strip().lower()
    if not sep or algo not in CHECKSUM_ALGORITHMS:
        raise ValidationError("checksum must be sha256:<hex> or sha512:<hex>, got %r (md5 and sha1 are not accepted: "
                              "they do not protect against a forged image)" % _short(value))
    if len(digest) != CHECKSUM_ALGORITHMS[algo] or not re.match(r"^[0-9a-f]+$", digest):
        raise ValidationError("checksum %s:%s is not a %s digest (%d hex digits)"
                              % (algo, _short(digest), algo, CHECKSUM_ALGORITHMS[algo]))
    return algo, digest


def check_url(url):
    """Only http(s) URLs without a fragment; returns the URL as it may be recorded (no user info, no query)."""
    from urllib.parse import urlsplit, urlunsplit
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise ValidationError("url %r is not a URL: %s" % (_short(url), e))
    if parts.scheme.lower() not in URL_SCHEMES or not parts.hostname:
        raise ValidationError("url must be an http:// or https:// URL with a host, got %r" % _short(url))
    # A query string may carry a signature and user info a password: neither is recorded.
    netloc = parts.hostname if port is None else "%s:%d" % (parts.hostname, port)
    if ":" in parts.hostname:
        netloc = "[%s]" % parts.hostname if port is None else "[%s]:%d" % (parts.hostname, port)
    return urlunsplit((parts.scheme.lower(), netloc, parts.path, "", ""))


def check_properties(properties):
    properties = dict(properties or {})
    for key, value in properties.items():
        if not isinstance(key, str) or not PROPERTY_KEY_RE.match(key):
            raise ValidationError("image property name %r: use 1 to 255 letters, digits, '_', ':', '.' or '-'"
                                  % _short(key))
        if key in RESERVED_PROPERTIES:
            raise ValidationError("image property %s is one of the image's own fields; set it with its option" % key)
        if not isinstance(value, str) or len(value) > 65535:
            raise ValidationError("image property %s must be a string of at most 65535 characters" % key)
    return properties


def check_task(task):
    """Validate the attributes a task gives (before anything is read or changed)."""
    if "visibility" in task and task["visibility"] not in VISIBILITIES:
        raise ValidationError("visibility must be one of %s" % ", ".join(VISIBILITIES))
    for key in ("min_disk", "min_ram"):
        if key in task and task[key] < 0:
            raise ValidationError("%s must be 0 or more" % key)
    if "properties" in task:
        task["properties"] = check_properties(task["properties"])
    if "members" in task:
        task["members"] = sorted(set(task["members"]))
    return task


def _short(value, limit=80):
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "..."


def now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def visible_to(image, project):
    """Whether ``project`` may use the image (None: the operator, who may use any)."""
    if project is None or image.visibility in ("public", "community") or image.project == project:
        return True
    return image.visibility == "shared" and project in image.members


# --- reading what an image file really is -------------------------------------------

def inspect(runner, path, what):
    """qemu-img's reading of ``path`` under resource limits, refused unless it is safe to use.

    Returns {"format", "virtual_size"}; raises ValidationError naming ``what``.
    """
    argv = ["prlimit"] + list(PROBE_LIMITS) + ["--", "qemu-img", "info", "--output=json", "--force-share", path]
    result = runner.read(argv, check_rc=False)
    if result.rc != 0:
        raise ValidationError("%s: qemu-img cannot read it: %s" % (what, (result.stderr or result.stdout).strip()))
    try:
        info = json.loads(result.stdout)
    except ValueError:
        raise ValidationError("%s: qemu-img info returned no JSON" % what)
    return check_safe(info, what)


def check_safe(info, what):
    """The image format inspector's rules on qemu-img's JSON (pure, so tables can test it)."""
    fmt = info.get("format")
    if fmt not in DISK_FORMATS:
        raise ValidationError("%s is in format %s; only %s images are accepted"
                              % (what, fmt or "unknown", " and ".join(DISK_FORMATS)))
    if info.get("backing-filename") or info.get("full-backing-filename"):
        raise ValidationError("%s is a qcow2 with a backing file (%s): refused, it would make the host read a file "
                              "outside the store" % (what, _short(info.get("backing-filename") or
                                                                  info.get("full-backing-filename"))))
    specific = (info.get("format-specific") or {}).get("data") or {}
    if specific.get("data-file"):
        raise ValidationError("%s is a qcow2 with an external data file (%s): refused"
                              % (what, _short(specific["data-file"])))
    if info.get("encrypted") or specific.get("encrypt"):
        raise ValidationError("%s is encrypted: refused" % what)
    if specific.get("corrupt"):
        raise ValidationError("%s is a qcow2 marked corrupt: refused" % what)
    return {"format": fmt, "virtual_size": int(info.get("virtual-size") or 0)}


# --- streaming with checksums ---------------------------------------------------------

class Digests:
    """md5 (Glance's ``checksum``), sha512 (``os_hash_value``) and the algorithm a task checks, in one pass."""

    def __init__(self, extra=None):
        self.hashes = {"md5": hashlib.md5(usedforsecurity=False), "sha512": hashlib.sha512()}
        if extra and extra not in self.hashes:
            self.hashes[extra] = hashlib.new(extra)
        self.size = 0

    def update(self, chunk):
        for h in self.hashes.values():
            h.update(chunk)
        self.size += len(chunk)

    def hexdigest(self, algo):
        return self.hashes[algo].hexdigest()


def copy_stream(source, target_path, digests, what):
    """Copy a readable stream into a new file, hashing as it goes; a full disk is a clear error."""
    try:
        with open(target_path, "xb") as out:
            while True:
                chunk = source.read(CHUNK)
                if not chunk:
                    break
                digests.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
    except OSError as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(target_path)
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise NimbusError("%s: no space left in %s" % (what, os.path.dirname(target_path)))
        raise
    return digests


def file_digests(path, extra=None):
    digests = Digests(extra)
    with open(path, "rb") as f:
        while True:
            chunk = f.read(CHUNK)
            if not chunk:
                return digests
            digests.update(chunk)


# --- the store ----------------------------------------------------------------------

def load_store_settings(path=None):
    return read_settings(path or STORE_SETTINGS, "image store", "images")


class Store:
    def __init__(self, runner, settings=None):
        self.runner = runner
        self.settings = settings if settings is not None else load_store_settings()
        self.path = self.settings["path"]

    def data_path(self, image_id):
        return os.path.join(self.path, image_id)

    def record_path(self, image_id):
        return os.path.join(self.path, image_id + ".json")

    def lock(self):
        return locked(os.path.join(self.path, ".lock"), check_mode=self.runner.check_mode)

    def images(self):
        found = []
        try:
            names = sorted(os.listdir(self.path))
        except FileNotFoundError:
            return found
        for name in names:
            if name.endswith(".json") and UUID_RE.match(name[:-5]):
                text = read_text(os.path.join(self.path, name))
                if text:
                    found.append(Image.from_dict(json.loads(text)))
        return found

    def get(self, image_id):
        text = read_text(self.record_path(image_id))
        return Image.from_dict(json.loads(text)) if text else None

    def find(self, image_id=None, name=None):
        if image_id:
            image = self.get(image_id)
            if image is not None and name and image.name != name:
                raise ValidationError("image %s is named %s, not %s" % (image_id, image.name, name))
            return image
        named = [i for i in self.images() if i.name == name]
        if len(named) > 1:
            raise ValidationError("%d images are named %s (%s): give the id of the one to manage"
                                  % (len(named), name, ", ".join(i.id for i in named)))
        return named[0] if named else None

    def write_record(self, image):
        atomic_write(self.record_path(image.id), json.dumps(asdict(image), indent=2, sort_keys=True) + "\n")
        self.write_index()

    def write_index(self):
        index = [{k: v for k, v in asdict(i).items() if k != "properties"} for i in self.images()]
        atomic_write(os.path.join(self.path, INDEX), json.dumps({"images": index}, indent=2, sort_keys=True) + "\n")

    def deactivate(self, image):
        image.status = "deactivated"
        self.write_record(image)

    def delete(self, image_id):
        # The record goes first: without it the image does not exist, whatever happens to the data after.
        remove(self.record_path(image_id))
        remove(self.data_path(image_id))
        self.write_index()

    def incoming(self, image_id):
        directory = os.path.join(self.path, INCOMING)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        return os.path.join(directory, image_id)

    def ingest(self, image, open_source, expected=None, convert=False):
        """Bring the data in, verify and inspect it, then publish data and record; nothing is left on failure.

        ``open_source()`` returns a readable binary stream and a description; ``expected`` is (algo, hex).
        """
        part = self.incoming(image.id)
        converted = part + ".converted"
        try:
            digests = Digests(expected[0] if expected else None)
            stream, described = open_source()
            with contextlib.closing(stream):
                copy_stream(stream, part, digests, "image %s" % image.name)
            if expected and digests.hexdigest(expected[0]) != expected[1]:
                raise ValidationError("image %s: %s checksum of %s is %s, expected %s: refused"
                                      % (image.name, expected[0], described, digests.hexdigest(expected[0]),
                                         expected[1]))
            info = inspect(self.runner, part, "image %s (from %s)" % (image.name, described))
            final = part
            if image.disk_format is None:
                image.disk_format = info["format"]
            elif info["format"] != image.disk_format:
                if not convert:
                    raise ValidationError("image %s: %s holds a %s image, not %s; set convert=true to store it as %s"
                                          % (image.name, described, info["format"], image.disk_format,
                                             image.disk_format))
                self.runner.read(["qemu-img", "convert", "-q", "-f", info["format"], "-O", image.disk_format,
                                  part, converted])
                info = inspect(self.runner, converted, "image %s (converted)" % image.name)
                digests = file_digests(converted)
                final = converted
            image.size = os.path.getsize(final)
            image.virtual_size = info["virtual_size"]
            image.checksum = digests.hexdigest("md5")
            image.os_hash_algo = "sha512"
            image.os_hash_value = digests.hexdigest("sha512")
            os.chmod(final, 0o644)
            os.replace(final, self.data_path(image.id))
        finally:
            for leftover in (part, converted):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(leftover)
        try:
            self.write_record(image)
        except BaseException:
            remove(self.data_path(image.id))
            raise
        return image


# --- planning -----------------------------------------------------------------------

def plan_present(store, current, task, source, convert=False, image_id=None, name=None):
    """A plan for an image that should exist; ``source`` is (description, opener, expected) or None."""
    task = check_task(dict(task))
    if current is None:
        if source is None:
            raise ValidationError("image %s does not exist: give src, path or url to register it" % name)
        attrs = desired(KIND, name, None, task, create_only=CREATE_ONLY, defaults=DEFAULTS)
        _check_members(name, attrs)
        described, opener, expected = source
        stamp = now()
        image = Image(id=image_id or str(uuidlib.uuid4()), name=name, disk_format=attrs.get("disk_format"), size=0,
                      virtual_size=0, checksum="", os_hash_algo="sha512", os_hash_value="",
                      status="active", visibility=attrs["visibility"], project=attrs["project"],
                      members=list(attrs["members"]), protected=attrs["protected"], min_disk=attrs["min_disk"],
                      min_ram=attrs["min_ram"], properties=dict(attrs["properties"]), source=described,
                      created_at=stamp, updated_at=stamp)
        step = Call("register image %s (%s) from %s" % (name, image.id, described), store.ingest,
                    (image, opener, expected, convert))
        after = image.view()
        # Known once the data is read: a check run cannot tell.
        after.update(size=None, virtual_size=None, checksum=None, os_hash_value=None)
        if attrs["status"] == "deactivated":
            return _created_deactivated(store, image, step, after)
        return Plan(steps=[step], before={}, after=after)
    attrs = desired(KIND, current.name, current.attributes(), task, create_only=CREATE_ONLY, defaults=DEFAULTS)
    _check_members(current.name, attrs)
    after = Image.from_dict(dict(asdict(current), **attrs))
    before_view = current.view()
    if after.attributes() == current.attributes():
        return Plan(before=before_view, after=before_view)
    after.updated_at = now()
    changed = sorted(k for k in attrs if attrs[k] != current.attributes().get(k))
    step = Call("update image %s (%s): %s" % (current.name, current.id, ", ".join(changed)), store.write_record,
                (after,))
    return Plan(steps=[step], before=before_view, after=after.view())


def _created_deactivated(store, image, step, after):
    after["status"] = "deactivated"
    return Plan(steps=[step, Call("deactivate image %s" % image.name, store.deactivate, (image,))], before={},
                after=after)


def _check_members(name, attrs):
    if attrs["members"] and attrs["visibility"] != "shared":
        raise ValidationError("image %s: members are only for visibility=shared (it is %s)"
                              % (name, attrs["visibility"]))


def plan_absent(store, current):
    if current.protected:
        raise ValidationError("image %s (%s) is protected: set protected=false before deleting it"
                              % (current.name, current.id))
    return Plan(steps=[Call("delete image %s (%s)" % (current.name, current.id), store.delete, (current.id,))],
                before=current.view(), after={})


# --- a hypervisor's cache ---------------------------------------------------------------

CACHE_RECORDS = ".records"


class Cache:
    """The images a hypervisor pulled from the store: ``<cache>/<id>`` with ``<cache>/.records/<id>.json``."""

    def __init__(self, runner, directory, store_url=None, opener=None, timeout=60):
        self.runner = runner
        self.directory = directory
        self.store_url = (store_url or "").rstrip("/") or None
        self.opener = opener
        self.timeout = timeout

    def record_path(self, image_id):
        return os.path.join(self.directory, CACHE_RECORDS, image_id + ".json")

    def cached(self, image_id):
        text = read_text(self.record_path(image_id))
        if text is None or not os.path.isfile(os.path.join(self.directory, image_id)):
            return None
        return Image.from_dict(json.loads(text))

    def records(self):
        directory = os.path.join(self.directory, CACHE_RECORDS)
        if not os.path.isdir(directory):
            return {}
        out = {}
        for name in os.listdir(directory):
            if name.endswith(".json") and UUID_RE.match(name[:-5]):
                image = self.cached(name[:-5])
                if image is not None:
                    out[image.id] = image
        return out

    def _get(self, path):
        if self.opener is None:
            raise NimbusError("no image store is configured on this hypervisor (kvm_image_store_url)")
        return self.opener(self.store_url + "/" + path, self.timeout)

    def _get_json(self, path):
        with contextlib.closing(self._get(path)) as response:
            return json.loads(response.read().decode("utf-8"))

    def resolve(self, image, project):
        """The store's record of ``image`` (a UUID or a name) for ``project``: active, visible, one of a name."""
        cached = self.cached(image) if UUID_RE.match(image) else None
        record = None
        if self.store_url:
            try:
                if UUID_RE.match(image):
                    record = Image.from_store(self._get_json(image + ".json"), self.store_url)
                    if record.id != image:
                        raise NimbusError("the image store at %s answered for image %s with the record of %s: "
                                          "refused" % (self.store_url, image, record.id))
                else:
                    named = [Image.from_store(i, self.store_url) for i in self._get_json(INDEX).get("images", [])
                             if isinstance(i, dict) and i.get("name") == image]
                    named = [i for i in named if visible_to(i, project)]
                    if len(named) > 1:
                        raise ValidationError("%d images named %s are visible to project %s: give the image's id"
                                              % (len(named), image, project))
                    record = named[0] if named else None
            except NimbusError:
                raise
            except Exception as e:  # the store is down or unreadable: a cached copy still boots
                cached = cached or self._cached_by_name(image, project)
                if cached is None:
                    if _is_not_found(e):
                        record = None
                    else:
                        raise NimbusError("image %s: cannot read the image store at %s: %s" % (image, self.store_url, e))
                else:
                    record = cached
        else:
            record = cached if cached is not None else self._cached_by_name(image, project)
        if record is None:
            raise ValidationError("image %s not found in the image cache %s%s" % (
                image, self.directory, " or the image store at %s" % self.store_url if self.store_url else ""))
        if not visible_to(record, project):
            raise ValidationError("image %s not found for project %s" % (image, project))
        if record.status != "active":
            raise ValidationError("image %s (%s) is %s: it cannot boot new instances"
                                  % (record.name, record.id, record.status))
        return record

    def _cached_by_name(self, name, project):
        named = [i for i in self.records().values() if i.name == name and visible_to(i, project)]
        return named[0] if len(named) == 1 else None

    def ensure(self, record):
        """The cached file of ``record``, pulled and verified first when missing or stale (a change: gated)."""
        path = os.path.join(self.directory, record.id)
        cached = self.cached(record.id)
        if cached is None or cached.os_hash_value != record.os_hash_value:
            self.runner.apply("pull image %s (%s) from %s" % (record.name, record.id, self.store_url),
                              self.pull, record)
            cached = record  # the pull refuses data whose format is not the record's
        # The format the cached data was found to have when it was pulled, not what the store says now.
        return {"path": path, "format": cached.disk_format, "virtual_size": record.virtual_size, "id": record.id}

    def pull(self, record):
        part = os.path.join(self.directory, ".%s.part" % record.id)
        os.makedirs(self.directory, mode=0o755, exist_ok=True)
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(part)
            digests = Digests()
            with contextlib.closing(self._get(record.id)) as response:
                copy_stream(response, part, digests, "image %s" % record.name)
            if digests.hexdigest("sha512") != record.os_hash_value:
                raise NimbusError("image %s (%s) from %s: its sha512 is %s, the store's record says %s: refused"
                                  % (record.name, record.id, self.store_url, digests.hexdigest("sha512"),
                                     record.os_hash_value))
            info = inspect(self.runner, part, "image %s from the store" % record.name)
            if info["format"] != record.disk_format:
                raise NimbusError("image %s (%s) from the store is %s, its record says %s: refused"
                                  % (record.name, record.id, info["format"], record.disk_format))
            os.chmod(part, 0o644)
            os.replace(part, os.path.join(self.directory, record.id))
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(part)
        os.makedirs(os.path.join(self.directory, CACHE_RECORDS), mode=0o755, exist_ok=True)
        atomic_write(self.record_path(record.id), json.dumps(asdict(record), indent=2, sort_keys=True) + "\n")


def _is_not_found(error):
    return getattr(error, "code", None) == 404


def store_opener(url, timeout):
    """GET from the image store (plain HTTP on the management network, as the images role serves it)."""
    from ansible.module_utils.urls import open_url
    return open_url(url, timeout=timeout, follow_redirects="none", http_agent="nimbus.cloud")
