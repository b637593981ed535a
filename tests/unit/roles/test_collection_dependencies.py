"""Every collection the roles and playbooks call is declared, in galaxy.yml and in collections/requirements.yml.

An install from Galaxy brings only the declared dependencies: a module, filter, test or lookup of an undeclared
collection fails there, at run time, on the user's hosts.
"""

import pathlib
import re

import pytest
import yaml

ROOT = pathlib.Path(__file__).parents[3]
SCANNED = ("roles", "playbooks")
# Always there, or this collection itself.
OWN = {"ansible.builtin", "ansible.legacy", "nimbus.cloud"}

FQCN = r"([a-z][a-z0-9_]*\.[a-z][a-z0-9_]*)\.[a-z][a-z0-9_]*"
# Where Jinja names a plugin: a filter after |, a test after is, a lookup or query, or a filter/test given by
# name to map/select/reject and friends.
JINJA_REFERENCES = [
    re.compile(r"\|\s*" + FQCN),
    re.compile(r"\bis\s+(?:not\s+)?" + FQCN),
    re.compile(r"\b(?:lookup|query|q)\(\s*['\"]" + FQCN),
    re.compile(r"\b(?:map|select|reject|selectattr|rejectattr)\(\s*(?:['\"][^'\"]*['\"]\s*,\s*)?['\"]" + FQCN + "['\"]"),
]
TASK_LISTS = ("tasks", "pre_tasks", "post_tasks", "handlers", "block", "rescue", "always")
PLAYBOOK_KEYS = {"import_playbook", "ansible.builtin.import_playbook"}


def files():
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*")):
            if path.is_file() and path.suffix in (".yml", ".yaml", ".j2"):
                yield path


def module_names(node):
    """The keys of task dicts that name a module or action by its full name."""
    if isinstance(node, list):
        for item in node:
            yield from module_names(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if isinstance(key, str) and re.fullmatch(FQCN, key) and key not in PLAYBOOK_KEYS:
                yield key
            if key in TASK_LISTS or isinstance(value, (list, dict)):
                yield from module_names(value)


def collections_used(path):
    text = path.read_text()
    found = set()
    for pattern in JINJA_REFERENCES:
        found.update(m.group(1) for m in pattern.finditer(text))
    if path.suffix in (".yml", ".yaml") and path.parent.name not in ("defaults", "vars") and path.parent.parent.name != "meta":
        found.update(name.rsplit(".", 1)[0] for name in module_names(yaml.safe_load(text)))
    return found - OWN


def used():
    found = {}
    for path in files():
        for collection in collections_used(path):
            found.setdefault(collection, []).append(str(path.relative_to(ROOT)))
    return found


def galaxy_dependencies():
    return set((yaml.safe_load((ROOT / "galaxy.yml").read_text()) or {}).get("dependencies") or {})


def requirements():
    entries = yaml.safe_load((ROOT / "collections" / "requirements.yml").read_text())["collections"]
    return {e["name"] if isinstance(e, dict) else e for e in entries}


USED = used()


def test_the_scan_finds_what_the_roles_call():
    # Guards the scanner itself: these calls are in the roles today.
    assert {"community.mysql", "community.rabbitmq", "ansible.posix"} <= set(USED)


@pytest.mark.parametrize("collection", sorted(USED))
def test_declared_in_galaxy_yml(collection):
    assert collection in galaxy_dependencies(), "%s is used by %s" % (collection, ", ".join(USED[collection]))


@pytest.mark.parametrize("collection", sorted(USED))
def test_listed_in_collections_requirements(collection):
    assert collection in requirements(), "%s is used by %s" % (collection, ", ".join(USED[collection]))


def test_every_galaxy_dependency_is_used():
    assert galaxy_dependencies() - set(USED) == set()


def test_requirements_pin_what_galaxy_yml_declares():
    deps = yaml.safe_load((ROOT / "galaxy.yml").read_text())["dependencies"]
    entries = yaml.safe_load((ROOT / "collections" / "requirements.yml").read_text())["collections"]
    versions = {e["name"]: e.get("version") for e in entries}
    for name, version in deps.items():
        assert versions.get(name) == version, name


@pytest.mark.parametrize("text,expected", [
    ("x: \"{{ a | ansible.utils.remove_keys(target=['b']) }}\"", {"ansible.utils"}),
    ("x: \"{{ a is community.general.version('1', '>') }}\"", {"community.general"}),
    ("x: \"{{ lookup('community.general.random_string') }}\"", {"community.general"}),
    ("x: \"{{ a | map('ansible.utils.ipaddr', 'address') }}\"", {"ansible.utils"}),
    ("x: \"{{ item.item.name }} {{ created.instance.uuid }}\"", set()),
    ("x: \"{{ a | ansible.builtin.to_json }}\"", set()),
])
def test_the_jinja_scan(tmp_path, text, expected):
    path = tmp_path / "vars" / "main.yml"
    path.parent.mkdir()
    path.write_text(text)
    assert collections_used(path) == expected


def test_the_task_scan(tmp_path):
    path = tmp_path / "tasks" / "main.yml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump([
        {"name": "a", "block": [{"name": "b", "community.libvirt.virt_pool": {"command": "facts"}}],
         "rescue": [{"name": "c", "ansible.posix.sysctl": {"name": "x"}}]},
        {"name": "d", "ansible.builtin.debug": {"msg": "hi"}},
    ]))
    assert collections_used(path) == {"community.libvirt", "ansible.posix"}
