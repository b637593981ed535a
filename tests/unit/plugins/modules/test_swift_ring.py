"""nimbus.cloud.swift_ring on real RingBuilder files in a temporary builder directory.

Create, modify and delete, each in check mode (predicted, nothing written) then for real then again with no
change; the gradual weight ramp against min_part_hours; every refused input leaves the builder as it was.
"""

import os

import pytest

from ansible_collections.nimbus.cloud.plugins.module_utils import _swift_ring as sr
from ansible_collections.nimbus.cloud.plugins.modules.swift_ring import SwiftRingModule

pytestmark = pytest.mark.skipif(sr.SWIFT_IMPORT_ERROR is not None,
                                reason="swift is not installed (tools/testbed installs it from requirements/test.txt)")

RESULT_KEYS = {"builder", "ring", "devices", "added", "removed", "reweighted", "remaining", "rebalanced",
               "parts_moved", "moved_share", "balance", "dispersion", "waiting_until", "backup", "ring_sha256",
               "changed"}


def device(zone, host=None, weight=100.0, **extra):
    return dict({"zone": zone, "ip": "10.0.30.%d" % (host or zone), "port": 6200, "device": "sdb",
                 "weight": weight}, **extra)


THREE = [device(1), device(2), device(3)]


@pytest.fixture
def swift_dir(tmp_path):
    return tmp_path / "swift"


def ring_args(swift_dir, devices=None, **kwargs):
    return dict({"name": "object", "builder_dir": str(swift_dir), "part_power": 6, "replicas": 3,
                 "min_part_hours": 0, "seed": 3, "devices": THREE if devices is None else devices}, **kwargs)


def snapshot(root):
    """Every file under root with its bytes and mtime: what 'nothing was written' compares."""
    out = {}
    for base, _dirs, names in os.walk(str(root)):
        for name in names:
            path = os.path.join(base, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, str(root))] = (f.read(), os.stat(path).st_mtime_ns)
    return out


def pass_min_part_hours(swift_dir, name="object"):
    """What the passing of min_part_hours does to a builder, without the wait."""
    path = str(swift_dir / (name + ".builder"))
    builder = sr.RingBuilder.load(path)
    builder.pretend_min_part_hours_passed()
    builder.save(path)


def test_create_modify_delete_in_check_mode_then_for_real_then_unchanged(swift_dir, run_module):
    # create
    args = ring_args(swift_dir)
    result, failed = run_module(SwiftRingModule, args, check_mode=True, diff=True)
    assert not failed and result["changed"] and set(result) == RESULT_KEYS | {"commands", "diff"}
    assert result["commands"] == ["create directory %s" % swift_dir, "write %s/object.builder" % swift_dir,
                                  "write %s/object.ring.gz" % swift_dir]
    assert result["diff"]["before"] == {} and len(result["diff"]["after"]["devices"]) == 3
    assert not swift_dir.exists()
    predicted = result
    result, failed = run_module(SwiftRingModule, args, diff=True)
    assert not failed and result["changed"] and set(result) == RESULT_KEYS | {"diff"}
    assert result["rebalanced"] and result["parts_moved"] == 64 * 3 and result["moved_share"] == 1.0
    assert [d["parts"] for d in result["devices"]] == [64, 64, 64] and result["balance"] == 0.0
    assert result["backup"] is None and result["remaining"] == [] and result["waiting_until"] is None
    assert result["ring_sha256"] == predicted["ring_sha256"] == sr.sha256_of(str(swift_dir / "object.ring.gz"))
    assert [d["ip"] for d in result["added"]] == ["10.0.30.1", "10.0.30.2", "10.0.30.3"]
    assert sorted(os.listdir(str(swift_dir))) == ["object.builder", "object.ring.gz"]
    for check in (True, False):
        before = snapshot(swift_dir)
        again, failed = run_module(SwiftRingModule, args, check_mode=check)
        assert not failed and not again["changed"] and not again["rebalanced"], again
        assert again["ring_sha256"] == result["ring_sha256"] and snapshot(swift_dir) == before

    # modify: a fourth device and a new weight
    modified = ring_args(swift_dir, [device(1), device(2), device(3, weight=50.0), device(4)])
    before = snapshot(swift_dir)
    result, failed = run_module(SwiftRingModule, modified, check_mode=True, diff=True)
    assert not failed and result["changed"] and result["rebalanced"] and snapshot(swift_dir) == before
    assert [d["ip"] for d in result["added"]] == ["10.0.30.4"]
    assert result["reweighted"] == [{"id": 2, "ip": "10.0.30.3", "port": 6200, "device": "sdb", "from": 100.0,
                                     "to": 50.0}]
    assert result["diff"]["before"]["devices"][2]["weight"] == 100.0
    assert result["diff"]["after"]["devices"][2]["weight"] == 50.0
    assert result["backup"].startswith(str(swift_dir / "backups") + "/") and result["backup"].endswith(
        ".object.builder")
    predicted = result
    result, failed = run_module(SwiftRingModule, modified)
    assert not failed and result["changed"] and 0 < result["parts_moved"] < 64 * 3
    assert result["ring_sha256"] == predicted["ring_sha256"] and result["parts_moved"] == predicted["parts_moved"]
    # the backup is the builder as it was before the change
    assert open(result["backup"], "rb").read() == before["object.builder"][0]
    assert len(os.listdir(str(swift_dir / "backups"))) == 1
    # with min_part_hours 0 Swift may still improve the balance in a following run; then nothing is left
    for _step in range(4):
        before = snapshot(swift_dir)
        again, failed = run_module(SwiftRingModule, modified, check_mode=True)
        assert not failed and snapshot(swift_dir) == before
        if not again["changed"]:
            break
        run_module(SwiftRingModule, modified)
    for check in (True, False):
        before = snapshot(swift_dir)
        again, failed = run_module(SwiftRingModule, modified, check_mode=check)
        assert not failed and not again["changed"] and snapshot(swift_dir) == before

    # delete
    absent = {"name": "object", "builder_dir": str(swift_dir), "state": "absent"}
    before = snapshot(swift_dir)
    result, failed = run_module(SwiftRingModule, absent, check_mode=True, diff=True)
    assert not failed and result["changed"] and set(result) == RESULT_KEYS | {"commands", "diff"}
    assert result["diff"]["after"] == {} and len(result["diff"]["before"]["devices"]) == 4
    assert snapshot(swift_dir) == before
    result, failed = run_module(SwiftRingModule, absent)
    assert not failed and result["changed"] and result["devices"] == [] and len(result["removed"]) == 4
    assert result["ring_sha256"] is None
    assert os.listdir(str(swift_dir)) == ["backups"]
    assert open(result["backup"], "rb").read() == before["object.builder"][0]
    for check in (True, False):
        before = snapshot(swift_dir)
        again, failed = run_module(SwiftRingModule, absent, check_mode=check)
        assert not failed and not again["changed"] and again["backup"] is None and snapshot(swift_dir) == before


def test_a_new_device_ramps_up_a_step_a_run_and_waits_for_min_part_hours(swift_dir, run_module):
    run_module(SwiftRingModule, ring_args(swift_dir, min_part_hours=1))
    pass_min_part_hours(swift_dir)
    args = ring_args(swift_dir, THREE + [device(4)], min_part_hours=1, weight_step=25)
    weights = []
    for expected in (25.0, 50.0, 75.0, 100.0):
        result, failed = run_module(SwiftRingModule, args)
        assert not failed and result["changed"] and result["rebalanced"], result
        new = [d for d in result["devices"] if d["ip"] == "10.0.30.4"][0]
        weights.append(new["weight"])
        left = [] if expected == 100.0 else [
            {"ip": "10.0.30.4", "port": 6200, "device": "sdb", "weight": expected, "target": 100.0}]
        assert result["remaining"] == left
        assert result["waiting_until"] is None and result["parts_moved"] > 0
        # within min_part_hours: no weight changes, no rebalance, the time it may go on
        before = snapshot(swift_dir)
        waiting, failed = run_module(SwiftRingModule, args)
        if expected < 100.0:
            assert not failed and not waiting["changed"] and not waiting["rebalanced"]
            assert waiting["waiting_until"] and waiting["remaining"] == left and waiting["reweighted"] == []
            assert snapshot(swift_dir) == before
        pass_min_part_hours(swift_dir)
    assert weights == [25.0, 50.0, 75.0, 100.0]


def test_a_device_left_out_is_drained_then_removed(swift_dir, run_module):
    four = THREE + [device(4)]
    run_module(SwiftRingModule, ring_args(swift_dir, four))
    args = ring_args(swift_dir, THREE, weight_step=60)
    result = run_module(SwiftRingModule, args)[0]
    assert result["reweighted"][0]["to"] == 40.0 and result["removed"] == []
    assert result["remaining"] == [{"ip": "10.0.30.4", "port": 6200, "device": "sdb", "weight": 40.0, "target": 0.0}]
    result = run_module(SwiftRingModule, args)[0]
    leaving = [d for d in result["devices"] if d["ip"] == "10.0.30.4"][0]
    assert leaving["weight"] == 0.0 and leaving["parts"] == 0 and result["removed"] == []
    result = run_module(SwiftRingModule, args)[0]
    assert [d["ip"] for d in result["removed"]] == ["10.0.30.4"] and len(result["devices"]) == 3
    assert result["remaining"] == [] and not run_module(SwiftRingModule, args)[0]["changed"]


def test_bad_input_is_refused_and_nothing_is_written(swift_dir, run_module):
    run_module(SwiftRingModule, ring_args(swift_dir))
    before = snapshot(swift_dir)
    for args, message in (
        (ring_args(swift_dir, THREE[:2]), "replicas (3) is more than the devices with a weight above 0 (2)"),
        (ring_args(swift_dir, THREE[:2] + [device(3, weight=0.0)]), "more than the devices with a weight above 0"),
        (ring_args(swift_dir, [device(1), device(1, host=5), device(2)]), "more than the zones (distinct region"),
        (ring_args(swift_dir, THREE, replicas=4), "replicas (4) is more than the devices"),
        (ring_args(swift_dir, THREE + [device(3)]), "device 10.0.30.3:6200/sdb is listed twice"),
        (ring_args(swift_dir, THREE + [device(4, host=3)]), "device 10.0.30.3:6200/sdb is listed in two zones"),
        (ring_args(swift_dir, [device(1), device(2), device(4, host=3)]),
         "is in region 1 zone 3 of ring object, not region 1 zone 4: Swift cannot move a device between zones"),
        (ring_args(swift_dir, [device(1), device(2), device(3, region=2)]), "not region 2 zone 3"),
        (ring_args(swift_dir, THREE[:2] + [device(3, weight=-1.0)]), "devices[2].weight must be a number of at least"),
        (ring_args(swift_dir, THREE, part_power=7), "has part_power 6, not 7: the partition power changes only"),
        (ring_args(swift_dir, THREE, name="object/../../etc"), "name must be account, container, object or object-N"),
        (ring_args(swift_dir, THREE[:2] + [device(3, ip="10.0.30.3.4")]), "devices[2].ip must be an IPv4 or IPv6"),
        (ring_args(swift_dir, THREE[:2] + [device(3, port=70000)]), "devices[2].port must be a port number"),
        (ring_args(swift_dir, THREE[:2] + [device(3, device="sdb/../x")]), "devices[2].device must be 1 to 64"),
        (ring_args(swift_dir, THREE, weight_step=0), "weight_step must be a number above 0"),
        (ring_args(swift_dir, THREE, min_part_hours=-1), "min_part_hours must be at least 0"),
        (ring_args(swift_dir, THREE, name="account", part_power=None), "give part_power and replicas to create it"),
        ({"name": "object", "builder_dir": str(swift_dir)}, "state is present but all of the following are missing"),
    ):
        for check in (True, False):
            result, failed = run_module(SwiftRingModule, args, check_mode=check)
            assert failed and message in result["msg"], (args, result)
            assert snapshot(swift_dir) == before, args


def test_missing_swift_names_the_library(swift_dir, run_module, monkeypatch):
    monkeypatch.setattr(sr, "SWIFT_IMPORT_ERROR", ImportError("No module named 'swift'"))
    result, failed = run_module(SwiftRingModule, ring_args(swift_dir))
    assert failed and "Failed to import the required Python library (swift)" in result["msg"]
    assert not swift_dir.exists()
