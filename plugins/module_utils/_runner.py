# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place where modules run commands on a host.

Reads always run; changes go through :meth:`CommandRunner.change` (commands)
or :meth:`CommandRunner.apply` (file writes, library calls), the collection's
single check-mode gate: in check mode they record what they would have done
in ``planned`` (returned to the user as ``commands``) and run nothing.
"""

from __future__ import annotations

from ansible_collections.nimbus.cloud.plugins.module_utils._errors import CommandError

C_LOCALE = {"LANG": "C", "LC_ALL": "C", "LC_MESSAGES": "C"}
MASK = "********"


class CommandResult:
    __slots__ = ("argv", "rc", "stdout", "stderr")

    def __init__(self, argv, rc, stdout, stderr):
        self.argv = argv
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr

    @property
    def ok(self):
        return self.rc == 0


class CommandRunner:
    """Run argv lists with a C locale, binaries found through ``get_bin_path``.

    ``secrets`` given to a call are masked in every argv, output and error
    this runner returns or raises, so callers cannot leak them by accident.
    Prefer ``data`` (standard input) for secrets: argv is visible to every
    user of the host through /proc.
    """

    def __init__(self, module, extra_paths=("/usr/sbin", "/sbin")):
        self.module = module
        self.extra_paths = list(extra_paths)
        self.planned = []
        self._bins = {}

    @property
    def check_mode(self):
        return self.module.check_mode

    def binary(self, name):
        if name.startswith("/"):
            return name
        if name not in self._bins:
            self._bins[name] = self.module.get_bin_path(name, required=True, opt_dirs=self.extra_paths)
        return self._bins[name]

    def read(self, argv, check_rc=True, data=None, secrets=()):
        """Run a command that changes nothing; it runs in check mode too."""
        return self._run(argv, check_rc, data, secrets)

    def change(self, argv, check_rc=True, data=None, secrets=()):
        """Run a command that changes the host, unless in check mode.

        Returns None in check mode: callers must not depend on its output
        to decide what to report.
        """
        if self.check_mode:
            self.planned.append(" ".join(_mask([str(a) for a in argv], secrets)))
            return None
        return self._run(argv, check_rc, data, secrets)

    def apply(self, description, func, *args, **kwargs):
        """Make a change that is not a command (a library call, a file write).

        The same gate as :meth:`change`: in check mode ``description`` is
        recorded and ``func`` is not called.
        """
        if self.check_mode:
            self.planned.append(description)
            return None
        return func(*args, **kwargs)

    def _run(self, argv, check_rc, data, secrets):
        argv = [self.binary(argv[0])] + [str(a) for a in argv[1:]]
        rc, out, err = self.module.run_command(
            argv, data=data, environ_update=C_LOCALE, check_rc=False, binary_data=data is not None
        )
        shown = _mask(argv, secrets)
        out, err = _mask_text(out, secrets), _mask_text(err, secrets)
        if check_rc and rc != 0:
            raise CommandError(shown, rc, out, err)
        return CommandResult(shown, rc, out, err)


def _mask(argv, secrets):
    return [_mask_text(a, secrets) for a in argv]


def _mask_text(text, secrets):
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text
