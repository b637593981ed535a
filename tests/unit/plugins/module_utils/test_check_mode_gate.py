"""Nothing in plugins/ changes a host except through the command runner's gate.

The runner's ``change`` (commands) and ``apply`` (anything else) are the one
place check mode is honoured. This test reads the source of every module and
module_util and fails when code that writes files, removes them, creates
directories or temporary files, or runs a program is reachable any other way:

- such calls may appear only inside an *applier*, a function listed below
  that the rest of the code hands to ``runner.apply`` (or a step) instead of
  calling it;
- an applier may be called directly only by another applier;
- nobody but the runner touches ``runner.planned``.

A new applier belongs in APPLIERS with the reason it is safe.
"""

import ast
import glob
import os

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "plugins")

# file -> functions that make changes and are only ever run through the gate
APPLIERS = {
    "module_utils/_runner.py": {"CommandRunner._run"},  # the gate itself
    "module_utils/_files.py": {
        "locked",  # creates its lock file only when not in check mode (tested in test__files.py)
        "atomic_write", "remove", "remove_tree", "Records.write", "Records.remove",
        # nimbus.cloud.files hands these to runner.apply, entry by entry, after checking every entry
        "replace_file", "make_directory", "remove_path",
    },
    "modules/files.py": {"_set_attributes"},
    "module_utils/_libvirt.py": {"Hypervisor._write_seed"},
    "module_utils/_galera.py": {"recover_position"},
    "module_utils/_nftables.py": {"save"},
    "module_utils/_ipam.py": {"NetworkStore.save"},
    # the image store's writers are Call steps of the image module's plan; a hypervisor's pull goes through
    # runner.apply in Cache.ensure
    "module_utils/_images.py": {"copy_stream", "Store.write_record", "Store.write_index", "Store.deactivate",
                                "Store.delete", "Store.incoming", "Store.ingest", "Cache.pull"},
    # volumes, snapshots and backups are made and removed by Call steps of their modules' plans
    "module_utils/_volumes.py": {
        "Storage.incoming", "Storage.write_volume", "Storage.write_snapshot", "Storage.write_backup",
        "Storage.qemu_img", "Storage.make_volume", "Storage.from_image", "Storage.from_snapshot",
        "Storage.from_backup", "Storage.extend", "Storage.delete_volume", "Storage.take_snapshot",
        "Storage.delete_snapshot", "Storage.take_backup", "Storage.delete_backup",
        "Storage.export", "Storage.reexport", "Storage.unexport", "Storage._record_attachments",
        "_update_volume", "_write_snapshot", "_write_backup",
    },
    # a node's record is written by runner.apply in Provisioner.save
    "module_utils/_baremetal.py": {"Provisioner._write", "Jobs._write", "Jobs._remove", "Jobs._unserve",
                                   "DeployImages._convert"},
    # swift_ring's commit hands each of these to runner.apply once the whole run is planned and checked
    "module_utils/_swift_ring.py": {"_create_dir", "_copy_backup", "_save_builder", "_save_ring", "_delete_files"},
    # run_pass hands a whole pass (its recon directory and the replicator) to runner.apply
    "module_utils/_swift_replication.py": {"_replicate_once"},
}

OS_CHANGES = {"makedirs", "mkdir", "replace", "rename", "renames", "unlink", "remove", "rmdir", "chmod", "chown",
              "lchown", "symlink", "link", "truncate", "mkfifo", "system", "popen", "write", "ftruncate"}
MODULE_CHANGES = {
    "os": OS_CHANGES,
    "shutil": {"rmtree", "copy", "copy2", "copyfile", "copytree", "move", "chown"},
    "tempfile": {"mkstemp", "mkdtemp", "NamedTemporaryFile", "TemporaryDirectory", "TemporaryFile"},
    "subprocess": None,  # anything
}


def sources():
    for path in sorted(glob.glob(os.path.join(ROOT, "module_utils", "*.py")) +
                       glob.glob(os.path.join(ROOT, "modules", "*.py"))):
        rel = os.path.relpath(path, ROOT)
        with open(path) as f:
            yield rel, ast.parse(f.read(), rel)


def _opens_for_writing(call):
    mode = call.args[1] if len(call.args) > 1 else next((k.value for k in call.keywords if k.arg == "mode"), None)
    if mode is None:
        return False
    if not isinstance(mode, ast.Constant):
        return True  # a mode decided at run time could write
    return any(c in str(mode.value) for c in "wax+")


def changing_call(call):
    """A description of what ``call`` changes, or None."""
    func = call.func
    if isinstance(func, ast.Name) and func.id == "open" and _opens_for_writing(call):
        return "open(..., writing)"
    if isinstance(func, ast.Attribute):
        if func.attr == "run_command":
            return "run_command"
        if isinstance(func.value, ast.Name) and func.value.id in MODULE_CHANGES:
            names = MODULE_CHANGES[func.value.id]
            if names is None or func.attr in names:
                return "%s.%s" % (func.value.id, func.attr)
    return None


class Walker(ast.NodeVisitor):
    def __init__(self):
        self.scope = []
        self.calls = []  # (qualname, call node)
        self.planned = []

    def _enter(self, node):
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    visit_ClassDef = visit_FunctionDef = visit_AsyncFunctionDef = _enter

    def visit_Call(self, node):
        self.calls.append((".".join(self.scope), node))
        self.generic_visit(node)

    def visit_Attribute(self, node):
        if node.attr == "planned":
            self.planned.append((".".join(self.scope), node.lineno))
        self.generic_visit(node)


def walked():
    for rel, tree in sources():
        walker = Walker()
        walker.visit(tree)
        yield rel, walker


def within(qualname, appliers):
    return any(qualname == a or qualname.startswith(a + ".") for a in appliers)


def test_changes_happen_only_inside_appliers():
    leaks = []
    for rel, walker in walked():
        appliers = APPLIERS.get(rel, set())
        for qualname, call in walker.calls:
            what = changing_call(call)
            if what and not within(qualname, appliers):
                leaks.append("%s:%d %s in %s" % (rel, call.lineno, what, qualname or "<module>"))
    assert leaks == []


def calls_applier(call, functions, methods):
    """Whether ``call`` runs an applier: a function by name, or a method on something named like its owner.

    Methods are matched by their owner's name in the receiver (``records.write``,
    ``store.save``) so that ``list.remove`` or a file's ``write`` are not taken
    for an applier.
    """
    func = call.func
    if isinstance(func, ast.Name):
        return func.id in functions
    if not isinstance(func, ast.Attribute):
        return False
    receiver = ast.unparse(func.value).lower()
    if func.attr in functions and receiver.rsplit(".", maxsplit=1)[-1].lstrip("_") in ("files", "galera", "nftables", "nft"):
        return True
    return any(func.attr == method and owner in receiver for owner, method in methods)


OWNER_HINTS = {"Records": "record", "NetworkStore": "store", "Hypervisor": "hv", "CommandRunner": "runner",
               "Store": "store", "Cache": "cache", "Storage": "storage", "Provisioner": "provisioner", "Jobs": "jobs", "DeployImages": "images"}


def test_appliers_are_run_through_the_gate_not_called():
    functions, methods = set(), set()
    for rel, names in APPLIERS.items():
        for name in names - {"locked", "CommandRunner._run"}:
            if "." in name:
                owner, method = name.split(".")
                methods.add((OWNER_HINTS[owner], method))
            else:
                functions.add(name)
    direct = []
    for rel, walker in walked():
        appliers = APPLIERS.get(rel, set())
        for qualname, call in walker.calls:
            if calls_applier(call, functions, methods) and not within(qualname, appliers):
                where = qualname or "<module>"
                direct.append("%s:%d calls %s in %s" % (rel, call.lineno, ast.unparse(call.func), where))
    assert direct == []


def test_only_the_runner_records_planned_changes():
    # The base class only reads it, to return ``commands`` in check mode.
    touched = ["%s:%d in %s" % (rel, line, qualname) for rel, walker in walked()
               for qualname, line in walker.planned
               if rel != "module_utils/_runner.py" and (rel, qualname) != ("module_utils/_base.py", "NimbusModule.execute")]
    assert touched == []


@pytest.mark.parametrize("source, leaks", [
    ("def f(p):\n    open(p, 'w').write('x')\n", 1),
    ("import os\ndef f(p):\n    os.makedirs(p)\n", 1),
    ("import shutil\ndef f(p):\n    shutil.rmtree(p)\n", 1),
    ("def f(m):\n    m.run_command(['rm', '-rf', '/'])\n", 1),
    ("def f(p):\n    open(p).read()\n", 0),
    ("def f(runner, p):\n    runner.apply('x', os.makedirs, p)\n", 0),
])
def test_the_scan_sees_a_bypass(source, leaks):
    walker = Walker()
    walker.visit(ast.parse(source))
    assert len([call for scope, call in walker.calls if changing_call(call)]) == leaks


@pytest.mark.parametrize("source, direct", [
    ("self.records.write('a', {})", True),
    ("records().remove(name)", True),
    ("atomic_write(path, text)", True),
    ("_files.remove(path)", True),
    ("store.save(ipam)", True),
    ("peers.remove(ip)", False),
    ("handle.write(text)", False),
    ("runner.apply('w', records.write, 'a', {})", False),
])
def test_the_scan_sees_an_applier_called_directly(source, direct):
    call = ast.parse(source).body[0].value
    functions = {"atomic_write", "remove", "remove_tree", "save"}
    methods = {("record", "write"), ("record", "remove"), ("store", "save")}
    assert calls_applier(call, functions, methods) is direct


def test_every_lock_says_whether_it_is_check_mode():
    """``locked`` creates its directory and file unless told it runs in check mode: every caller must say."""
    missing = ["%s:%d in %s" % (rel, call.lineno, qualname) for rel, walker in walked()
               for qualname, call in walker.calls
               if (isinstance(call.func, ast.Name) and call.func.id == "locked"
                   or isinstance(call.func, ast.Attribute) and call.func.attr == "locked")
               and not any(k.arg == "check_mode" for k in call.keywords)]
    assert missing == []
