"""The documented ``vxlan_peers`` expressions, rendered by Ansible against an inventory, give the peers' VXLAN
addresses: every host of the listed groups, none of their inventory names.

The expressions are read from the places users copy them from (docs/networking.md and the EXAMPLES of the
network module), so a change to either is tested as written.
"""

import ast
import pathlib
import re

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar

try:
    from ansible.template import trust_as_template
except ImportError:  # ansible-core < 2.19 templates every string
    def trust_as_template(value):
        return value

ROOT = pathlib.Path(__file__).parents[3]

GROUPS = {
    "compute": ["compute-1", "compute-2", "compute-3"],
    "network": ["network-1"],
    "mariadb": ["db-1"],
}
GROUPS["all"] = sorted({h for hosts in GROUPS.values() for h in hosts})
VTEPS = {"compute-1": "10.0.10.11", "compute-2": "10.0.10.12", "compute-3": "10.0.10.13", "network-1": "10.0.10.21"}
HOSTVARS = {h: {"inventory_hostname": h, "bridges_vxlan_local_ip": VTEPS[h]} if h in VTEPS
            else {"inventory_hostname": h} for h in GROUPS["all"]}


def yaml_blocks_of_markdown(path):
    return re.findall(r"^```ya?ml\n(.*?)^```", path.read_text(), flags=re.M | re.S)


def examples_of_module(path):
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "EXAMPLES" for t in node.targets):
            return [ast.literal_eval(node.value)]
    raise AssertionError("%s has no EXAMPLES" % path)


SOURCES = {
    "docs/networking.md": yaml_blocks_of_markdown,
    "plugins/modules/network.py": examples_of_module,
}


def vxlan_peers_values(data):
    if isinstance(data, dict):
        for key, value in data.items():
            if key == "vxlan_peers" and isinstance(value, str) and "{{" in value:
                yield value
            else:
                yield from vxlan_peers_values(value)
    elif isinstance(data, list):
        for item in data:
            yield from vxlan_peers_values(item)


def documented_expressions(source):
    found = []
    for block in SOURCES[source](ROOT / source):
        found += vxlan_peers_values(yaml.safe_load(block))
    return found


def render(expression):
    templar = Templar(loader=DataLoader(), variables={"groups": GROUPS, "hostvars": HOSTVARS})
    return templar.template(trust_as_template(expression))


def groups_named(expression):
    return re.findall(r"groups\[['\"](\w+)['\"]\]", expression)


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_documented_vxlan_peers_render_to_the_hosts_vxlan_addresses(source):
    expressions = documented_expressions(source)
    assert expressions, "no templated vxlan_peers example in %s" % source
    for expression in expressions:
        named = groups_named(expression)
        assert named, expression
        expected = [VTEPS[h] for group in named for h in GROUPS[group]]
        assert render(expression) == expected, "%s: %s" % (source, expression)
