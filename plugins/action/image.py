# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""nimbus.cloud.image: send a controller file (src) to the store host only when the image is new.

Documentation in plugins/modules/image.py. Without ``src`` the module runs as
it is. With ``src`` the module first runs with ``src_on_controller`` (the
file's name, for the record): an existing image needs no data and the task
ends there; a missing one answers ``needs_data``, and the file is sent to the
task's remote temporary directory, checked there against its sha256 (or the
task's own checksum) by the module, and removed with that directory.
"""

from __future__ import annotations

import hashlib
import os

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

MODULE = "nimbus.cloud.image"
CHUNK = 1 << 20


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


class ActionModule(ActionBase):
    TRANSFERS_FILES = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        src = args.pop("src", None)
        if src is None:
            result.update(self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars))
            return result
        if args.get("path") is not None or args.get("url") is not None:
            result.update(failed=True, msg="parameters are mutually exclusive: src|path|url")
            return result
        try:
            local = self._find_needle("files", src)
        except AnsibleError as e:
            result.update(failed=True, msg=to_text(e))
            return result
        if not os.path.isfile(local):
            result.update(failed=True, msg="src %s is not a regular file on the controller" % src)
            return result
        args["src_on_controller"] = os.path.basename(local)
        try:
            first = self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars)
            if not first.get("needs_data"):
                result.update(first)
                return result
            if not self._connection._shell.tmpdir:
                self._make_tmp_path()
            remote = self._connection._shell.join_path(self._connection._shell.tmpdir, "image-data")
            self._transfer_file(local, remote)
            self._fixup_perms2((self._connection._shell.tmpdir, remote))
            # The module checks what arrived: against the task's checksum, or the file's own sha256.
            args.setdefault("checksum", None)
            if not args["checksum"]:
                args["checksum"] = "sha256:" + sha256_of(local)
            args["path"] = remote
            result.update(self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars))
            return result
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
