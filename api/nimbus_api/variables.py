"""Job variables: which names a caller may set, and how their values reach Ansible as data.

Anything a launcher sends is data. It reaches ansible-playbook in a YAML file (``env/extravars`` of the
job's private directory, never argv) where every string, keys included and at any depth, carries
Ansible's ``!unsafe`` tag, so Jinja in it is printed, never evaluated. Only variables an admin saved on
the template, written without the tag, may template.

Names: a launch variable is an identifier the template's schema declares, never ``ansible_*`` (connection
settings: ``ansible_connection: local`` would turn a remote host into the API's own),
``nimbus_*`` (set by the service, such as ``nimbus_project``), one of Ansible's reserved or magic names,
or a Python keyword.
"""

from __future__ import annotations

import keyword
import re

import yaml

NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
RESERVED_PREFIXES = ("ansible_", "nimbus_")
# Ansible's magic variables and its play/task keywords (ansible.vars.reserved), written out so the API
# does not import Ansible's internals; a unit test keeps this list a superset of Ansible's own.
RESERVED = frozenset("""
action always any_errors_fatal args async async_val become become_exe become_flags become_method become_user
block changed_when check_mode collections connection cycler debugger delay delegate_facts delegate_to dict
diff environment fact_path failed_when force_handlers gather_facts gather_timeout handlers hosts
ignore_errors ignore_unreachable joiner lipsum local_action lookup loop loop_control loop_with
max_fail_percentage module_defaults name namespace no_log notify now omit order poll port post_tasks
pre_tasks q query range register remote_user rescue retries roles run_once serial strategy tags tasks
throttle timeout undef until vars vars_files vars_prompt when with_
hostvars groups group_names inventory_hostname inventory_hostname_short inventory_dir inventory_file
playbook_dir play_hosts role_name role_names role_path item environment password private_key_file
""".split())
# Deeper structures are refused: nothing a template needs, and each level is work for every reader.
MAX_DEPTH = 10


class VariableError(ValueError):
    """A variable name or value that may not reach a job; the message names the offending path."""


def name_problem(name) -> str | None:
    """Why ``name`` cannot be a job variable set by a caller, or None."""
    if not isinstance(name, str) or not NAME.match(name):
        return "is not an identifier (a letter, then letters, digits or _; at most 64)"
    if name.lower().startswith(RESERVED_PREFIXES):
        return "is reserved (ansible_* and nimbus_* are set by Ansible and by the service)"
    if name in RESERVED or keyword.iskeyword(name):
        return "is reserved by Ansible"
    return None


def check_names(names, where: str) -> None:
    for name in names:
        problem = name_problem(name)
        if problem:
            raise VariableError("%s: %r %s" % (where, name, problem))


def check_value(value, where: str, depth: int = 0) -> None:
    """Plain JSON data only, no deeper than MAX_DEPTH, with no NUL in any string."""
    if isinstance(value, (dict, list)) and depth >= MAX_DEPTH:
        raise VariableError("%s: nested deeper than %d levels" % (where, MAX_DEPTH))
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or "\x00" in key:
                raise VariableError("%s: keys must be strings without NUL" % where)
            check_value(item, "%s.%s" % (where, key), depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_value(item, "%s[%d]" % (where, index), depth + 1)
    elif isinstance(value, str):
        if "\x00" in value:
            raise VariableError("%s: NUL is not allowed in a string" % where)
    elif value is not None and not isinstance(value, (bool, int, float)):
        raise VariableError("%s: not JSON data" % where)


def declared(schema: dict) -> set[str]:
    """The top-level names a template's JSON Schema declares; a launch may set only these."""
    properties = schema.get("properties") if isinstance(schema, dict) else None
    return set(properties) if isinstance(properties, dict) else set()


class Unsafe(str):
    """A string written with Ansible's !unsafe tag."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(Unsafe, lambda dumper, data: dumper.represent_scalar("!unsafe", str(data), style='"'))


def _tag(value):
    if isinstance(value, dict):
        return {_tag(k): _tag(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_tag(v) for v in value]
    # An empty string holds no template, and ansible-core 2.19 reads `!unsafe ""` as None (null): a request's
    # "" (a floating IP led nowhere, a router's gateway cleared) would reach the runbook as "not given".
    if isinstance(value, str) and value:
        return Unsafe(value)
    return value


def extravars_yaml(trusted: dict, unsafe: dict) -> str:
    """One YAML document: ``trusted`` as is (the admin's template variables and the service's own),
    then ``unsafe`` with every string tagged, overriding names both give."""
    # Equal strings are equal dict keys: drop the overridden ones first, so each key keeps its own tag.
    document = {k: v for k, v in trusted.items() if k not in unsafe}
    document.update({Unsafe(k): _tag(v) for k, v in unsafe.items()})
    return yaml.dump(document, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=2 ** 31)
