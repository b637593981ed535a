"""nimbus.cloud.swift_ring_info on a builder host's directory and on a storage node's (ring files only)."""

import shutil

import pytest

from ansible_collections.nimbus.cloud.plugins.module_utils import _swift_ring as sr
from ansible_collections.nimbus.cloud.plugins.modules.swift_ring import SwiftRingModule
from ansible_collections.nimbus.cloud.plugins.modules.swift_ring_info import SwiftRingInfoModule

pytestmark = pytest.mark.skipif(sr.SWIFT_IMPORT_ERROR is not None,
                                reason="swift is not installed (tools/testbed installs it from requirements/test.txt)")

RING_KEYS = {"name", "has_builder", "has_ring", "builder", "ring", "source", "part_power", "replicas",
             "min_part_hours", "min_part_seconds_left", "balance", "dispersion", "devices", "ring_sha256",
             "ring_matches_builder"}


def make_ring(run_module, directory, name):
    devices = [{"zone": z, "ip": "10.0.30.%d" % z, "port": 6200, "device": "sdb", "weight": 100.0}
               for z in (1, 2, 3)]
    result, failed = run_module(SwiftRingModule, {"name": name, "builder_dir": str(directory), "part_power": 6,
                                                  "replicas": 3, "min_part_hours": 1, "devices": devices})
    assert not failed, result
    return result


def test_nothing_found_is_an_empty_list(tmp_path, run_module):
    for directory in (tmp_path, tmp_path / "missing"):
        result, failed = run_module(SwiftRingInfoModule, {"builder_dir": str(directory)})
        assert not failed and not result["changed"] and result["rings"] == []
        assert "commands" not in run_module(SwiftRingInfoModule, {"builder_dir": str(directory)},
                                            check_mode=True)[0]


def test_builders_and_lone_ring_files(tmp_path, run_module):
    builders = tmp_path / "builder-host"
    made = {name: make_ring(run_module, builders, name) for name in ("object", "account")}
    result, failed = run_module(SwiftRingInfoModule, {"builder_dir": str(builders)})
    assert not failed and [r["name"] for r in result["rings"]] == ["account", "object"]
    ring = result["rings"][1]
    assert set(ring) == RING_KEYS
    assert (ring["source"], ring["has_builder"], ring["has_ring"], ring["ring_matches_builder"]) == (
        "builder", True, True, True)
    assert (ring["part_power"], ring["replicas"], ring["min_part_hours"]) == (6, 3, 1)
    assert 0 < ring["min_part_seconds_left"] <= 3600 and ring["balance"] == 0.0 and ring["dispersion"] == 0.0
    assert ring["devices"] == made["object"]["devices"] and ring["ring_sha256"] == made["object"]["ring_sha256"]
    # a storage node: the ring files alone
    node = tmp_path / "node"
    node.mkdir()
    shutil.copy(str(builders / "object.ring.gz"), str(node / "object.ring.gz"))
    result, failed = run_module(SwiftRingInfoModule, {"builder_dir": str(node), "name": "object"})
    assert not failed and len(result["rings"]) == 1
    lone = result["rings"][0]
    assert set(lone) == RING_KEYS
    assert (lone["source"], lone["has_builder"], lone["builder"], lone["ring_matches_builder"]) == (
        "ring", False, None, None)
    assert (lone["part_power"], lone["replicas"], lone["min_part_hours"], lone["balance"]) == (6, 3, None, None)
    assert lone["ring_sha256"] == ring["ring_sha256"]
    assert [(d["ip"], d["weight"], d["parts"]) for d in lone["devices"]] == [
        (d["ip"], d["weight"], d["parts"]) for d in ring["devices"]]
    assert run_module(SwiftRingInfoModule, {"builder_dir": str(node), "name": "container"})[0]["rings"] == []


def test_a_ring_file_behind_its_builder_is_reported(tmp_path, run_module):
    make_ring(run_module, tmp_path, "container")
    path = str(tmp_path / "container.builder")
    builder = sr.RingBuilder.load(path)
    builder.set_dev_weight(0, 50.0)
    builder.pretend_min_part_hours_passed()
    builder.rebalance(seed=1)
    builder.save(path)
    ring = run_module(SwiftRingInfoModule, {"builder_dir": str(tmp_path)})[0]["rings"][0]
    assert ring["ring_matches_builder"] is False and ring["devices"][0]["weight"] == 50.0


def test_a_bad_name_is_refused(tmp_path, run_module):
    result, failed = run_module(SwiftRingInfoModule, {"builder_dir": str(tmp_path), "name": "../object"})
    assert failed and "name must be account, container, object or object-N" in result["msg"]
