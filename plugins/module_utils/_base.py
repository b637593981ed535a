# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Base class of every nimbus.cloud module.

A module subclasses :class:`NimbusModule`, declares its ``argument_spec``
(and the usual AnsibleModule constraints) and implements :meth:`run`, which
returns the result keys. This class owns everything else: building the
AnsibleModule, the command runner, missing libraries, turning the
collection's exceptions into ``fail_json`` in one place, and the diff.
"""

from __future__ import annotations

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.nimbus.cloud.plugins.module_utils._errors import MissingLibraryError, NimbusError
from ansible_collections.nimbus.cloud.plugins.module_utils._runner import CommandRunner


class NimbusModule:
    argument_spec = {}
    mutually_exclusive = ()
    required_together = ()
    required_one_of = ()
    required_if = ()
    required_by = {}
    supports_check_mode = True
    #: whether check mode returns ``commands`` (modules that only read have none to return)
    returns_commands = True

    def __init__(self, module=None):
        self.module = module or AnsibleModule(
            argument_spec=dict(self.argument_spec),
            mutually_exclusive=list(self.mutually_exclusive),
            required_together=list(self.required_together),
            required_one_of=list(self.required_one_of),
            required_if=list(self.required_if),
            required_by=dict(self.required_by),
            supports_check_mode=self.supports_check_mode,
        )
        self.params = self.module.params
        self.runner = CommandRunner(self.module)
        self.changed = False
        self._diff = None

    @property
    def check_mode(self):
        return self.module.check_mode

    def run(self):
        """Do the work; return a dict of result keys (``changed`` is added)."""
        raise NotImplementedError

    def set_diff(self, before, after):
        """Record a diff; callers pass views that hold no secrets."""
        self._diff = {"before": before, "after": after}

    def set_diffs(self, diffs):
        """Record several diffs (one per file, each with its own header); callers pass no secrets."""
        self._diff = list(diffs)

    @staticmethod
    def require(library, import_error):
        """Raise MissingLibraryError when an optional import failed."""
        if import_error is not None:
            raise MissingLibraryError(library, import_error)

    def execute(self):
        try:
            result = self.run() or {}
        except MissingLibraryError as e:
            self.module.fail_json(msg=missing_required_lib(e.library), exception=_format(e.error))
        except NimbusError as e:
            self.module.fail_json(msg=e.msg, **e.details)
        result.setdefault("changed", self.changed)
        if self.check_mode and self.returns_commands:
            # What a real run would do, as community.general modules report it.
            result.setdefault("commands", list(self.runner.planned))
        if self._diff is not None and self.module._diff:
            result["diff"] = self._diff
        self.module.exit_json(**result)

    @classmethod
    def main(cls):
        cls().execute()


def _format(error):
    if error is None:
        return None
    if isinstance(error, str):
        return error
    return "".join(traceback.format_exception(type(error), error, error.__traceback__))
