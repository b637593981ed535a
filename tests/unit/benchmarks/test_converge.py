"""The pure parts of benchmarks/converge: reading the json callback's output, the step plan, the marginal cost of a
host, the inventories it writes, and that a transport's host variables win over those of inventories/aio."""

import importlib.machinery
import importlib.util
import json
import pathlib
import sys

import os

import pytest
from ansible.constants import MAGIC_VARIABLE_MAPPING
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.vars.manager import VariableManager

ROOT = pathlib.Path(__file__).parents[3]


def load_converge():
    loader = importlib.machinery.SourceFileLoader("bench_converge", str(ROOT / "benchmarks" / "converge"))
    spec = importlib.util.spec_from_loader("bench_converge", loader)
    module = importlib.util.module_from_spec(spec)
    # dataclasses look the module up while the class is made.
    sys.modules[spec.name] = module
    loader.exec_module(module)
    return module


converge = load_converge()

OUTPUT = {
    "plays": [
        {
            "tasks": [
                {"task": {"id": "a", "name": "one"}, "hosts": {"h1": {"changed": False}, "h2": {"changed": True}}},
                {"task": {"id": "b", "name": "skipped everywhere"}, "hosts": {}},
                {"task": {"id": "c", "name": "broken"}, "hosts": {"h1": {"failed": True, "msg": "boom"}}},
            ]
        },
        # The same task in a second play (a role applied twice) counts once as a task.
        {"tasks": [{"task": {"id": "a", "name": "one"}, "hosts": {"h1": {}}}]},
    ],
    "stats": {"h1": {"changed": 0, "failures": 1, "unreachable": 0}, "h2": {"changed": 1, "unreachable": 1}},
}


def test_parse_counts_tasks_results_changes_and_failures():
    run = converge.Run()
    converge.parse("[WARNING]: noise before the document\n" + json.dumps(OUTPUT), run)
    assert (run.tasks, run.host_results, run.changed, run.failed) == (2, 4, 1, 2)
    assert run.failures == ["h1: broken: boom"]


@pytest.mark.parametrize("text", ["", "no json here", "{ not json"])
def test_parse_leaves_a_run_without_output_at_zero(text):
    run = converge.Run()
    converge.parse(text, run)
    assert (run.tasks, run.host_results, run.changed) == (0, 0, 0)
    assert run.per_task() is None and run.ms_per_result() is None


def test_per_task_and_per_result():
    run = converge.Run(seconds=12.0, tasks=48, host_results=60)
    assert run.per_task() == pytest.approx(0.25)
    assert run.ms_per_result() == pytest.approx(200)


def test_marginal_cost_of_a_host():
    got = converge.marginal({1: 20.0, 2: 21.0, 4: 26.0, 8: 34.0})
    assert got[1] is None
    assert got[2] == pytest.approx((1.0, 5.0))
    assert got[4] == pytest.approx((2.0, 10.0))
    assert got[8] == pytest.approx((2.0, 10.0))
    assert converge.marginal({2: 5.0, 4: 7.0}) == {2: None, 4: None}


def test_lists_and_counts():
    assert converge.csv_list("ssh, podman,ssh") == ["ssh", "podman"]
    assert converge.csv_list("none") == [] and converge.csv_list("") == []
    with pytest.raises(ValueError, match="unknown: telnet"):
        converge.csv_list("ssh,telnet", tuple(converge.TRANSPORTS))
    assert converge.host_counts("8,1,2,4,2") == [1, 2, 4, 8]
    with pytest.raises(ValueError):
        converge.host_counts("0,1")


def test_default_options():
    args = converge.parse_args([])
    assert args.transports == ["ssh", "podman", "mitogen", "mitogen-podman"]
    assert args.phases == ["cold", "noop", "check"]
    assert args.scale == [1, 2, 4, 8]
    assert args.scale_transport == "ssh" and not args.configs and not args.cold_first


def test_plan_cold_on_the_first_transport_only():
    assert converge.plan(["ssh", "podman"], ["cold", "noop", "check"], cold_each=False) == [
        ("ssh", "destroy"), ("ssh", "cold"), ("ssh", "noop"), ("ssh", "check"),
        ("podman", "noop"), ("podman", "check"),
    ]


def test_plan_cold_each():
    assert converge.plan(["ssh", "mitogen"], ["cold", "noop"], cold_each=True) == [
        ("ssh", "destroy"), ("ssh", "cold"), ("ssh", "noop"),
        ("mitogen", "destroy"), ("mitogen", "cold"), ("mitogen", "noop"),
    ]


def test_plan_without_cold_converges_first_untimed():
    assert converge.plan(["podman"], ["noop"], cold_each=False) == [("podman", "settle"), ("podman", "noop")]
    assert converge.plan(["ssh"], ["cold"], cold_each=False) == [("ssh", "destroy"), ("ssh", "cold")]


def test_scale_hosts_and_inventory():
    hosts = converge.scale_hosts(8)
    assert hosts[0] == ("nimbus-bench-scale-1", "10.89.71.11") and hosts[-1] == ("nimbus-bench-scale-8", "10.89.71.18")
    inv = converge.scale_inventory(hosts[:2], pathlib.Path("/k"), converge.TRANSPORTS["ssh"])["all"]["children"]["scale"]
    assert inv["hosts"]["nimbus-bench-scale-2"] == {"ansible_host": "10.89.71.12", "ansible_connection": "ssh"}
    assert inv["vars"]["ansible_ssh_private_key_file"] == "/k"
    assert inv["vars"]["kvm_security_driver"] == "none"
    # The podman plugin execs into the play context's remote_addr, ansible_ssh_host before ansible_host.
    inv = converge.scale_inventory(hosts[:1], pathlib.Path("/k"), converge.TRANSPORTS["podman"])["all"]["children"]["scale"]
    assert inv["hosts"]["nimbus-bench-scale-1"] == {"ansible_host": "10.89.71.11", "ansible_ssh_host": "nimbus-bench-scale-1",
                                                    "ansible_connection": "containers.podman.podman"}


def test_tables_align():
    runs = {"ssh": {"noop": converge.Run(seconds=10.0, tasks=40, host_results=50), "check": converge.Run(rc=2)}}
    lines = converge.transport_table(runs).splitlines()
    assert lines[0].split()[:3] == ["transport", "phase", "s"]
    assert lines[2].split() == ["ssh", "no-op", "10.0", "0", "40", "50", "0.25", "200"]
    assert "(failed)" in lines[3]
    scale = converge.scale_table({1: converge.Run(seconds=20.0, tasks=10, host_results=10, controller_cpu=8.0),
                                  2: converge.Run(seconds=22.0, tasks=10, host_results=20, controller_cpu=9.0)})
    scale = scale.splitlines()
    assert scale[2].split()[-5:] == ["-", "-", "8.0", "-", "-"]
    assert scale[3].split()[-5:] == ["2.00", "10.0", "9.0", "1.00", "5.0"]


def test_controller_cpu_per_added_host():
    got = converge.marginal_cpu({1: 8.0, 2: 9.0, 4: 11.0}, 20.0)
    assert got[1] is None
    assert got[2] == (1.0, 5.0) and got[4] == (1.0, 5.0)
    assert converge.marginal_cpu({2: 9.0}, None) == {2: None}


def test_controller_cpu_counts_the_children(tmp_path, monkeypatch):
    monkeypatch.setattr(converge, "OUTPUT", tmp_path)
    spin = ["python3", "-c", "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass"]
    run = converge.run_playbook("spin", dict(os.environ), spin, False, dict(os.environ))
    assert run.controller_cpu >= 0.25


@pytest.mark.parametrize("name", sorted(converge.TRANSPORTS))
def test_transport_overlay_wins_over_the_aio_inventory(tmp_path, name):
    """The benchmark sets the transport as host variables of an extra inventory source (not -e, which would take
    the local connection from the play on localhost); they must beat inventories/aio's own variables."""
    transport = converge.TRANSPORTS[name]
    loader = DataLoader()
    shipped = InventoryManager(loader=loader, sources=[str(ROOT / "inventories" / "aio")])
    hosts = shipped.get_groups_dict()["aio"]
    overlay = tmp_path / "overlay.json"
    overlay.write_text(json.dumps(converge.overlay_inventory(hosts, transport.host_vars)))
    inventory = InventoryManager(loader=loader, sources=[str(ROOT / "inventories" / "aio"), str(overlay)])
    variables = VariableManager(loader=loader, inventory=inventory)
    for host in hosts:
        got = variables.get_vars(host=inventory.get_host(host))
        for key, value in transport.host_vars.items():
            assert got[key] == value.format(host=host)
        assert got["ansible_python_interpreter"] == "/usr/bin/python3"
        # playbooks/aio.yml gives the container the address in ansible_host: no transport changes it.
        assert got.get("ansible_host") == shipped.get_host(host).vars.get("ansible_host")


def test_podman_transports_name_the_container_where_the_play_context_looks_first():
    """PlayContext takes remote_addr from the first of these variables that is set (ansible-core's mapping)."""
    order = MAGIC_VARIABLE_MAPPING["remote_addr"]
    assert order.index("ansible_ssh_host") < order.index("ansible_host")
    for name in ("podman", "mitogen-podman"):
        assert converge.TRANSPORTS[name].host_vars["ansible_ssh_host"] == "{host}"
