import json
import types

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.nimbus.cloud.plugins.filter.galera import FilterModule

plan = FilterModule().filters()["galera_start_plan"]
U1 = "5ee99582-bb8d-11e2-b8e3-23de375c1d30"


def down(seqno):
    return {"running": False, "uuid": U1, "seqno": seqno, "safe_to_bootstrap": False}


@pytest.mark.parametrize("states, expected", [
    pytest.param(
        {"a": {"running": False}, "b": {"running": False}, "c": {"running": False}},
        {"action": "new", "bootstrap": "a", "join": ["b", "c"],
         "reason": "no member holds cluster state; a starts a new cluster"},
        id="new cluster"),
    pytest.param(
        {"a": down(10), "b": down(12), "c": down(11)},
        {"action": "recover", "bootstrap": "b", "join": ["a", "c"],
         "reason": "b holds the most recent committed state (seqno a=10, b=12, c=11)"},
        id="recover from the highest seqno"),
    pytest.param(
        {"a": {"running": True, "wsrep_on": True, "uuid": U1, "cluster_status": "Primary"},
         "b": down(3), "c": down(4)},
        {"action": "running", "bootstrap": None, "join": ["b", "c"],
         "reason": "a primary component is running on a"},
        id="join the running primary"),
])
def test_returns_the_plan_as_plain_data(states, expected):
    # Jinja hands the filter read-only mappings and lazy sequences: it must take them and give back plain data.
    result = plan(types.MappingProxyType(states), (h for h in ["a", "b", "c"]))
    assert isinstance(result, dict) and isinstance(result["join"], list)
    assert json.loads(json.dumps(result)) == expected == result


def test_ambiguity_becomes_a_filter_error():
    with pytest.raises(AnsibleFilterError, match="cannot decide how to start the Galera cluster: no Galera state"):
        plan({"a": {"running": False}}, ["a", "b"])
