"""Every role's meta/argument_specs.yml describes exactly the variables of its defaults/main.yml."""

import pathlib

import pytest
import yaml

ROLES = sorted(p for p in (pathlib.Path(__file__).parents[3] / "roles").iterdir() if (p / "defaults").is_dir())


def load(path):
    with open(path) as f:
        return yaml.safe_load(f) or {}


@pytest.fixture(params=ROLES, ids=[r.name for r in ROLES])
def role(request):
    return request.param


def test_defaults_and_specs_name_the_same_variables(role):
    defaults = load(role / "defaults" / "main.yml")
    options = load(role / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    assert sorted(defaults) == sorted(options)


def test_variables_are_prefixed_with_the_role_name(role):
    for name in load(role / "defaults" / "main.yml"):
        assert name.startswith(role.name + "_"), name


def test_spec_defaults_match(role):
    defaults = load(role / "defaults" / "main.yml")
    options = load(role / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    for name, value in defaults.items():
        if isinstance(value, str) and "{{" in value and "default" not in options[name]:
            # Computed at run time (from facts, say): the description says how.
            continue
        assert options[name].get("default") == value, name


def test_every_variable_has_a_comment(role):
    lines = (role / "defaults" / "main.yml").read_text().splitlines()
    for i, line in enumerate(lines):
        if line and not line.startswith((" ", "#", "-")) and ":" in line:
            assert lines[i - 1].startswith("#"), "%s has no comment line" % line.split(":")[0]


def test_every_option_is_described_and_typed(role):
    options = load(role / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    for name, spec in options.items():
        assert spec.get("type"), name
        assert spec.get("description"), name
