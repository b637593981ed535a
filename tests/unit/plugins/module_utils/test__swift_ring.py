"""The swift_ring planner on Swift's real RingBuilder: validation tables, the drain, the one-replica check, and a
property test of random device changes run after run."""

import datetime
import os

import pytest

from ansible_collections.nimbus.cloud.plugins.module_utils import _swift_ring as sr
from ansible_collections.nimbus.cloud.plugins.module_utils._errors import NimbusError, ValidationError

try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ImportError:
    st = None

pytestmark = pytest.mark.skipif(sr.SWIFT_IMPORT_ERROR is not None,
                                reason="swift is not installed (tools/testbed installs it from requirements/test.txt)")
# Imported by module_utils, which keeps eventlet's import-time warning out of the output.
RingBuilder, RingData = sr.RingBuilder, sr.RingData
NOW = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.timezone.utc)


class Runner:
    """The command runner's gate, without a module."""

    def __init__(self, check_mode=False):
        self.check_mode = check_mode
        self.planned = []

    def apply(self, description, func, *args, **kwargs):
        if self.check_mode:
            self.planned.append(description)
            return None
        return func(*args, **kwargs)


def dev(zone, host=None, weight=100.0, device="sdb", region=1, port=6200, **extra):
    return sr.Device(ip="10.0.0.%d" % (host or zone), port=port, device=device, zone=zone, weight=float(weight),
                     region=region, **extra)


def desired(devices, **kwargs):
    kwargs.setdefault("part_power", 6)
    kwargs.setdefault("replicas", 3)
    kwargs.setdefault("min_part_hours", 0)
    kwargs.setdefault("seed", 7)
    return sr.Desired(devices=list(devices), **kwargs)


def run(files, want, check_mode=False):
    """One module run: load, plan, write; returns (outcome, result)."""
    out = sr.plan_present(files, want, sr.load_builder(files.builder), NOW.timestamp())
    backup = sr.commit(Runner(check_mode), out, NOW)
    return out, sr.result(out, backup)[0]


@pytest.fixture
def files(tmp_path):
    return sr.RingFiles(str(tmp_path), "object")


@pytest.mark.parametrize("name, ok", [
    ("account", True), ("container", True), ("object", True), ("object-1", True), ("object-12", True),
    ("object-0", False), ("objects", False), ("../object", False), ("object-1/../../x", False), ("", False),
    ("Object", False), ("object-", False),
])
def test_ring_names_are_swifts_own(name, ok):
    if ok:
        assert sr.ring_files("/etc/swift", name).builder == "/etc/swift/%s.builder" % name
    else:
        with pytest.raises(ValidationError, match="name must be account, container, object or object-N"):
            sr.ring_files("/etc/swift", name)


BASE = {"zone": 1, "ip": "10.0.0.1", "port": 6200, "device": "sdb", "weight": 100.0, "region": 1}


@pytest.mark.parametrize("change, message", [
    ({"ip": "10.0.0.300"}, "devices[0].ip must be an IPv4 or IPv6 address"),
    ({"ip": "node1"}, "devices[0].ip must be an IPv4 or IPv6 address"),
    ({"ip": "10.0.0.1; rm -rf /"}, "devices[0].ip must be an IPv4 or IPv6 address"),
    ({"port": 0}, "devices[0].port must be a port number"),
    ({"port": 65536}, "devices[0].port must be a port number"),
    ({"device": "../sdb"}, "devices[0].device must be 1 to 64"),
    ({"device": "sd b"}, "devices[0].device must be 1 to 64"),
    ({"device": "x" * 65}, "devices[0].device must be 1 to 64"),
    ({"weight": -1.0}, "devices[0].weight must be a number of at least 0"),
    ({"weight": float("nan")}, "devices[0].weight must be a number of at least 0"),
    ({"zone": -1}, "devices[0].zone must be an integer of at least 0"),
    ({"region": 0}, "devices[0].region must be an integer of at least 1"),
    ({"replication_ip": "x"}, "devices[0].replication_ip must be an IPv4 or IPv6 address"),
    ({"replication_port": 70000}, "devices[0].replication_port must be a port number"),
])
def test_bad_devices_are_refused(change, message):
    with pytest.raises(ValidationError) as e:
        sr.parse_devices([dict(BASE, **change)])
    assert message in e.value.msg


def test_devices_are_normalised_and_duplicates_refused():
    parsed = sr.parse_devices([dict(BASE, ip="FD00:0:0::1"), dict(BASE, ip="10.0.0.2", weight=0)])
    assert [d.key for d in parsed] == [("fd00::1", 6200, "sdb"), ("10.0.0.2", 6200, "sdb")]
    with pytest.raises(ValidationError, match=r"device 10.0.0.1:6200/sdb is listed twice"):
        sr.parse_devices([BASE, dict(BASE, weight=5.0)])
    with pytest.raises(ValidationError, match=r"is listed in two zones \(region 1 zone 1 and region 1 zone 2\)"):
        sr.parse_devices([BASE, dict(BASE, zone=2)])
    with pytest.raises(ValidationError, match=r"\[fd00::1\]:6200/sdb is listed twice"):
        sr.parse_devices([dict(BASE, ip="fd00::1"), dict(BASE, ip="fd00:0::1")])


@pytest.mark.parametrize("devices, replicas, message", [
    ([dev(1), dev(2)], 3, "replicas (3) is more than the devices with a weight above 0 (2)"),
    ([dev(1), dev(2), dev(3, weight=0)], 3, "replicas (3) is more than the devices with a weight above 0 (2)"),
    ([dev(1), dev(1, host=2), dev(2)], 3, "more than the zones (distinct region and zone pairs) that have a device"),
    ([dev(1), dev(2), dev(2, host=3), dev(3, weight=0)], 3, "more than the zones"),
    ([dev(1), dev(2), dev(3)], 3.5, "replicas (3.5) is more than the devices"),
    ([dev(1)], 0.5, "replicas must be at least 1"),
])
def test_replicas_need_devices_and_zones(devices, replicas, message):
    with pytest.raises(ValidationError) as e:
        sr.check_parameters(desired(devices, replicas=replicas), replicas)
    assert message in e.value.msg


def test_the_ring_file_is_what_ringdata_save_writes(files, tmp_path):
    out, res = run(files, desired([dev(1), dev(2), dev(3)]))
    assert out.rebalanced and out.parts_moved == 64 * 3
    data = open(files.ring, "rb").read()
    assert res["ring_sha256"] == sr.sha256_of(files.ring)
    # Swift's own writer, run where the module writes: the same bytes
    RingBuilder.load(files.builder).get_ring().save(files.ring)
    assert open(files.ring, "rb").read() == data
    assert sr.ring_matches(RingData.load(files.ring), RingBuilder.load(files.builder))


def test_nothing_to_do_writes_nothing(files):
    run(files, desired([dev(1), dev(2), dev(3)]))
    stat = os.stat(files.builder)
    out, res = run(files, desired([dev(1), dev(2), dev(3)]))
    assert not out.changed and not out.rebalanced and res["backup"] is None and res["remaining"] == []
    assert os.stat(files.builder).st_mtime_ns == stat.st_mtime_ns
    assert not os.path.exists(files.backups)


def test_a_ring_file_behind_its_builder_is_written_again(files):
    run(files, desired([dev(1), dev(2), dev(3)]))
    builder_bytes = open(files.builder, "rb").read()
    ring = open(files.ring, "rb").read()
    os.unlink(files.ring)
    out, res = run(files, desired([dev(1), dev(2), dev(3)]))
    assert out.ring_data == ring and not out.write_builder and res["backup"] is None
    assert open(files.ring, "rb").read() == ring and open(files.builder, "rb").read() == builder_bytes


def test_replication_address_and_meta_change_in_place(files):
    run(files, desired([dev(1), dev(2), dev(3)]))
    changed = desired([dev(1, replication_ip="192.168.0.1", replication_port=6300, meta="new disk"), dev(2), dev(3)])
    out, res = run(files, changed)
    assert out.changed and not out.rebalanced and res["parts_moved"] == 0
    first = res["devices"][0]
    assert (first["replication_ip"], first["replication_port"], first["meta"]) == ("192.168.0.1", 6300, "new disk")
    assert RingData.load(files.ring).devs[0]["replication_ip"] == "192.168.0.1"
    assert not run(files, changed)[0].changed


def test_a_zone_change_and_a_part_power_change_are_refused(files):
    run(files, desired([dev(1), dev(2), dev(3)]))
    with pytest.raises(ValidationError, match="is in region 1 zone 1 of ring object, not region 1 zone 4: Swift "
                                              "cannot move a device between zones in place; remove it"):
        sr.plan_present(files, desired([dev(4, host=1), dev(2), dev(3)]), sr.load_builder(files.builder), 0)
    with pytest.raises(ValidationError, match="has part_power 6, not 7: the partition power changes only"):
        sr.plan_present(files, desired([dev(1), dev(2), dev(3)], part_power=7), sr.load_builder(files.builder), 0)
    with pytest.raises(ValidationError, match="give part_power and replicas to create it"):
        sr.plan_present(sr.RingFiles(files.directory, "account"), desired([dev(1)], part_power=None), None, 0)


def test_a_ring_file_without_its_builder_is_not_replaced(files):
    run(files, desired([dev(1), dev(2), dev(3)]))
    os.unlink(files.builder)
    with pytest.raises(ValidationError, match="object.ring.gz exists without its builder .*object.builder: put the "
                                              "builder back"):
        sr.plan_present(files, desired([dev(1), dev(2), dev(3)]), None, 0)


def test_a_drained_device_is_removed_only_once_empty(files):
    three = [dev(1), dev(2), dev(3)]
    run(files, desired(three + [dev(4)]))
    assert RingBuilder.load(files.builder).devs[3]["parts"] > 0
    # dropped from the list: weight goes down by the step, its parts move off, then it goes
    seen = []
    for _step in range(3):
        out, res = run(files, desired(three, weight_step=40))
        leaving = [d for d in res["devices"] if d["id"] == 3][0]
        seen.append((leaving["weight"], out.removed))
        assert res["remaining"] == [{"ip": "10.0.0.4", "port": 6200, "device": "sdb", "weight": leaving["weight"],
                                     "target": 0.0}]
    assert seen == [(60.0, []), (20.0, []), (0.0, [])]
    # at weight 0 one rebalance emptied it (it held at most one replica of any partition): the next run removes it
    assert leaving["parts"] == 0
    out, res = run(files, desired(three, weight_step=40))
    assert [(d["id"], d["zone"]) for d in out.removed] == [(3, 4)] and [d["id"] for d in res["devices"]] == [0, 1, 2]
    ring = RingData.load(files.ring)
    assert len([d for d in ring.devs if d]) == 3 and all(3 not in a for a in ring._replica2part2dev_id)
    out, res = run(files, desired(three, weight_step=40))
    assert not out.changed and res["remaining"] == []


def test_a_device_with_partitions_is_never_removed_even_without_a_step(files):
    run(files, desired([dev(z) for z in (1, 2, 3, 4)]))
    out, res = run(files, desired([dev(z) for z in (1, 2, 3)]))
    assert out.removed == [] and out.reweighted[0]["to"] == 0.0 and out.rebalanced
    # with min_part_hours 0 one rebalance moves one replica of each partition: device 3 is empty at once unless it
    # held two replicas of a partition, which it cannot
    assert [d["parts"] for d in res["devices"] if d["id"] == 3] == [0]
    out, res = run(files, desired([dev(z) for z in (1, 2, 3)]))
    assert [d["device"] for d in out.removed] == ["sdb"] and len(res["devices"]) == 3


def test_removing_devices_that_hold_two_replicas_of_a_partition_is_refused(files):
    run(files, desired([dev(z) for z in (1, 2, 3, 4, 5)]))
    builder = RingBuilder.load(files.builder)
    # What swift-ring-builder remove does: both devices holding replicas 0 and 1 of partition 0 are removed.
    holders = [builder._replica2part2dev[r][0] for r in (0, 1)]
    for dev_id in holders:
        builder.remove_dev(dev_id)
    builder.save(files.builder)
    before = open(files.builder, "rb").read()
    listed = [dev(z) for z in (1, 2, 3, 4, 5) if z - 1 not in holders]
    with pytest.raises(NimbusError, match=r"this rebalance would move 2 replicas of partition 0 at once") as e:
        sr.plan_present(files, desired(listed), sr.load_builder(files.builder), 0)
    assert 0 in e.value.details["partitions"]
    assert open(files.builder, "rb").read() == before and not os.path.exists(files.backups)


def test_replicas_moved_counts_only_replicas_both_have():
    from array import array

    before = [array("H", [0, 1, 2]), array("H", [1, 2, 0])]
    after = [array("H", [0, 3, 3]), array("H", [1, 2, 3]), array("H", [2, 0, 1])]
    assert sr.replicas_moved(before, after) == {1: 1, 2: 2}


def test_waiting_for_min_part_hours_changes_no_weight(files):
    three = [dev(1), dev(2), dev(3)]
    run(files, desired(three, min_part_hours=1))
    builder = open(files.builder, "rb").read()
    out, res = run(files, desired(three + [dev(4)], min_part_hours=1, weight_step=25))
    assert not out.changed and res["added"] == [] and res["rebalanced"] is False
    assert res["waiting_until"] is not None and res["waiting_until"].endswith("Z")
    assert res["remaining"] == []  # the new device is not in the ring yet
    assert open(files.builder, "rb").read() == builder
    # nothing pending: no waiting_until either
    assert run(files, desired(three, min_part_hours=1))[1]["waiting_until"] is None


def test_rebalance_false_changes_the_builder_only(files):
    three = [dev(1), dev(2), dev(3)]
    run(files, desired(three))
    ring = open(files.ring, "rb").read()
    out, res = run(files, desired([dev(1), dev(2), dev(3, weight=50)], rebalance=False))
    assert out.write_builder and not out.rebalanced and out.ring_data is None and res["reweighted"][0]["to"] == 50.0
    assert open(files.ring, "rb").read() == ring and RingBuilder.load(files.builder).devs_changed
    # the next run that may rebalance does: the builder's own pending change counts
    out, res = run(files, desired([dev(1), dev(2), dev(3, weight=50)]))
    assert out.rebalanced and out.ring_data is not None


def test_replicas_change_through_set_replicas(files):
    four = [dev(z) for z in (1, 2, 3, 4)]
    run(files, desired(four))
    out, res = run(files, desired(four, replicas=4))
    assert out.rebalanced and RingData.load(files.ring).replica_count == 4
    assert sum(d["parts"] for d in res["devices"]) == 64 * 4
    assert not run(files, desired(four, replicas=4))[0].changed


def test_check_mode_predicts_and_writes_nothing(files):
    out, res = run(files, desired([dev(1), dev(2), dev(3)]), check_mode=True)
    assert out.changed and res["ring_sha256"] and os.listdir(files.directory) == []
    real_out, real = run(files, desired([dev(1), dev(2), dev(3)]))
    # the same seed, the same placement: check mode predicted the ring's very bytes
    assert real["ring_sha256"] == res["ring_sha256"] and real["parts_moved"] == res["parts_moved"]


def test_info_reads_builders_and_lone_ring_files(files, tmp_path):
    run(files, desired([dev(1), dev(2), dev(3)]))
    node = tmp_path / "node"
    node.mkdir()
    (node / "object.ring.gz").write_bytes(open(files.ring, "rb").read())
    (node / "container.builder.bak").write_text("")
    (node / "junk.ring.gz").write_text("")
    assert sr.ring_names(str(node)) == ["object"] and sr.ring_names(str(tmp_path / "missing")) == []
    lone = sr.describe(sr.RingFiles(str(node), "object"))
    full = sr.describe(files)
    assert (lone["source"], lone["has_builder"], lone["ring_matches_builder"]) == ("ring", False, None)
    assert (full["source"], full["has_builder"], full["ring_matches_builder"]) == ("builder", True, True)
    assert lone["ring_sha256"] == full["ring_sha256"] and lone["part_power"] == 6 and lone["replicas"] == 3
    assert [(d["id"], d["parts"]) for d in lone["devices"]] == [(d["id"], d["parts"]) for d in full["devices"]]
    # a builder changed after its ring file was written
    builder = RingBuilder.load(files.builder)
    builder.set_dev_weight(0, 10)
    builder.rebalance(seed=1)
    builder.save(files.builder)
    assert sr.describe(files)["ring_matches_builder"] is False


# Property test: random device changes, run after run, as the module does them.

def _moved_between(ring_before, ring_after):
    """Replicas moved per partition, from the two ring files alone (not the module's own count)."""
    worst = 0
    old, new = ring_before._replica2part2dev_id, ring_after._replica2part2dev_id
    for part in range(len(old[0])):
        moved = sum(1 for r in range(min(len(old), len(new))) if old[r][part] != new[r][part])
        worst = max(worst, moved)
    return worst


if st is not None:
    HOSTS = [(zone, host) for zone in (1, 2, 3, 4) for host in (1, 2, 3)]

    @st.composite
    def scenarios(draw):
        """A start ring, then up to six desired states, each reached for one to three runs before the next."""
        zones = draw(st.sampled_from([3, 4]))
        pool = [(z, h) for z, h in HOSTS if z <= zones]
        start = {k: 100.0 for k in pool if k[1] <= 2}
        states = []
        current = dict(start)
        for _step in range(draw(st.integers(1, 6))):
            current = dict(current)
            for _change in range(draw(st.integers(1, 3))):
                action = draw(st.sampled_from(["add", "remove", "weight"]))
                key = draw(st.sampled_from(pool))
                if action == "add":
                    current[key] = draw(st.sampled_from([50.0, 100.0, 200.0]))
                elif action == "remove":
                    current.pop(key, None)
                else:
                    current[key] = draw(st.sampled_from([0.0, 30.0, 100.0, 300.0]))
            # The module refuses fewer than three zones with weight (tested above): keep to valid input.
            if len({z for (z, h), w in current.items() if w > 0}) < 3:
                current = states[-1][0] if states else start
                continue
            states.append((current, draw(st.integers(1, 3))))
        return draw(st.sampled_from([6, 7])), start, states, draw(st.sampled_from([30.0, 60.0, 150.0]))

    def _devices(state):
        return [dev(z, host=10 * z + h, weight=w) for (z, h), w in sorted(state.items())]

    @settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(scenarios())
    def test_no_rebalance_moves_two_replicas_and_runs_converge(tmp_path_factory, scenario):
        part_power, start, states, step = scenario
        files = sr.RingFiles(str(tmp_path_factory.mktemp("ring")), "object")
        # min_part_hours 0: Swift's part-moved bitmap alone must keep each rebalance to one replica a partition.
        run(files, desired(_devices(start), part_power=part_power, weight_step=step))
        for state, runs in states:
            for _step in range(runs):
                before = RingData.load(files.ring)
                run(files, desired(_devices(state), part_power=part_power, weight_step=step))
                assert _moved_between(before, RingData.load(files.ring)) <= 1
        final = desired(_devices(states[-1][0] if states else start), part_power=part_power, weight_step=step)
        # the ramp (300 / step runs at most), the drain and the removal, and balance settling
        bound = int(300 / step) + 8
        for _step in range(bound):
            before = RingData.load(files.ring)
            out, res = run(files, final)
            assert _moved_between(before, RingData.load(files.ring)) <= 1
            if not out.changed:
                break
        else:
            pytest.fail("no convergence in %d runs: %r" % (bound, res["remaining"]))
        assert res["remaining"] == []
        assert {(d["ip"], d["weight"]) for d in res["devices"]} == {(d.ip, d.weight) for d in final.devices}
        assert not run(files, final)[0].changed
else:
    @pytest.mark.skip(reason="hypothesis is not installed")
    def test_no_rebalance_moves_two_replicas_and_runs_converge():
        pass
