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
import json
import os
import shutil
import tempfile


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


def atomic_write(path, text, mode=0o644):
    """Replace ``path`` with ``text``: write a sibling, fsync, rename, fsync the directory.

    Returns True when the content changed (an identical file is left alone).
    """
    if read_text(path) == text:
        return False
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
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
    return True


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
