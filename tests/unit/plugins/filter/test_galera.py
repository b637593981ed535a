import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.nimbus.cloud.plugins.filter.galera import FilterModule

plan = FilterModule().filters()["galera_start_plan"]


def test_returns_a_plain_dict():
    result = plan({"a": {"running": False}, "b": {"running": False}, "c": {"running": False}}, ["a", "b", "c"])
    assert result == {"action": "new", "bootstrap": "a", "join": ["b", "c"], "reason": result["reason"]}


def test_ambiguity_becomes_a_filter_error():
    with pytest.raises(AnsibleFilterError, match="cannot decide how to start the Galera cluster: no Galera state"):
        plan({"a": {"running": False}}, ["a", "b"])
