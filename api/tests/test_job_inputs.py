"""The pure rules of what a job gets: launch variable names and values, the unsafe extra-vars file,
credential type checks, and masking. The adversarial tests prove the same end to end."""

from __future__ import annotations

import ast
import json

import pytest
import yaml
from ansible.parsing.yaml.loader import AnsibleLoader
from ansible.vars.reserved import get_reserved_names

from nimbus_api import credentials, variables
from nimbus_api.masking import MASK, Masker


def test_reserved_names_cover_ansibles_own():
    missing = sorted(n for n in get_reserved_names() if variables.name_problem(n) is None)
    assert missing == []


@pytest.mark.parametrize("name, ok", [
    ("greeting", True), ("count_2", True), ("ansible_host", False), ("Ansible_Host", False),
    ("nimbus_project", False), ("hostvars", False), ("lambda", False), ("_x", False), ("x-y", False),
    ("x" * 64, True), ("x" * 65, False), ("é", False), (1, False),
])
def test_launch_variable_names(name, ok):
    assert (variables.name_problem(name) is None) is ok


@pytest.mark.parametrize("value, ok", [
    ({"a": [1, 2.5, None, True, "s"]}, True),
    ({"a": "nul\x00"}, False),
    ({"a\x00": 1}, False),
    (json.loads("[" * 11 + "]" * 11), False),
    (json.loads("[" * 10 + "]" * 10), True),
    ({"a": object()}, False),
])
def test_launch_variable_values(value, ok):
    if ok:
        variables.check_value(value, "extra_vars")
    else:
        with pytest.raises(variables.VariableError):
            variables.check_value(value, "extra_vars")


def test_the_extravars_file_marks_every_launch_string_unsafe_and_keeps_trusted_ones():
    attack = "{{ lookup('pipe', 'id') }}"
    text = variables.extravars_yaml({"nimbus_project": "p1", "admin": "{{ 1 + 1 }}", "x": "trusted"},
                                    {"x": attack, "nested": {attack: [attack, {"k": attack}], "n": 1}})
    loaded = AnsibleLoader(text).get_single_data()
    assert yaml.safe_load(text.replace("!unsafe ", "")) == {
        "nimbus_project": "p1", "admin": "{{ 1 + 1 }}", "x": attack,
        "nested": {attack: [attack, {"k": attack}], "n": 1}}
    # Keys and values: x and its value, nested, the attack key, the list's string, k and its value, n.
    assert text.count("!unsafe") == 8
    assert loaded["nimbus_project"] == "p1"
    assert "!unsafe" not in [line for line in text.splitlines() if line.startswith("nimbus_project")][0]


def test_a_playbook_reads_the_extravars_file_as_data_and_an_empty_string_as_one(tmp_path):
    """What ansible-playbook makes of the file: the attack arrives as text, "" as "" (ansible-core 2.19 reads an
    `!unsafe ""` as null, which a runbook takes for a value not given)."""
    import os
    import subprocess
    import sys

    attack = "{{ lookup('pipe', 'touch %s') }}" % (tmp_path / "pwned")
    (tmp_path / "vars.yml").write_text(variables.extravars_yaml(
        {"nimbus_project": "p1"}, {"empty": "", "attack": attack, "nested": {"e": "", "list": ["", attack]}}))
    (tmp_path / "play.yml").write_text("""
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Every value as the request gave it
      ansible.builtin.assert:
        that:
          - empty is string and empty == '' and (empty | default('x')) == ''
          - nested.e is string and nested.e == '' and nested.list[0] == ''
          - (attack ~ '') is search('lookup')
          - nested.list[1] == attack
""")
    env = dict(os.environ, ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-e",
                           "@" + str(tmp_path / "vars.yml"), "-e", "ansible_python_interpreter=" + sys.executable,
                           str(tmp_path / "play.yml")], capture_output=True, text=True, env=env, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("name", ["OS_PASSWORD", "AWS_SECRET_ACCESS_KEY", "DEPLOY_TOKEN", "X1"])
def test_ordinary_environment_names_are_allowed(name):
    assert credentials.env_name_problem(name) is None


@pytest.mark.parametrize("name", ["PYTHONWARNINGS", "BROWSER", "ANSIBLE_LOG_PATH", "LD_PRELOAD", "PATH", "HOME",
                                  "no_proxy", "MY_PROXY", "A__B", "A_", "LC_ALL", "TZ"])
def test_dangerous_environment_names_are_refused(name):
    assert credentials.env_name_problem(name)


def test_credential_type_checks():
    fields, injectors = credentials.check_type([{"id": "token"}], {"env": {"DEPLOY_TOKEN": "token"}})
    assert fields[0]["secret"] and fields[0]["required"] and injectors["extra_vars"] == {}
    for bad in ([], [{"id": "a"}, {"id": "a"}], [{"id": "a", "template": "{{ x }}"}]):
        with pytest.raises(credentials.CredentialError):
            credentials.check_type(bad, {"env": {"A": "a"}})
    with pytest.raises(credentials.CredentialError):
        credentials.check_type([{"id": "a"}], {"env": {"A": "missing"}})
    with pytest.raises(credentials.CredentialError):
        credentials.check_type([{"id": "a"}], {})


def test_injections_recheck_names():
    env, extra, secrets = credentials.injections(
        json.dumps([{"id": "a"}, {"id": "b"}]),
        json.dumps({"env": {"PATH": "a", "GOOD": "a"}, "extra_vars": {"ansible_connection": "b", "ok_var": "b"}}),
        {"a": "1", "b": "2"})
    assert env == {"GOOD": "1"} and extra == {"ok_var": "2"} and sorted(secrets) == ["1", "2"]


SECRETS = ['a"b\\c-secret', "ünï-✓-密码-secret", "x'y\"z-secret", "l1-aaaa\nl2-bbbb", "tab\there {{ x }}"]

# How Ansible and ansible-runner print a value, each with the way to read it back.
ENCODINGS = {
    "json": (json.dumps, json.loads),
    "json, non-ASCII kept": (lambda d: json.dumps(d, ensure_ascii=False), json.loads),
    "json in json": (lambda d: json.dumps(json.dumps(d)), lambda t: json.loads(json.loads(t))),
    "python repr": (repr, ast.literal_eval),
    "python ascii": (ascii, ast.literal_eval),
    "yaml double-quoted": (lambda d: yaml.safe_dump(d, default_style='"', width=2 ** 31), yaml.safe_load),
    "yaml double-quoted, ASCII": (lambda d: yaml.safe_dump(d, default_style='"', allow_unicode=False,
                                                           width=2 ** 31), yaml.safe_load),
}


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("secret", SECRETS)
def test_masked_output_reads_back_with_the_mask_where_the_secret_was(secret, encoding):
    # The encoder, not the masker, decides what the secret looks like in the output; decoding the masked
    # output shows whether the whole secret, and nothing else, became the mask.
    dump, load = ENCODINGS[encoding]
    printed = dump({"msg": "before %s after" % secret, "other": "kept"})
    masked = Masker([secret]).text(printed)
    assert load(masked) == {"msg": "before %s after" % MASK, "other": "kept"}, masked


@pytest.mark.parametrize("secret", SECRETS)
def test_masking_structured_data_masks_keys_and_values_at_any_depth(secret):
    masker = Masker([secret])
    assert masker.data({"k": [secret, {secret: 1}], "n": 2}) == {"k": [MASK, {MASK: 1}], "n": 2}


def test_masking_lines_of_a_multi_line_secret_and_nothing_when_empty():
    masker = Masker(["-----BEGIN-----\nAAAABBBBCCCC\nxy\n-----END-----"])
    assert masker.text("AAAABBBBCCCC") == MASK and masker.text("xy") == "xy"
    assert not Masker(["", None]) and Masker([]).text("anything") == "anything"
