"""Shared fixtures for unit tests of the collection's pure logic.

Modules and module_utils are imported as ``ansible_collections.nimbus.cloud``;
outside ansible-test that path is the link tools/testbed makes in .cache.
"""

import json
import os
import sys

import pytest

import importlib.util

try:
    FOUND = importlib.util.find_spec("ansible_collections.nimbus.cloud") is not None
except ImportError:
    FOUND = False
if not FOUND:
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", ".cache", "collections"))

from ansible.module_utils import basic  # noqa: E402
from ansible.module_utils.common.text.converters import to_bytes  # noqa: E402


class ModuleExit(Exception):
    def __init__(self, result, failed):
        super().__init__(result)
        self.result = result
        self.failed = failed


@pytest.fixture
def module_args(monkeypatch):
    """Set a module's arguments; exit_json/fail_json raise ModuleExit with the result."""

    def exit_json(self, **kwargs):
        kwargs.setdefault("changed", False)
        raise ModuleExit(kwargs, failed=False)

    def fail_json(self, **kwargs):
        raise ModuleExit(kwargs, failed=True)

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)

    def set_args(args, check_mode=False, diff=False):
        args = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff, _ansible_remote_tmp="/tmp",
                    _ansible_keep_remote_files=False)
        monkeypatch.setattr(basic, "_ANSIBLE_ARGS", to_bytes(json.dumps({"ANSIBLE_MODULE_ARGS": args})))
        monkeypatch.setattr(basic, "_ANSIBLE_PROFILE", "legacy", raising=False)

    return set_args


@pytest.fixture
def fake_commands(monkeypatch):
    """Answer run_command from a table of argv -> (rc, out, err); records every call."""
    calls = []
    table = {}

    def run_command(self, args, **kwargs):
        calls.append({"argv": list(args), **kwargs})
        key = tuple(os.path.basename(a) if i == 0 else a for i, a in enumerate(args))
        if key not in table:
            raise AssertionError("unexpected command: %r" % (key,))
        return table[key]

    def get_bin_path(self, name, required=False, opt_dirs=None):
        return "/usr/bin/" + name

    monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", get_bin_path)
    return table, calls


@pytest.fixture
def run_module(module_args):
    """Run a NimbusModule class with arguments; return (result, failed)."""

    def run(cls, args, check_mode=False, diff=False):
        module_args(args, check_mode=check_mode, diff=diff)
        with pytest.raises(ModuleExit) as exc:
            cls.main()
        return exc.value.result, exc.value.failed

    return run
