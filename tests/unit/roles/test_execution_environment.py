"""meta/execution-environment.yml holds what the collection's plugins import and the collections it depends on."""

import ast
import pathlib
import re
import sys

import yaml

ROOT = pathlib.Path(__file__).parents[3]
EE = ROOT / "meta" / "execution-environment.yml"
# Import name -> distribution name, where they differ.
DISTRIBUTIONS = {"libvirt": "libvirt-python", "yaml": "PyYAML", "pymysql": "PyMySQL"}
# Come with ansible-core itself.
WITH_ANSIBLE = {"ansible", "ansible_collections", "jinja2", "yaml", "__future__"}


def definition():
    return yaml.safe_load(EE.read_text())


def third_party_imports():
    found = {}
    for path in sorted((ROOT / "plugins").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in WITH_ANSIBLE:
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def requirement_names():
    return {re.split(r"[<>=!~\[ ;]", line, maxsplit=1)[0].lower() for line in definition()["dependencies"]["python"]}


def test_it_is_ansible_builder_v3():
    assert definition()["version"] == 3


def test_the_scan_sees_the_plugins_libraries():
    # Guards the scanner: these imports are in plugins/ today.
    assert {"netaddr", "libvirt"} <= set(third_party_imports())


def test_every_library_the_plugins_import_is_a_python_requirement():
    missing = {name: sorted(paths) for name, paths in third_party_imports().items()
               if DISTRIBUTIONS.get(name, name).lower() not in requirement_names()}
    assert missing == {}


def test_the_collections_are_the_requirements_file():
    galaxy = definition()["dependencies"]["galaxy"]
    assert (EE.parent / galaxy).resolve() == (ROOT / "collections" / "requirements.yml").resolve()


def test_system_packages_are_bindep_lines():
    for line in definition()["dependencies"]["system"]:
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.+_-]*( \[[a-z0-9:! -]+\])?", line), line
