"""tools/images: what goes into each family image, and which scenarios use them.

The images are built by tools/testbed; these tests check the recipe (pure) and
the contract with the Molecule scenarios: every platform names an image that
exists as a family or the base, and every role is still installed from the bare
base image by one scenario.
"""

import importlib.machinery
import importlib.util
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]


def load_images():
    loader = importlib.machinery.SourceFileLoader("nimbus_tools_images", str(REPO / "tools" / "images"))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


images = load_images()


def platforms():
    for path in sorted((REPO / "molecule").glob("*/molecule.yml")):
        data = yaml.safe_load(path.read_text()) or {}
        for platform in data.get("platforms") or []:
            yield path.parent.name, platform


def test_every_family_holds_its_roles_packages_with_their_recommends_setting():
    for family, (parent, groups) in images.FAMILIES.items():
        text = images.containerfile(family)
        assert text.startswith("FROM %s\n" % (images.image_name(parent) if parent else images.BASE))
        run_lines = [line for line in text.splitlines() if line.startswith("RUN ")]
        for role, key, recommends in groups:
            for package in images.role_packages(role, key):
                holding = [line for line in run_lines if " %s " % package in line or line.endswith(" " + package)]
                assert holding, "%s: %s from roles/%s is not installed" % (family, package, role)
                assert all(("--no-install-recommends" in line) is (not recommends) for line in holding), (family, package)


def test_the_recommends_setting_matches_the_roles_apt_task():
    # The image must install what the role would: a role whose apt task sets
    # install_recommends: false gets the same in its image.
    for _family, (_parent, groups) in images.FAMILIES.items():
        for role, _key, recommends in groups:
            install = yaml.safe_load((REPO / "roles" / role / "tasks" / "install.yml").read_text())
            apt = [t for t in install if isinstance(t, dict) and "ansible.builtin.apt" in t]
            assert apt, "roles/%s/tasks/install.yml has no apt task" % role
            assert apt[0]["ansible.builtin.apt"].get("install_recommends", True) is recommends, role


def test_a_changed_package_list_changes_the_recipe_of_that_family_and_those_built_on_it(monkeypatch):
    monkeypatch.setattr(images, "label_of", lambda image: "base-recipe")
    before = {f: images.recipe(f, {}) for f in images.FAMILIES}
    real = images.role_packages

    def with_extra(role, key):
        return real(role, key) + (["extra-package"] if key == "__bridges_packages" else [])

    monkeypatch.setattr(images, "role_packages", with_extra)
    after = {f: images.recipe(f, {}) for f in images.FAMILIES}
    changed = {f for f in images.FAMILIES if before[f] != after[f]}
    assert changed == {"network", "kvm"}


def test_a_changed_base_image_changes_every_recipe(monkeypatch):
    monkeypatch.setattr(images, "label_of", lambda image: "base-1")
    one = {f: images.recipe(f, {}) for f in images.FAMILIES}
    monkeypatch.setattr(images, "label_of", lambda image: "base-2")
    two = {f: images.recipe(f, {}) for f in images.FAMILIES}
    assert all(one[f] != two[f] for f in images.FAMILIES)


def test_a_missing_base_image_is_refused(monkeypatch):
    monkeypatch.setattr(images, "label_of", lambda image: None)
    with pytest.raises(SystemExit, match="tools/testbed"):
        images.recipe("control", {})


def test_parents_are_built_first():
    assert images.order(["control", "kvm"]) == ["control", "network", "kvm"]


def test_every_platform_uses_the_base_image_or_a_family():
    known = {images.BASE} | {images.image_name(f) for f in images.FAMILIES}
    for scenario, platform in platforms():
        assert platform.get("image") in known, "%s/%s: %s" % (scenario, platform["name"], platform.get("image"))


# Where each role is installed from nothing: (scenario, host, the role's tasks
# that the scenario applies there). The rest of the suite may start from the
# family images because these still prove the install.
FROM_NOTHING = {
    "mariadb": ("control_single", "nimbus-mariadb-1"),
    "rabbitmq": ("control_single", "nimbus-rmq-1"),
    "kvm": ("kvm", "nimbus-kvm-1"),
    "pxe": ("kvm", "nimbus-kvm-1"),
    "bridges": ("network", "nimbus-net-1"),
    "api": ("control_cluster", "nimbus-ctl-worker"),
    "images": ("storage", "nimbus-st-store"),
    "volumes": ("storage", "nimbus-st-store"),
    # Its storage packages; the proxy's are installed from nothing by the all-in-one.
    "swift": ("object_storage", "nimbus-os-4"),
}


@pytest.mark.parametrize("role", sorted(p.name for p in (REPO / "roles").iterdir() if (p / "tasks").is_dir()))
def test_every_role_is_installed_from_the_bare_base_image_by_one_scenario(role):
    assert role in FROM_NOTHING, "no scenario installs role %s from the base image" % role
    scenario, host = FROM_NOTHING[role]
    hosts = {p["name"]: p for s, p in platforms() if s == scenario}
    assert hosts[host]["image"] == images.BASE
    converge = (REPO / "molecule" / scenario / "converge.yml").read_text()
    assert "nimbus.cloud.%s" % role in converge, (scenario, role)
