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
import tempfile


@contextlib.contextmanager
def locked(path):
    """Hold an exclusive flock on ``path`` (created if missing) for the block."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "a") as handle:
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


class Records:
    """A directory of JSON records, one file a named resource (``/etc/nimbus/<kind>/<name>.json``)."""

    def __init__(self, directory):
        self.directory = directory

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
