import json
import os

import pytest

from ansible.module_utils import basic

from ansible_collections.nimbus.cloud.plugins.module_utils import _nftables as nft
from ansible_collections.nimbus.cloud.plugins.module_utils import _security_group as sg
from ansible_collections.nimbus.cloud.plugins.module_utils._errors import ValidationError
from ansible_collections.nimbus.cloud.plugins.module_utils._resource import Command, RemoveRecord, WriteRecord, given
from ansible_collections.nimbus.cloud.plugins.modules.security_group import SecurityGroupModule
from ansible_collections.nimbus.cloud.tests.unit.plugins import cases
from ansible_collections.nimbus.cloud.tests.unit.plugins.module_utils import nft_doc


# --- the pure planner: tables + records + task -> script, record, result ------------------------

def planned(case):
    host = sg.Host(nft_doc.tables(case.get("tables")),
                   [sg.GroupRecord(**dict(r, given_rules=sg.given_rules(r.get("given_rules"))))
                    for r in case.get("records") or []])
    task = case["task"]
    if task.get("state") == "absent":
        return sg.plan_absent(host, task["name"])
    return sg.plan_present(host, task["name"], given(task, sg.UPDATABLE), task.get("ports"))


@pytest.mark.parametrize("case", cases.params(__file__, "security_group_plan.yaml"))
def test_plan(case, tmp_path, monkeypatch):
    monkeypatch.setattr(sg, "RECORD_DIR", str(tmp_path / "sg"))
    if "error" in case:
        with pytest.raises(ValidationError, match=case["error"]):
            planned(case)
        return
    plan = planned(case)
    scripts = [s.data.splitlines() for s in plan.steps if isinstance(s, Command)]
    assert scripts == ([case["script"]] if case.get("script") else [])
    if scripts:
        assert plan.steps[1].describe() == "save the nimbus nftables to %s" % nft.SAVE_FILE
    records = [s for s in plan.steps if isinstance(s, (WriteRecord, RemoveRecord))]
    if case.get("record") == "removed":
        assert [type(s) for s in records] == [RemoveRecord] and records[0].name == case["task"]["name"]
    elif "record" in case:
        assert [type(s) for s in records] == [WriteRecord]
        assert {k: records[0].data[k] for k in case["record"]} == case["record"]
    else:
        assert records == []
    for key in ("before", "after"):
        if key in case:
            view = getattr(plan, key)
            assert {k: view.get(k) for k in case[key]} == case[key]
    assert plan.changed == bool(case.get("script") or case.get("record"))


# --- the module on a host whose tables change as nft would change them ---------------------------

class Host:
    def __init__(self, monkeypatch, tmp_path):
        self.etc = tmp_path / "etc"
        self.etc.mkdir()
        self.nft = nft_doc.FakeNft()
        self.commands = []
        monkeypatch.setattr(sg, "RECORD_DIR", str(self.etc / "security-groups"))
        monkeypatch.setattr(nft, "SAVE_FILE", str(self.etc / "nftables.nft"))
        monkeypatch.setattr(basic.AnsibleModule, "run_command", self._run_command())
        monkeypatch.setattr(basic.AnsibleModule, "get_bin_path",
                            lambda module, name, required=False, opt_dirs=None: "/usr/sbin/" + name)

    def _run_command(self):
        host = self

        def run_command(module, args, data=None, **kwargs):
            argv = [os.path.basename(args[0])] + [str(a) for a in args[1:]]
            host.commands.append(argv)
            if argv == ["nft", "-f", "-"]:
                try:
                    host.nft.apply(data)
                except nft_doc.NftError as e:
                    return 1, "", str(e)
                return 0, "", ""
            if argv[:3] in (["nft", "-j", "list"], ["nft", "list", "table"]):
                family = argv[-2]
                doc = host.nft.listing(family)
                if doc is None:
                    return 1, "", "Error: No such file or directory"
                text = json.dumps(doc) if argv[1] == "-j" else "table %s nimbus { %s }\n" % (
                    family, " ".join(sorted(host.nft.tables[family]["chains"])))
                return 0, text, ""
            raise AssertionError("unexpected command: %r" % (argv,))

        return run_command

    def files(self):
        return sorted(os.path.relpath(os.path.join(d, f), self.etc) for d, _dirs, fs in os.walk(self.etc) for f in fs)

    def snapshot(self):
        contents = {}
        for name in self.files():
            with open(os.path.join(self.etc, name)) as f:
                contents[name] = f.read()
        return json.dumps(self.nft.tables, sort_keys=True), contents

    def edit(self, spec):
        """Change the tables by hand, as an administrator with nft would."""
        for family, changes in spec.items():
            kept = nft_doc.state(family, changes)
            table = self.nft.tables[family]
            for kind in ("chains", "maps", "sets"):
                table[kind].update(kept[kind])


@pytest.fixture
def host(monkeypatch, tmp_path):
    return Host(monkeypatch, tmp_path)


def chain_rules(host, family="inet"):
    table = host.nft.tables[family]
    return {chain: [text for text, _comment in rules] for chain, rules in table["chains"].items()} if table else None


@pytest.mark.parametrize("case", cases.params(__file__, "security_group_runs.yaml"))
def test_runs(case, host, run_module):
    """Each step runs the module on what the steps before it left: check mode changes nothing, a repeat nothing."""
    for number, step in enumerate(case["steps"]):
        where = "step %d" % number
        if "edit" in step:
            host.edit(step["edit"])
            continue
        before = host.snapshot()
        result, failed = run_module(SecurityGroupModule, step["task"], check_mode=step.get("check", False), diff=True)
        if "error" in step:
            assert failed and step["error"] in result["msg"], where
            assert host.snapshot() == before, where
            continue
        assert not failed, (where, result)
        assert result["changed"] == step["changed"], where
        if step.get("check"):
            assert host.snapshot() == before, where
            commands = [c.replace(str(host.etc), "{etc}") for c in result["commands"]]
            assert commands == step.get("commands", commands) and bool(commands) == step["changed"], where
        elif not step["changed"]:
            assert host.snapshot() == before, where
        group = result["security_group"]
        for key, value in (step.get("result") or {}).items():
            assert group.get(key) == value, (where, key)
        if step.get("rule_count") is not None:
            assert len(group["rules"]) == step["rule_count"], where
        for chain, rules in (step.get("chains") or {}).items():
            assert chain_rules(host)[chain] == rules, (where, chain)
        if step.get("tables") == "absent":
            assert host.nft.tables == {"inet": None, "bridge": None}, where
        if "files" in step:
            assert host.files() == step["files"], where
        if result.get("diff") and step["changed"] and "diff_before" in step:
            assert result["diff"]["before"] == step["diff_before"], where


WEB = {"name": "web", "project": "demo", "rules": [{"protocol": "icmp", "remote_group": "web"}]}


def test_check_mode_on_an_empty_host_creates_nothing_and_returns_the_commands(host, run_module):
    result, failed = run_module(SecurityGroupModule, WEB, check_mode=True)
    assert not failed and result["changed"]
    assert result["commands"] == ["nft -f -", "save the nimbus nftables to %s/nftables.nft" % host.etc,
                                  "write %s/security-groups/web.json" % host.etc]
    assert os.listdir(host.etc) == [] and host.nft.scripts == []
    assert [c[:2] for c in host.commands] == [["nft", "-j"], ["nft", "-j"]]


def test_the_boot_file_holds_both_tables_and_goes_with_the_last_group(host, run_module):
    run_module(SecurityGroupModule, WEB)
    with open(host.etc / "nftables.nft") as f:
        saved = f.read()
    assert "delete table inet nimbus" in saved and "table bridge nimbus" in saved and "sg-web-in" in saved
    assert oct(os.stat(host.etc / "nftables.nft").st_mode & 0o777) == "0o600"
    run_module(SecurityGroupModule, {"name": "web", "state": "absent"})
    assert host.files() == []


def test_records_of_older_releases_are_read_without_a_change(host, run_module):
    run_module(SecurityGroupModule, WEB)
    path = host.etc / "security-groups" / "web.json"
    record = json.loads(path.read_text())
    # Older releases kept the members and the rules in the order a task gave them, with null-free keys.
    record.update(members=[], given_rules=[{"protocol": "icmp", "remote_group": "web", "direction": "ingress"}])
    path.write_text(json.dumps(record))
    result, failed = run_module(SecurityGroupModule, WEB)
    assert not failed and not result["changed"]


def test_info_lists_what_the_groups_enforce(host, run_module):
    """security_group_info reads the records the module wrote: the enforced rules, never the given ones."""
    from ansible_collections.nimbus.cloud.plugins.modules.security_group_info import SecurityGroupInfoModule

    for name, project in (("web", "demo"), ("db", "demo"), ("other", "ops")):
        result, failed = run_module(SecurityGroupModule, {"name": name, "project": project, "description": "{{ x }}",
                                                          "rules": [{"protocol": "tcp", "port_range_min": 22}]})
        assert not failed, result
    result, failed = run_module(SecurityGroupInfoModule, {"project": "demo"})
    assert not failed and not result["changed"]
    assert [g["name"] for g in result["security_groups"]] == ["db", "web"]
    web = result["security_groups"][1]
    assert set(web) == {"name", "project", "description", "allow_all_egress", "rules"}
    assert web["description"] == "{{ x }}" and web["allow_all_egress"] is True
    assert {r["direction"] for r in web["rules"]} == {"ingress", "egress"}  # the implied egress rule is enforced
    result, _failed = run_module(SecurityGroupInfoModule, {"name": ["other", "missing"]})
    assert [g["project"] for g in result["security_groups"]] == ["ops"]
    result, _failed = run_module(SecurityGroupInfoModule, {"name": ["missing"]})
    assert result["security_groups"] == []
