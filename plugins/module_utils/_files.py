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
