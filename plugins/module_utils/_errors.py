# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Exceptions raised by the collection's private module_utils.

Domain code raises these; only the base module class turns them into
``fail_json``, so every module reports errors the same way.
"""

from __future__ import annotations


class NimbusError(Exception):
    """An error to report to the user; ``details`` is merged into the failed result."""

    def __init__(self, msg, **details):
        super().__init__(msg)
        self.msg = msg
        self.details = details


class ValidationError(NimbusError):
    """The user's input is wrong; raised before anything changes."""


class MissingLibraryError(NimbusError):
    """A Python library the module needs is not importable on the target."""

    def __init__(self, library, error=None):
        super().__init__("missing library: %s" % library)
        self.library = library
        self.error = error


class CommandError(NimbusError):
    """A command exited non-zero; argv and output are already stripped of secrets."""

    def __init__(self, argv, rc, stdout, stderr):
        super().__init__(
            "command failed (rc=%d): %s: %s" % (rc, " ".join(argv), (stderr or stdout).strip()),
            cmd=argv,
            rc=rc,
            stdout=stdout,
            stderr=stderr,
        )
        self.argv = argv
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
