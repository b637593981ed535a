import pytest

from ansible_collections.nimbus.cloud.plugins.module_utils._galera import (
    ZERO_UUID,
    AmbiguousClusterState,
    GaleraNode,
    apply_status,
    parse_grastate,
    parse_recovered_position,
    parse_status,
    plan_start,
)

U1 = "5ee99582-bb8d-11e2-b8e3-23de375c1d30"
U2 = "11111111-2222-3333-4444-555555555555"
HOSTS = ["db1", "db2", "db3"]


def down(seqno=-1, uuid=U1, safe=False):
    return {"running": False, "uuid": uuid, "seqno": seqno, "safe_to_bootstrap": safe}


def fresh():
    return {"running": False, "uuid": None, "seqno": -1}


def standalone():
    return {"running": True, "wsrep_on": False, "uuid": None}


def primary(size=3):
    return {"running": True, "wsrep_on": True, "uuid": U1, "seqno": 9, "cluster_status": "Primary",
            "cluster_size": size, "local_state": "Synced", "ready": True}


def non_primary():
    return {"running": True, "wsrep_on": True, "uuid": U1, "cluster_status": "non-Primary"}


GRASTATE = """# GALERA saved state
version: 2.1
uuid:    5ee99582-bb8d-11e2-b8e3-23de375c1d30
seqno:   -1
safe_to_bootstrap: 0
"""


def test_parse_grastate():
    assert parse_grastate(GRASTATE) == (U1, -1, False)
    assert parse_grastate(GRASTATE.replace("seqno:   -1", "seqno:   42").replace("bootstrap: 0", "bootstrap: 1")) == (
        U1, 42, True)
    assert parse_grastate("") == (None, -1, False)
    assert parse_grastate("seqno: garbage\n") == (None, -1, False)


def test_parse_recovered_position_takes_the_last_report():
    log = (
        "2026-11-22  3:00:00 0 [Note] InnoDB: Starting crash recovery.\n"
        "2026-11-22  3:00:01 0 [Note] WSREP: Recovered position: %s:7\n"
        "2026-11-22  3:00:02 0 [Note] WSREP: Recovered position: %s:12\n" % (U1, U1)
    )
    assert parse_recovered_position(log) == (U1, 12)
    assert parse_recovered_position("nothing here") is None


def test_status_of_a_cluster_member():
    status = parse_status(
        "wsrep_cluster_size\t3\nwsrep_cluster_status\tPrimary\nwsrep_local_state_comment\tSynced\n"
        "wsrep_ready\tON\nwsrep_cluster_state_uuid\t%s\nwsrep_last_committed\t17\nwsrep_on\tON\n" % U1
    )
    node = apply_status(GaleraNode(running=True), status)
    assert node.in_primary and node.cluster_size == 3 and node.ready
    assert (node.uuid, node.seqno, node.position_source) == (U1, 17, "status")


def test_status_of_a_standalone_server_says_nothing_about_a_cluster():
    status = parse_status("wsrep_cluster_status\tDisconnected\nwsrep_ready\tOFF\nwsrep_on\tOFF\n")
    node = apply_status(GaleraNode(running=True), status)
    assert not node.wsrep_on and node.cluster_status is None and not node.in_primary


def test_has_state():
    assert not GaleraNode().has_state
    assert not GaleraNode(uuid=ZERO_UUID).has_state
    assert GaleraNode(uuid=U1).has_state


def test_from_dict_ignores_unknown_keys():
    assert GaleraNode.from_dict({"running": True, "other": 1}).running


PLANS = [
    pytest.param(
        {"db1": fresh(), "db2": fresh(), "db3": fresh()},
        ("new", "db1", ["db2", "db3"]), id="fresh cluster: first member bootstraps"),
    pytest.param(
        {"db1": standalone(), "db2": standalone(), "db3": fresh()},
        ("new", "db1", ["db2", "db3"]), id="standalone servers after install count as fresh"),
    pytest.param(
        {"db1": primary(), "db2": primary(), "db3": primary()},
        ("running", None, []), id="healthy cluster: nothing to start"),
    pytest.param(
        {"db1": primary(2), "db2": primary(2), "db3": down(5)},
        ("running", None, ["db3"]), id="one member down: it joins the primary"),
    pytest.param(
        {"db1": down(10), "db2": down(12), "db3": down(11)},
        ("recover", "db2", ["db1", "db3"]), id="all down: highest seqno bootstraps"),
    pytest.param(
        {"db1": down(12), "db2": down(12, safe=True), "db3": down(11)},
        ("recover", "db2", ["db1", "db3"]), id="tie: prefer the member Galera marked safe"),
    pytest.param(
        {"db1": down(12), "db2": down(12), "db3": down(3)},
        ("recover", "db1", ["db2", "db3"]), id="tie without mark: same history, first in order"),
    pytest.param(
        {"db1": down(4, safe=True), "db2": down(9), "db3": down(9)},
        ("recover", "db2", ["db1", "db3"]), id="seqno outranks a stale safe mark"),
    pytest.param(
        {"db1": down(7), "db2": fresh(), "db3": down(8)},
        ("recover", "db3", ["db1", "db2"]), id="a member that never joined just joins"),
]


@pytest.mark.parametrize("states,expected", PLANS)
def test_plan_start(states, expected):
    plan = plan_start(states, HOSTS)
    assert (plan.action, plan.bootstrap, plan.join) == expected
    assert plan.reason


REFUSALS = [
    pytest.param({"db1": down(3), "db2": down(4)}, "no Galera state from db3", id="member missing"),
    pytest.param({"db1": down(3), "db2": down(4), "db3": None}, "no Galera state from db3", id="member unreachable"),
    pytest.param({"db1": down(3), "db2": down(4, uuid=U2), "db3": down(4)}, "different clusters",
                 id="two cluster histories"),
    pytest.param({"db1": down(3), "db2": down(-1), "db3": down(4)}, "last committed position of db2 is unknown",
                 id="crashed member not recovered"),
    pytest.param({"db1": non_primary(), "db2": down(4), "db3": down(4)}, "outside a primary component",
                 id="member stuck outside a primary component"),
    pytest.param({"db1": {"installed": False}, "db2": fresh(), "db3": fresh()}, "not installed on db1",
                 id="server missing"),
]


@pytest.mark.parametrize("states,message", REFUSALS)
def test_plan_start_refuses_to_guess(states, message):
    with pytest.raises(AmbiguousClusterState) as err:
        plan_start(states, HOSTS)
    assert message in err.value.msg


def test_plan_start_needs_members():
    with pytest.raises(AmbiguousClusterState):
        plan_start({}, [])
