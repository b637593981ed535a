# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host files the collection owns: exclusive locks and atomic replacement.

Records that concurrent runs share (IP reservations, the compute host's
instance set) are changed under an flock and replaced by rename, so a reader
(dnsmasq, another task) sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import fcntl
import grp
import json
import os
import pwd
import re
import shutil
import stat
import tempfile
from dataclasses import dataclass
from typing import Optional

from ansible_collections.nimbus.cloud.plugins.module_utils._errors import NimbusError


@contextlib.contextmanager
def locked(path, check_mode=False):
    """Hold an exclusive flock on ``path`` (created if missing) for the block.

    In check mode nothing is created: an existing lock file is locked (so the
    plan reads records no other run is halfway through), a missing one means
    there is nothing to protect yet.
    """
    if check_mode:
        try:
            handle = open(path)
        except FileNotFoundError:
            yield
            return
    else:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        handle = open(path, "a")
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_text(path, default=None):
    """The file's text, or ``default`` when it does not exist."""
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return default


def read_settings(path, host, role):
    """The JSON settings a role records for the modules on its hosts (``host``: what the role makes of a host,
    ``role``: the role's name, both for the error that says the role was not applied)."""
    text = read_text(path)
    if text is None:
        raise NimbusError("%s is missing: this host is not a nimbus.cloud %s (apply the nimbus.cloud.%s role first)"
                          % (path, host, role))
    try:
        return json.loads(text)
    except ValueError as e:
        raise NimbusError("%s is not valid JSON: %s" % (path, e))


def atomic_write(path, text, mode=0o644):
    """Replace ``path`` with ``text``: write a sibling, fsync, rename, fsync the directory.

    Returns True when the content changed (an identical file is left alone).
    """
    if read_text(path) == text:
        return False
    replace_file(path, text.encode("utf-8"), mode)
    return True


def replace_file(path, data, mode, uid=-1, gid=-1):
    """Put ``data`` (bytes) at ``path`` with its final mode and owner, by rename.

    The sibling gets mode and owner before the rename, so no reader ever sees
    the new content with looser permissions; a symbolic link at ``path`` is
    replaced, never followed.
    """
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            # chown first: it clears set-id bits that the mode may ask for.
            if uid != -1 or gid != -1:
                os.fchown(f.fileno(), uid, gid)
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def remove(path):
    """Delete ``path``; True when it existed."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def remove_tree(path):
    """Delete a directory and everything in it; True when it existed."""
    if not os.path.isdir(path):
        return False
    shutil.rmtree(path)
    return True


class Records:
    """A directory of JSON records, one file a named resource (``/etc/nimbus/<kind>/<name>.json``).

    With ``kind`` (a dataclass), :meth:`load` and :meth:`load_all` return typed
    records: keys the dataclass does not know (an older or newer writer) are
    dropped rather than failing the run.
    """

    def __init__(self, directory, kind=None):
        self.directory = directory
        self.kind = kind

    def __eq__(self, other):
        return isinstance(other, Records) and (self.directory, self.kind) == (other.directory, other.kind)

    def __hash__(self):
        return hash(self.directory)

    def load(self, name):
        data = self.read(name)
        if data is None or self.kind is None:
            return data
        fields = self.kind.__dataclass_fields__
        return self.kind(**{k: v for k, v in data.items() if k in fields})

    def load_all(self):
        return [r for r in (self.load(name) for name in self.names()) if r is not None]

    def path(self, name):
        return os.path.join(self.directory, name + ".json")

    def read(self, name):
        text = read_text(self.path(name))
        return json.loads(text) if text else None

    def names(self):
        if not os.path.isdir(self.directory):
            return []
        return sorted(f[:-5] for f in os.listdir(self.directory) if f.endswith(".json"))

    def all(self):
        return [r for r in (self.read(name) for name in self.names()) if r is not None]

    def write(self, name, data):
        os.makedirs(self.directory, mode=0o755, exist_ok=True)
        return atomic_write(self.path(name), json.dumps(data, indent=2, sort_keys=True) + "\n")

    def remove(self, name):
        return remove(self.path(name))


# Declared files: many small files and directories of a role in one module call
# (nimbus.cloud.files). Each entry is compared with what is on the host and
# only the differences are applied; everything is validated first, so bad
# input changes nothing.

FILE_STATES = ("file", "directory", "absent")
_MODE = re.compile(r"^[0-7]{3,4}$")


@dataclass
class DeclaredFile:
    path: str
    state: str = "file"
    content: Optional[bytes] = None
    mode: Optional[int] = None
    owner: Optional[str] = None
    group: Optional[str] = None


@dataclass
class FoundFile:
    """What is at a path: ``kind`` is file, directory, link, other or None (nothing)."""

    kind: Optional[str]
    mode: Optional[int] = None
    uid: Optional[int] = None
    gid: Optional[int] = None
    content: Optional[bytes] = None


def parse_mode(value, path):
    """An octal mode given as a string ("0644"); integers are refused (YAML reads 0644 as 420)."""
    if not isinstance(value, str) or not _MODE.match(value):
        raise ValueError("%s: mode must be an octal string such as '0644', got %r" % (path, value))
    return int(value, 8)


def check_path(path):
    """An absolute, normalised path: no relative parts, no '..', no trailing slash."""
    if not path.startswith("/") or os.path.normpath(path) != path or path == "/" or "\0" in path:
        raise ValueError("%s: path must be absolute and normalised (no '.', '..', '//' or trailing '/')" % path)


def find(path, read_content=True):
    """Inspect ``path`` without following a symbolic link."""
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        # NotADirectoryError: a file stands where a directory above should be; the caller says so.
        return FoundFile(None)
    if stat.S_ISLNK(st.st_mode):
        kind = "link"
    elif stat.S_ISDIR(st.st_mode):
        kind = "directory"
    elif stat.S_ISREG(st.st_mode):
        kind = "file"
    else:
        kind = "other"
    found = FoundFile(kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
    if kind == "file" and read_content:
        with open(path, "rb") as f:
            found.content = f.read()
    return found


def lookup_ids(owner, group):
    """uid and gid (-1: leave as is) of names; KeyError names the unknown one."""
    uid = -1 if owner is None else _lookup(pwd.getpwnam, owner, "user")
    gid = -1 if group is None else _lookup(grp.getgrnam, group, "group")
    return uid, gid


def _lookup(func, name, what):
    if name.isdigit():
        return int(name)
    try:
        return func(name)[2]
    except KeyError:
        raise KeyError("no %s named %s on the host" % (what, name)) from None


def file_steps(declared, found, uid, gid):
    """What takes ``found`` to ``declared``: a list of step names, empty when it matches.

    ``uid`` / ``gid`` are -1 when the declaration leaves them alone.
    """
    if declared.state == "absent":
        return [] if found.kind is None else ["remove"]
    wanted_kind = declared.state
    if found.kind != wanted_kind:
        # Nothing there, or a link / file / directory of the wrong kind: made anew
        # (the module refuses the cases it must not replace before getting here).
        return ["create"]
    steps = []
    if wanted_kind == "file" and found.content != declared.content:
        steps.append("write")
    if declared.mode is not None and found.mode != declared.mode:
        steps.append("chmod")
    if (uid != -1 and found.uid != uid) or (gid != -1 and found.gid != gid):
        steps.append("chown")
    return steps


def attributes(found):
    """A diff's view of a path's kind, mode and owner."""
    if found.kind is None:
        return {"state": "absent"}
    shown = {"state": found.kind}
    if found.mode is not None:
        shown["mode"] = "%04o" % found.mode
    if found.uid is not None:
        shown["owner"] = _name(pwd.getpwuid, found.uid)
        shown["group"] = _name(grp.getgrgid, found.gid)
    return shown


def _name(func, number):
    try:
        return func(number)[0]
    except KeyError:
        return str(number)


def text_for_diff(content):
    if content is None:
        return ""
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        return "(%d bytes that are not UTF-8 text)\n" % len(content)


def make_directory(path, mode, uid, gid):
    os.mkdir(path, 0o700)
    if uid != -1 or gid != -1:
        os.chown(path, uid, gid)
    os.chmod(path, mode if mode is not None else 0o755)


def remove_path(path, kind):
    if kind == "directory":
        os.rmdir(path)
    else:
        os.unlink(path)
