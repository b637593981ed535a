import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from unittest.mock import MagicMock

import pytest
import yaml
from ansible.errors import AnsibleActionFail

from ansible_collections.nimbus.cloud.plugins.action import place
from ansible_collections.nimbus.cloud.plugins.action.place import ActionModule
from ansible_collections.nimbus.cloud.plugins.modules import place as doc


def hypervisor(hostname, ram_total=4096, ram_used=0, instances=()):
    return {
        "hostname": hostname,
        "virt_type": "qemu",
        "availability_zone": "nova",
        "aggregates": [],
        "vcpus": {"total": 4, "reserved": 0, "ratio": 4.0, "capacity": 16, "used": 0, "free": 16},
        "ram_mb": {"total": ram_total, "reserved": 0, "ratio": 1.0, "used": ram_used},
        "disk_gb": {"total": 100, "reserved": 0, "ratio": 1.0, "used": 0},
        "instances": list(instances),
    }


def web(name, group="web"):
    request = {"name": name, "flavor": {"vcpus": 1, "ram_mb": 1024, "disk_gb": 10}}
    if group:
        request["server_group"] = {"name": group, "policy": "anti-affinity"}
    return request


HYPERVISORS = [
    hypervisor("hv1"),
    hypervisor("hv2", ram_used=1024,
               instances=[{"name": "web1", "server_group": "web", "vcpus": 1, "ram_mb": 1024, "disk_gb": 10}]),
    hypervisor("hv3", ram_total=2048),
]


def run_action(args, check_mode=False):
    task = MagicMock()
    task.args = args
    task.async_val = 0
    task.check_mode = check_mode
    connection = MagicMock()
    connection._shell.tmpdir = None
    action = ActionModule(task, connection, MagicMock(), MagicMock(), MagicMock(), None)
    action._load_name = "nimbus.cloud.place"
    return action.run(task_vars={})


@pytest.mark.parametrize("check_mode", [False, True])
def test_places_and_reuses(check_mode):
    result = run_action({"hypervisors": HYPERVISORS, "requests": [web("web1"), web("web2"), web("web3"), web("db1", None)]},
                        check_mode=check_mode)
    assert result["changed"] is False and not result.get("failed")
    assert result["placements"] == [
        {"name": "web1", "hypervisor": "hv2", "reused": True},
        {"name": "web2", "hypervisor": "hv1", "reused": False},
        {"name": "web3", "hypervisor": "hv3", "reused": False},
        {"name": "db1", "hypervisor": "hv1", "reused": False},
    ]
    assert result["by_hypervisor"] == {"hv2": ["web1"], "hv1": ["web2", "db1"], "hv3": ["web3"]}


def test_stack_weigher():
    result = run_action({"hypervisors": HYPERVISORS, "requests": [web("db1", None)], "weigher": "stack"})
    assert result["placements"] == [{"name": "db1", "hypervisor": "hv3", "reused": False}]


def test_registered_results_by_host_name():
    registered = {"compute%d" % n: {"changed": False, "failed": False, "hypervisor": h} for n, h in enumerate(HYPERVISORS, 1)}
    result = run_action({"hypervisors": registered, "requests": [web("web1"), web("web2")]})
    assert result["by_hypervisor"] == {"compute2": ["web1"], "compute1": ["web2"]}


def test_nothing_to_place():
    assert run_action({"hypervisors": [], "requests": []}) == {"changed": False, "placements": [], "by_hypervisor": {}}


def test_no_valid_host_fails_the_task():
    requests = [web("web2"), web("web3"), web("web4")]
    result = run_action({"hypervisors": HYPERVISORS, "requests": requests})
    assert result["failed"] is True
    assert result["msg"] == "No valid host for web4: 3 hosts; AntiAffinityFilter rejected 3"
    assert "placements" not in result


@pytest.mark.parametrize("args, message", [
    ({"requests": []}, "missing required arguments: hypervisors"),
    ({"hypervisors": [], "requests": [], "weigher": "random"}, "weigher"),
    ({"hypervisors": [], "requests": [], "colour": "red"}, "Unsupported parameters for (nimbus.cloud.place) module: colour"),
    ({"hypervisors": [], "requests": [{"name": "x"}]}, "missing required arguments: flavor"),
    ({"hypervisors": [], "requests": [{"name": "x", "flavor": {"vcpus": 1, "ram_mb": "lots", "disk_gb": 0}}]}, "ram_mb"),
    ({"hypervisors": [], "requests": [{"name": "x", "flavor": {"vcpus": 1, "ram_mb": 1, "disk_gb": 0},
                                       "server_group": {"name": "g", "policy": "soft"}}]}, "policy"),
])
def test_bad_arguments_fail_validation(args, message):
    with pytest.raises(AnsibleActionFail) as e:
        run_action(args)
    assert message in str(e.value)


@pytest.mark.parametrize("args, message", [
    ({"hypervisors": "hv1", "requests": []},
     "hypervisors must be a list of hypervisors or a mapping of host name to hypervisor, got str"),
    ({"hypervisors": [], "requests": [web("x"), web("x")]}, "requests[1].name 'x' repeats requests[0].name"),
    ({"hypervisors": [], "requests": [dict(web("x"), flavor={"vcpus": 1, "ram_mb": -1, "disk_gb": 0})]},
     "requests[0].flavor.ram_mb must be >= 1, got -1"),
    ({"hypervisors": [{"hostname": "hv1"}], "requests": []}, "hypervisors[0].vcpus must be a mapping, got NoneType"),
    ({"hypervisors": {"hv1": {"failed": True, "msg": "unreachable"}}, "requests": []},
     "hypervisors[hv1].vcpus must be a mapping, got NoneType"),
])
def test_bad_data_fails_the_task(args, message):
    result = run_action(args)
    assert result["failed"] is True and result["msg"] == message


def test_argument_spec_matches_the_documentation():
    def shape(options):
        return {
            name: (spec.get("type", "str"), bool(spec.get("required", False)), spec.get("choices"), spec.get("default"),
                   spec.get("elements"), shape(spec.get("options") or spec.get("suboptions") or {}))
            for name, spec in options.items()
        }

    assert shape(place.ARGUMENT_SPEC) == shape(yaml.safe_load(doc.DOCUMENTATION)["options"])


PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  vars:
    hypervisors: {hypervisors}
    web: {{vcpus: 1, ram_mb: 1024, disk_gb: 10}}
  tasks:
    - name: Place
      nimbus.cloud.place:
        hypervisors: "{{{{ hypervisors }}}}"
        requests:
          - {{name: web1, flavor: "{{{{ web }}}}", server_group: {{name: web, policy: anti-affinity}}}}
          - {{name: web2, flavor: "{{{{ web }}}}", server_group: {{name: web, policy: anti-affinity}}}}
          - {{name: db1, flavor: {{vcpus: "2", ram_mb: "512", disk_gb: 5}}}}
      register: placed

    - name: Place in check mode
      nimbus.cloud.place:
        hypervisors: "{{{{ hypervisors }}}}"
        requests: [{{name: web2, flavor: "{{{{ web }}}}", server_group: {{name: web, policy: anti-affinity}}}}]
      check_mode: true
      register: checked

    - name: Place too much
      nimbus.cloud.place:
        hypervisors: "{{{{ hypervisors }}}}"
        requests: [{{name: big, flavor: {{vcpus: 1, ram_mb: 100000, disk_gb: 1}}}}]
      register: big
      ignore_errors: true

    - name: Report
      ansible.builtin.copy:
        dest: "{{{{ report }}}}"
        content: "{{{{ {{'placed': placed, 'checked': checked, 'big': big}} | to_json }}}}"
        mode: "0600"
"""


def test_playbook_end_to_end(tmp_path):
    # Where the tests import the collection from (not resolved: that is a link
    # back to the checkout), so that ansible-playbook runs the same code.
    collections = Path(place.__file__).parents[5]
    playbook = tmp_path / "place.yml"
    playbook.write_text(textwrap.dedent(PLAYBOOK.format(hypervisors=json.dumps(HYPERVISORS))))
    report = tmp_path / "report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_COLLECTIONS_PATH=str(collections), ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"),
               ANSIBLE_NOCOLOR="1", ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
               ANSIBLE_LOCALHOST_WARNING="false")
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-c", "local", "-e", "report=%s" % report, str(playbook)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(report.read_text())
    assert result["placed"]["changed"] is False
    assert result["placed"]["placements"] == [
        {"name": "web1", "hypervisor": "hv2", "reused": True},
        {"name": "web2", "hypervisor": "hv1", "reused": False},
        {"name": "db1", "hypervisor": "hv1", "reused": False},
    ]
    assert result["placed"]["by_hypervisor"] == {"hv1": ["web2", "db1"], "hv2": ["web1"]}
    assert result["checked"]["placements"] == [{"name": "web2", "hypervisor": "hv1", "reused": False}]
    assert result["big"]["failed"] is True
    assert result["big"]["msg"] == "No valid host for big: 3 hosts; RamFilter rejected 3"
