import json
import os

import pytest

from ansible_collections.nimbus.cloud.plugins.module_utils import _nftables as nft
from ansible_collections.nimbus.cloud.plugins.modules import security_group as sg_module
from ansible_collections.nimbus.cloud.plugins.modules.security_group import SecurityGroupModule

with open(os.path.join(os.path.dirname(__file__), "..", "module_utils", "data", "nft_bound.json")) as f:
    BOUND = json.load(f)
WEB = {"name": "web", "project": "demo", "rules": [{"protocol": "icmp", "remote_group": "web"}]}


@pytest.fixture
def host(monkeypatch, tmp_path, fake_commands):
    table, calls = fake_commands
    monkeypatch.setattr(sg_module, "RECORD_DIR", str(tmp_path / "sg"))
    monkeypatch.setattr(nft, "SAVE_FILE", str(tmp_path / "nftables.nft"))

    def tables(inet, bridge):
        for family, doc in (("inet", inet), ("bridge", bridge)):
            table[("nft", "-j", "list", "table", family, "nimbus")] = (0, json.dumps(doc), "") if doc else (1, "", "no")
            table[("nft", "list", "table", family, "nimbus")] = (0, "table %s nimbus {}\n" % family, "") if doc else (1, "", "no")

    table[("nft", "-f", "-")] = (0, "", "")
    tables(None, None)
    return tables, calls, tmp_path


def scripts(calls):
    return [c["data"] for c in calls if c["argv"][1:3] == ["-f", "-"]]


def test_create_in_check_mode_then_for_real(host, run_module):
    tables, calls, tmp = host
    result, failed = run_module(SecurityGroupModule, WEB, check_mode=True, diff=True)
    assert not failed and result["changed"] and scripts(calls) == [] and not (tmp / "sg").exists()
    result, failed = run_module(SecurityGroupModule, WEB, diff=True)
    assert not failed and result["changed"]
    script = scripts(calls)[0]
    assert "add table inet nimbus" in script and "add set inet nimbus sg-web-members { type ipv4_addr; }" in script
    assert 'add rule inet nimbus sg-web-in ip saddr @sg-web-members ip protocol 1 accept comment' in script
    assert result["diff"]["before"] == {} and result["security_group"]["project"] == "demo"
    assert json.loads((tmp / "sg" / "web.json").read_text())["name"] == "web"
    assert calls[-1]["argv"][1:] == ["list", "table", "bridge", "nimbus"]  # saved for the boot-time unit


def test_unchanged_when_tables_and_record_agree(host, run_module):
    tables, calls, tmp = host
    run_module(SecurityGroupModule, dict(WEB, ports=[{"security_groups": ["web"], "fixed_ips": [{"ip": "10.0.0.5"}]}]))
    tables(BOUND["inet"], BOUND["bridge"])
    before = len(scripts(calls))
    result, failed = run_module(SecurityGroupModule, dict(WEB, ports=[
        {"security_groups": ["web"], "fixed_ips": [{"ip": "10.0.0.5"}]}]))
    assert not failed and not result["changed"] and len(scripts(calls)) == before
    assert result["security_group"]["members"] == ["10.0.0.5"]


def test_a_group_in_use_cannot_be_deleted(host, run_module):
    tables, calls, tmp = host
    run_module(SecurityGroupModule, WEB)
    tables(BOUND["inet"], BOUND["bridge"])
    result, failed = run_module(SecurityGroupModule, {"name": "web", "state": "absent"})
    assert failed and "used by ports on this host (ids abcdef01...)" in result["msg"]
    assert (tmp / "sg" / "web.json").exists()


def test_bad_rule_changes_nothing(host, run_module):
    tables, calls, tmp = host
    result, failed = run_module(SecurityGroupModule, {"name": "web", "rules": [{"protocol": "tcp", "port_range_min": 99999}]})
    assert failed and "out of range" in result["msg"] and scripts(calls) == [] and not (tmp / "sg").exists()


def test_delete(host, run_module):
    tables, calls, tmp = host
    run_module(SecurityGroupModule, WEB)
    inet = {"nftables": [item for item in BOUND["inet"]["nftables"]
                         if "port-" not in json.dumps(item)]}
    tables(inet, None)
    result, failed = run_module(SecurityGroupModule, {"name": "web", "state": "absent"}, diff=True)
    assert not failed and result["changed"] and result["diff"]["after"] == {}
    # The host's last group with no bound port: the collection's tables go too.
    assert scripts(calls)[-1].splitlines() == ["delete table inet nimbus"]
    assert not (tmp / "sg" / "web.json").exists()
