"""The rabbitmq role's plugin plan (roles/rabbitmq/vars/main.yml), rendered by Ansible as service.yml uses it:
what enabled_plugins lists decides which rabbitmq-plugins calls run, and a converged node gets none.

Rendered in a child process: the collection loader Ansible needs to find nimbus.cloud's filter is installed
for the whole process and would change how the other tests import the collection.
"""

import base64
import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).parents[3]
RENDER = r"""
import json
import sys

import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader
from ansible.template import Templar

try:
    from ansible.template import trust_as_template
except ImportError:  # ansible-core < 2.19 templates every string
    def trust_as_template(value):
        return value


def trusted(value):
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, list):
        return [trusted(v) for v in value]
    if isinstance(value, dict):
        return {k: trusted(v) for k, v in value.items()}
    return value


root, collections = sys.argv[1:]
init_plugin_loader([collections])
role = {}
for part in ("defaults", "vars"):
    with open("%s/roles/rabbitmq/%s/main.yml" % (root, part)) as f:
        role.update(yaml.safe_load(f))
results = []
for case in json.load(sys.stdin):
    templar = Templar(loader=DataLoader(), variables=dict(trusted(role), **case))
    results.append([templar.template(trust_as_template("{{ %s }}" % name))
                    for name in ("__rabbitmq_plugins_to_enable", "__rabbitmq_plugins_to_disable")])
print(json.dumps(results))
"""


def read(text):
    """What the role registers from slurp: the content, or the failure of a missing file."""
    if text is None:
        return {"failed": True, "msg": "File not found: /etc/rabbitmq/enabled_plugins"}
    return {"content": base64.b64encode(text.encode()).decode(), "encoding": "base64"}


MGMT, PROM, SHOVEL = "rabbitmq_management", "rabbitmq_prometheus", "rabbitmq_shovel"

# enabled_plugins (None: no file), rabbitmq_management_enabled, rabbitmq_plugins, to enable, to disable
CASES = [
    pytest.param(None, False, [], [], [], id="fresh node, nothing wanted"),
    pytest.param(None, True, [PROM], [MGMT, PROM], [], id="fresh node"),
    pytest.param("[rabbitmq_management,rabbitmq_prometheus].\n", True, [PROM], [], [], id="converged"),
    pytest.param("[rabbitmq_prometheus,\n rabbitmq_management].\n", True, [PROM], [], [], id="converged, over lines"),
    pytest.param("[rabbitmq_management].\n", True, [PROM], [PROM], [], id="a plugin to add"),
    pytest.param("[rabbitmq_management,rabbitmq_shovel].\n", False, [], [], [MGMT], id="management to disable"),
    pytest.param("[rabbitmq_shovel].\n", False, [PROM], [PROM], [], id="other plugins are never disabled"),
    pytest.param("[].\n", False, [MGMT], [], [], id="management disabled wins over the list"),
    pytest.param("[rabbitmq_management].\n", False, [MGMT], [], [MGMT], id="and is disabled once"),
    pytest.param("[].\n", True, "rabbitmq_prometheus", [MGMT, PROM], [], id="a single name"),
]


@pytest.fixture(scope="module")
def rendered():
    cases = [{"__rabbitmq_enabled_plugins_read": read(p.values[0]), "rabbitmq_management_enabled": p.values[1],
              "rabbitmq_plugins": p.values[2]} for p in CASES]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    out = subprocess.run([sys.executable, "-c", RENDER, str(ROOT), str(ROOT / ".cache" / "collections")],
                         input=json.dumps(cases), capture_output=True, text=True, env=env, check=False)
    assert out.returncode == 0, out.stderr
    return {p.id: result for p, result in zip(CASES, json.loads(out.stdout))}


@pytest.mark.parametrize("enabled, management, plugins, to_enable, to_disable", CASES)
def test_plugin_plan(rendered, request, enabled, management, plugins, to_enable, to_disable):
    case = request.node.callspec.id
    assert rendered[case] == [to_enable, to_disable]
