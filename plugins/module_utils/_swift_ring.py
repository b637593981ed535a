# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Swift rings on the ring-builder host, placed by Swift's own RingBuilder.

A ring is ``<builder_dir>/<name>.builder`` (Swift's pickled RingBuilder) and
``<name>.ring.gz`` (the RingData the proxies and storage nodes load). Every
placement decision is Swift's: this file only decides *which* RingBuilder
calls to make in a run (add_dev, set_dev_weight, remove_dev, set_replicas,
change_min_part_hours, rebalance) and refuses runs that would be unsafe.

One replica per partition per rebalance
---------------------------------------
Read in swift/common/ring/builder.py (2.30): every gather that moves parts for
balance or dispersion first asks ``_can_part_move(part)``, which is false for
a part moved less than min_part_hours ago *and* for a part already moved in
this rebalance (the part-moved bitmap), so with min_part_hours 0 too a
rebalance moves at most one replica of a partition. The exceptions are
replica-count changes (a new replica is placed, a dropped one vanishes: no
replica moves) and devices marked with ``remove_dev``: their parts are
gathered regardless of min_part_hours and of the bitmap, so removing devices
that hold two replicas of a partition moves both at once.

Hence a device leaves the ring only by draining: its weight goes to 0 (by
``weight_step`` per run), rebalances move its parts off one replica per
partition at a time, and ``remove_dev`` is called only once it holds no
partition, when removing it moves nothing. The result of every rebalance is
still compared with the assignment before it, and a rebalance that moved two
replicas of any partition (a builder changed by hand, a Swift that behaves
otherwise) is refused with nothing written.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import fcntl
import gzip
import hashlib
import io
import ipaddress
import json
import math
import os
import re
import shutil
import tempfile
import warnings
from array import array
from dataclasses import dataclass, field
from typing import List, Optional

from ansible_collections.nimbus.cloud.plugins.module_utils import _files
from ansible_collections.nimbus.cloud.plugins.module_utils._errors import NimbusError, ValidationError

try:
    with warnings.catch_warnings():
        # swift imports eventlet, which warns on import that it is deprecated; a module's output must stay JSON.
        warnings.simplefilter("ignore")
        from swift.common import exceptions as swift_exceptions
        from swift.common.ring import RingBuilder, RingData
        from swift.common.ring.builder import MAX_BALANCE
except ImportError as e:
    RingBuilder = RingData = swift_exceptions = None
    MAX_BALANCE = 999.99
    SWIFT_IMPORT_ERROR = e
else:
    SWIFT_IMPORT_ERROR = None

# Ring names become file names: only Swift's own (account, container, object and a storage policy's object-N).
RING_NAME = re.compile(r"^(account|container|object(-[1-9][0-9]{0,4})?)$")
DEVICE_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# RingData.save's default gzip mtime: the same ring data makes the same bytes, so sha256 compares rings.
RING_MTIME = 1300507380.0
MAX_PART_POWER = 32


@dataclass(frozen=True)
class RingFiles:
    directory: str
    name: str

    @property
    def builder(self):
        return os.path.join(self.directory, self.name + ".builder")

    @property
    def ring(self):
        return os.path.join(self.directory, self.name + ".ring.gz")

    @property
    def backups(self):
        return os.path.join(self.directory, "backups")

    def backup_path(self, now, suffix=".builder"):
        return os.path.join(self.backups, "%s.%s%s" % (now.strftime("%Y%m%dT%H%M%S.%fZ"), self.name, suffix))


def ring_files(directory, name):
    if not isinstance(name, str) or not RING_NAME.match(name):
        raise ValidationError("name must be account, container, object or object-N (a storage policy's index), "
                              "not %r" % (name,))
    return RingFiles(directory, name)


@dataclass(frozen=True)
class Device:
    ip: str
    port: int
    device: str
    zone: int
    weight: float
    region: int = 1
    replication_ip: Optional[str] = None
    replication_port: Optional[int] = None
    meta: Optional[str] = None

    @property
    def key(self):
        return (self.ip, self.port, self.device)


@dataclass
class Desired:
    devices: List[Device]
    part_power: Optional[int] = None
    replicas: Optional[float] = None
    # None keeps an existing ring's value; a new ring gets 1
    min_part_hours: Optional[int] = None
    weight_step: Optional[float] = None
    rebalance: bool = True
    seed: Optional[int] = None


def label(key):
    ip, port, device = key
    return ("[%s]:%d/%s" if ":" in ip else "%s:%d/%s") % (ip, port, device)


def _address(value, where):
    try:
        return ipaddress.ip_address(str(value)).compressed
    except ValueError:
        raise ValidationError("%s must be an IPv4 or IPv6 address, not %r" % (where, value))


def _port(value, where):
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
        raise ValidationError("%s must be a port number (1 to 65535), not %r" % (where, value))
    return value


def _normal_ip(ip):
    """An existing ring device's address in the form the user's is compared in (rings may hold host names)."""
    try:
        return ipaddress.ip_address(ip).compressed
    except ValueError:
        return ip


def parse_devices(items):
    """The ``devices`` option as Device values; every error is raised before anything is read or written."""
    devices, seen = [], {}
    for i, item in enumerate(items or []):
        where = "devices[%d]" % i
        ip = _address(item.get("ip"), where + ".ip")
        port = _port(item.get("port"), where + ".port")
        name = item.get("device")
        if not isinstance(name, str) or not DEVICE_NAME.match(name):
            raise ValidationError("%s.device must be 1 to 64 letters, digits, '.', '_' or '-', not %r" % (where, name))
        weight = item.get("weight")
        if not isinstance(weight, (int, float)) or isinstance(weight, bool) or not math.isfinite(weight) or weight < 0:
            raise ValidationError("%s.weight must be a number of at least 0, not %r" % (where, weight))
        region, zone = item.get("region", 1), item.get("zone")
        if not isinstance(region, int) or region < 1:
            raise ValidationError("%s.region must be an integer of at least 1, not %r" % (where, region))
        if not isinstance(zone, int) or zone < 0:
            raise ValidationError("%s.zone must be an integer of at least 0, not %r" % (where, zone))
        rep_ip = item.get("replication_ip")
        rep_port = item.get("replication_port")
        meta = item.get("meta")
        device = Device(ip=ip, port=port, device=name, zone=zone, weight=float(weight), region=region,
                        replication_ip=None if rep_ip is None else _address(rep_ip, where + ".replication_ip"),
                        replication_port=None if rep_port is None else _port(rep_port, where + ".replication_port"),
                        meta=meta)
        other = seen.get(device.key)
        if other is not None:
            if (other.region, other.zone) != (device.region, device.zone):
                raise ValidationError(
                    "device %s is listed in two zones (region %d zone %d and region %d zone %d): a device cannot "
                    "move between zones in place; remove it, then add it again in its new zone"
                    % (label(device.key), other.region, other.zone, device.region, device.zone))
            raise ValidationError("device %s is listed twice" % label(device.key))
        seen[device.key] = device
        devices.append(device)
    return devices


def check_parameters(desired, replicas):
    """Refuse a ring Swift could not place ``replicas`` on with full dispersion."""
    if desired.part_power is not None and not 1 <= desired.part_power <= MAX_PART_POWER:
        raise ValidationError("part_power must be 1 to %d, not %d" % (MAX_PART_POWER, desired.part_power))
    if not isinstance(replicas, (int, float)) or not math.isfinite(replicas) or replicas < 1:
        raise ValidationError("replicas must be at least 1, not %r" % (replicas,))
    if desired.min_part_hours is not None and desired.min_part_hours < 0:
        raise ValidationError("min_part_hours must be at least 0, not %d" % desired.min_part_hours)
    if desired.weight_step is not None and not (math.isfinite(desired.weight_step) and desired.weight_step > 0):
        raise ValidationError("weight_step must be a number above 0, not %r" % (desired.weight_step,))
    weighted = [d for d in desired.devices if d.weight > 0]
    zones = {(d.region, d.zone) for d in weighted}
    if replicas > len(weighted):
        raise ValidationError("replicas (%g) is more than the devices with a weight above 0 (%d)"
                              % (replicas, len(weighted)))
    if replicas > len(zones):
        raise ValidationError("replicas (%g) is more than the zones (distinct region and zone pairs) that have a "
                              "device with a weight above 0 (%d): two replicas of a partition would share a zone"
                              % (replicas, len(zones)))


def load_builder(path):
    """The RingBuilder in ``path``, or None when there is none."""
    try:
        return RingBuilder.load(path)
    except swift_exceptions.FileNotFoundError:
        return None
    except (swift_exceptions.PermissionError, swift_exceptions.UnPicklingError) as e:
        raise NimbusError(str(e))


def load_ring(path):
    """The RingData in ``path``, or None when there is none."""
    if not os.path.exists(path):
        return None
    try:
        return RingData.load(path)
    except Exception as e:  # RingData.load raises bare Exception, struct and gzip errors on a damaged file
        raise NimbusError("cannot read ring file %s: %s" % (path, e))


def _devs(builder):
    return sorted((d for d in builder.devs if d is not None), key=lambda d: d["id"])


def _key(dev):
    return (_normal_ip(dev["ip"]), dev["port"], dev["device"])


def device_view(dev, parts=None):
    return {
        "id": dev["id"], "region": dev["region"], "zone": dev["zone"], "ip": dev["ip"], "port": dev["port"],
        "device": dev["device"], "weight": float(dev["weight"]),
        "parts": dev.get("parts", 0) if parts is None else parts,
        "replication_ip": dev.get("replication_ip", dev["ip"]),
        "replication_port": dev.get("replication_port", dev["port"]), "meta": dev.get("meta", ""),
    }


def ring_view(builder):
    """The builder's parameters and devices, for the diff (a ring holds no secrets)."""
    return {"part_power": builder.part_power, "replicas": builder.replicas, "min_part_hours": builder.min_part_hours,
            "devices": [device_view(d) for d in _devs(builder)]}


def balance_of(builder):
    try:
        return round(builder.get_balance(), 2)
    except (swift_exceptions.RingBuilderError, ValueError):
        return None  # no device, or none with a weight


def _toward(weight, target, step):
    if step is None or abs(target - weight) <= step:
        return float(target)
    return weight + step if target > weight else weight - step


def ring_bytes(ring_data, path):
    """What ``ring_data.save(path)`` writes, in memory: check mode reports the sha256 a real run writes."""
    buf = io.BytesIO()
    with gzip.GzipFile(path, mode="wb", fileobj=buf, mtime=RING_MTIME) as gz:
        ring_data.serialize_v1(gz)
    return buf.getvalue()


def _comparable(ring_data):
    devs = json.loads(json.dumps(ring_data.devs, sort_keys=True))
    return (devs, ring_data._part_shift, ring_data.next_part_power,
            [bytes(memoryview(a).cast("B")) for a in ring_data._replica2part2dev_id])


def ring_matches(ring_data, builder):
    """Whether a ring file holds the builder's devices and assignments (its version number aside)."""
    if ring_data is None or builder is None or not builder.ever_rebalanced:
        return False
    return _comparable(ring_data) == _comparable(builder.get_ring())


def replicas_moved(before, after):
    """Per partition, how many of its replicas are on another device after than before.

    Only replicas both assignments have are compared: a replica-count change places or drops a replica, it
    moves none.
    """
    moved = {}
    for old, new in zip(before, after):
        for part, (a, b) in enumerate(zip(old, new)):
            if a != b:
                moved[part] = moved.get(part, 0) + 1
    return moved


def _assignment(builder):
    return [array("H", a) for a in builder._replica2part2dev] if builder.ever_rebalanced else None


def _iso(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Outcome:
    """What a run does to a ring (or, in check mode, would do)."""

    files: RingFiles
    builder: object = None
    before: dict = field(default_factory=dict)
    write_builder: bool = False
    ring_data: Optional[bytes] = None
    remove: bool = False
    added: list = field(default_factory=list)
    removed: list = field(default_factory=list)
    reweighted: list = field(default_factory=list)
    remaining: list = field(default_factory=list)
    rebalanced: bool = False
    parts_moved: int = 0
    waiting_until: Optional[str] = None

    @property
    def changed(self):
        return self.write_builder or self.ring_data is not None or self.remove


def _remaining(builder, wanted):
    out = []
    for dev in _devs(builder):
        want = wanted.get(_key(dev))
        target = want.weight if want is not None else 0.0
        if want is None or dev["weight"] != target:
            # A device no longer listed stays here, with target 0, until it is removed.
            out.append({"ip": dev["ip"], "port": dev["port"], "device": dev["device"],
                        "weight": float(dev["weight"]), "target": target})
    return out


def _rebalance(builder, seed, name):
    try:
        parts, _balance, removed = builder.rebalance(seed=seed)
        builder.validate()
    except (swift_exceptions.RingBuilderError, ValueError) as e:
        raise NimbusError("Swift cannot rebalance ring %s: %s; nothing was written" % (name, e))
    return parts, removed


def _improves(last_balance, last_dispersion, builder):
    """swift-ring-builder's rule for saving a rebalance nothing asked for: balance or dispersion moved by 1 or more,
    or a zero-weight device still drains (its balance stays at MAX_BALANCE until it is empty)."""
    balance = balance_of(builder)
    if last_balance is None or balance is None:
        return True
    if abs(last_balance - balance) >= 1 or (last_balance >= MAX_BALANCE and balance >= MAX_BALANCE):
        return True
    return last_dispersion is None or abs(last_dispersion - (builder.dispersion or 0.0)) >= 1


def plan_present(files, desired, current, now_ts):
    """Apply one run's changes to ``current`` (a RingBuilder the caller owns, or None) and rebalance it.

    Nothing is written here; ``commit`` writes the outcome. Raises ValidationError before changing anything
    when the input is wrong.
    """
    new = current is None
    if new:
        if os.path.exists(files.ring):
            # A fresh builder places every partition anew: the ring in use would be replaced by an unrelated one.
            raise ValidationError("%s exists without its builder %s: put the builder back (see %s) or remove the "
                                  "ring file with state=absent first" % (files.ring, files.builder, files.backups))
        if desired.part_power is None or desired.replicas is None:
            raise ValidationError("ring %s does not exist: give part_power and replicas to create it" % files.name)
    else:
        if desired.part_power is not None and desired.part_power != current.part_power:
            raise ValidationError(
                "ring %s has part_power %d, not %d: the partition power changes only through Swift's own "
                "increase procedure (swift-ring-builder prepare_increase_partition_power, the relinker, "
                "increase_partition_power, finish_increase_partition_power), never in place"
                % (files.name, current.part_power, desired.part_power))
        if current.next_part_power:
            raise ValidationError("ring %s is in the middle of a partition power increase: finish it first"
                                  % files.name)
    replicas = desired.replicas if desired.replicas is not None else current.replicas
    check_parameters(desired, replicas)
    wanted = {d.key: d for d in desired.devices}
    existing = {} if new else {_key(d): d for d in _devs(current)}
    for key, want in wanted.items():
        dev = existing.get(key)
        if dev is not None and (dev["region"], dev["zone"]) != (want.region, want.zone):
            raise ValidationError(
                "device %s is in region %d zone %d of ring %s, not region %d zone %d: Swift cannot move a device "
                "between zones in place; remove it (leave it out of devices until it is gone), then add it again"
                % (label(key), dev["region"], dev["zone"], files.name, want.region, want.zone))

    if new:
        builder = RingBuilder(desired.part_power, replicas,
                              1 if desired.min_part_hours is None else desired.min_part_hours)
    else:
        builder = current
    out = Outcome(files=files, builder=builder, before={} if new else ring_view(builder), write_builder=new)
    before_assignment = _assignment(builder)
    last_balance = balance_of(builder) if builder.ever_rebalanced else None
    last_dispersion = builder.dispersion if builder.ever_rebalanced else None
    step = desired.weight_step

    if desired.min_part_hours is not None and desired.min_part_hours != builder.min_part_hours:
        builder.change_min_part_hours(desired.min_part_hours)
        out.write_builder = True
    # Replication address and metadata change in place: they move no partition, only the ring file changes.
    for key, want in wanted.items():
        dev = existing.get(key)
        if dev is None:
            continue
        for attr in ("replication_ip", "replication_port", "meta"):
            value = getattr(want, attr)
            if value is not None and dev.get(attr) != value:
                dev[attr] = value
                out.write_builder = True

    adds = [(want, _toward(0.0, want.weight, step)) for key, want in wanted.items() if key not in existing]
    reweights, removals = [], []
    for key, dev in existing.items():
        want = wanted.get(key)
        if want is None and (not builder.ever_rebalanced or dev["weight"] == 0 and dev["parts"] == 0):
            # Empty (drained by earlier rebalances, or nothing was ever placed): removing it moves nothing.
            removals.append(dev)
            continue
        weight = _toward(dev["weight"], 0.0 if want is None else want.weight, step)
        if weight != dev["weight"]:
            reweights.append((dev, weight))
    replicas_change = replicas != builder.replicas
    placement = bool(adds or reweights or removals) or replicas_change
    pending = placement or builder.devs_changed or bool(_remaining(builder, wanted))
    seconds_left = builder.min_part_seconds_left if builder.ever_rebalanced else 0
    waiting = desired.rebalance and seconds_left > 0

    if waiting:
        # Changing weights now, without the rebalance, would let the next run step again before any part moved.
        if pending:
            out.waiting_until = _iso(now_ts + seconds_left)
    else:
        if replicas_change:
            builder.set_replicas(replicas)
        for want, weight in adds:
            dev = {"region": want.region, "zone": want.zone, "ip": want.ip, "port": want.port,
                   "device": want.device, "weight": weight, "meta": want.meta or "",
                   "replication_ip": want.replication_ip or want.ip,
                   "replication_port": want.replication_port or want.port}
            builder.add_dev(dev)
            out.added.append({"id": dev["id"], "region": want.region, "zone": want.zone, "ip": want.ip,
                              "port": want.port, "device": want.device, "weight": weight})
        for dev, weight in reweights:
            out.reweighted.append({"id": dev["id"], "ip": dev["ip"], "port": dev["port"], "device": dev["device"],
                                   "from": float(dev["weight"]), "to": weight})
            try:
                builder.set_dev_weight(dev["id"], weight)
            except ValueError as e:  # a device marked for removal outside this module
                raise NimbusError("ring %s: %s; nothing was written" % (files.name, e))
        # A removal takes effect at a rebalance: without one it would stay pending in the builder.
        if desired.rebalance:
            for dev in removals:
                builder.remove_dev(dev["id"])
                out.removed.append({"id": dev["id"], "region": dev["region"], "zone": dev["zone"], "ip": dev["ip"],
                                    "port": dev["port"], "device": dev["device"]})
        out.write_builder = out.write_builder or bool(out.added or out.reweighted or out.removed) or replicas_change

    if desired.rebalance and not waiting:
        required = bool(out.added or out.reweighted or out.removed) or replicas_change or builder.devs_changed \
            or not builder.ever_rebalanced
        # A rebalance nothing asked for runs on a copy and is kept only when Swift would have saved it.
        trial = builder if required else copy.deepcopy(builder)
        parts, removed = _rebalance(trial, desired.seed, files.name)
        if required or (parts or removed) and _improves(last_balance, last_dispersion, trial):
            if before_assignment is not None:
                moved = replicas_moved(before_assignment, trial._replica2part2dev)
                worst = [p for p, n in sorted(moved.items()) if n > 1]
                if worst:
                    raise NimbusError(
                        "ring %s: this rebalance would move %d replicas of partition %d at once (%d partitions "
                        "in all would lose more than one replica); refused, nothing was written. Was a device "
                        "holding partitions removed with swift-ring-builder? Drain devices by weight instead."
                        % (files.name, max(moved.values()), worst[0], len(worst)),
                        partitions=worst[:20])
            builder = out.builder = trial
            out.rebalanced = True
            out.parts_moved = parts
            out.write_builder = True
    out.remaining = _remaining(builder, wanted)

    if desired.rebalance and builder.ever_rebalanced:
        on_disk = load_ring(files.ring)
        if not ring_matches(on_disk, builder):
            out.ring_data = ring_bytes(builder.get_ring(), files.ring)
    return out


def plan_absent(files):
    builder = load_builder(files.builder)
    out = Outcome(files=files, before=ring_view(builder) if builder is not None else {})
    out.remove = builder is not None or os.path.exists(files.ring)
    if builder is not None:
        out.removed = [{"id": d["id"], "region": d["region"], "zone": d["zone"], "ip": d["ip"], "port": d["port"],
                        "device": d["device"]} for d in _devs(builder)]
    return out


@contextlib.contextmanager
def ring_lock(directory):
    """Hold an flock on the builder directory itself: two runs never interleave, and no lock file is left."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _owner_and_mode(path, mode):
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return -1, -1, mode
    return st.st_uid, st.st_gid, st.st_mode & 0o7777


def _create_dir(path):
    os.makedirs(path, mode=0o755, exist_ok=True)


def _copy_backup(source, target):
    os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
    shutil.copy2(source, target)


def _save_builder(builder, path):
    # RingBuilder.save writes in place; a crash would leave half a builder, so it saves a sibling that is renamed.
    uid, gid, mode = _owner_and_mode(path, 0o644)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=os.path.dirname(path))
    os.close(fd)
    try:
        builder.save(tmp)
        if uid != -1 and (uid, gid) != (os.getuid(), os.getgid()):
            os.chown(tmp, uid, gid)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _save_ring(data, path):
    uid, gid, mode = _owner_and_mode(path, 0o644)
    if (uid, gid) == (os.getuid(), os.getgid()):
        uid = gid = -1
    _files.replace_file(path, data, mode, uid, gid)


def _delete_files(paths):
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def commit(runner, out, now):
    """Write the outcome through the runner's check-mode gate; returns the backup's path (or None)."""
    files = out.files
    backup = None
    if out.remove:
        if os.path.exists(files.builder):
            backup = files.backup_path(now)
            runner.apply("back up %s to %s" % (files.builder, backup), _copy_backup, files.builder, backup)
        elif os.path.exists(files.ring):
            backup = files.backup_path(now, ".ring.gz")
            runner.apply("back up %s to %s" % (files.ring, backup), _copy_backup, files.ring, backup)
        runner.apply("remove %s and %s" % (files.builder, files.ring), _delete_files, [files.builder, files.ring])
        return backup
    if not os.path.isdir(files.directory) and (out.write_builder or out.ring_data is not None):
        runner.apply("create directory %s" % files.directory, _create_dir, files.directory)
    if out.write_builder:
        if os.path.exists(files.builder):
            backup = files.backup_path(now)
            runner.apply("back up %s to %s" % (files.builder, backup), _copy_backup, files.builder, backup)
        runner.apply("write %s" % files.builder, _save_builder, out.builder, files.builder)
    # The builder first: a run stopped between the two leaves a ring file behind its builder, which the next run
    # sees (ring_matches) and writes again.
    if out.ring_data is not None:
        runner.apply("write %s" % files.ring, _save_ring, out.ring_data, files.ring)
    return backup


def sha256_of(path):
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except FileNotFoundError:
        return None


def result(out, backup):
    """The module's result keys, the same in check mode as in a real run."""
    builder = out.builder
    files = out.files
    if builder is not None:
        total = builder.parts * builder.replicas
        after = ring_view(builder)
        devices = after["devices"]
        balance, dispersion = balance_of(builder), builder.dispersion
    else:
        total, after, devices, balance, dispersion = 0, {}, [], None, None
    if out.ring_data is not None:
        ring_sha = hashlib.sha256(out.ring_data).hexdigest()
    elif out.remove:
        ring_sha = None
    else:
        ring_sha = sha256_of(files.ring)
    return {
        "builder": files.builder, "ring": files.ring, "devices": devices, "added": out.added,
        "removed": out.removed, "reweighted": out.reweighted, "remaining": out.remaining,
        "rebalanced": out.rebalanced, "parts_moved": out.parts_moved,
        "moved_share": round(out.parts_moved / total, 6) if total else 0.0,
        "balance": balance, "dispersion": None if dispersion is None else round(dispersion, 2),
        "waiting_until": out.waiting_until, "backup": backup, "ring_sha256": ring_sha,
    }, after


def ring_names(directory, only=None):
    """The rings with a builder or a ring file in ``directory``, sorted; [] when there is none."""
    try:
        entries = os.listdir(directory)
    except FileNotFoundError:
        return []
    names = set()
    for entry in entries:
        for suffix in (".builder", ".ring.gz"):
            stem = entry[:-len(suffix)]
            if entry.endswith(suffix) and RING_NAME.match(stem) and os.path.isfile(os.path.join(directory, entry)):
                names.add(stem)
    return sorted(n for n in names if only is None or n == only)


def describe(files):
    """What swift_ring_info reports of one ring: its builder when there is one, else its ring file."""
    builder = load_builder(files.builder)
    ring_data = load_ring(files.ring)
    info = {"name": files.name, "has_builder": builder is not None, "has_ring": ring_data is not None,
            "builder": files.builder if builder is not None else None,
            "ring": files.ring if ring_data is not None else None, "ring_sha256": sha256_of(files.ring),
            "ring_matches_builder": (ring_matches(ring_data, builder)
                                     if builder is not None and ring_data is not None else None)}
    if builder is not None:
        info.update(part_power=builder.part_power, replicas=builder.replicas, min_part_hours=builder.min_part_hours,
                    min_part_seconds_left=builder.min_part_seconds_left, balance=balance_of(builder),
                    dispersion=None if builder.dispersion is None else round(builder.dispersion, 2),
                    devices=[device_view(d) for d in _devs(builder)], source="builder")
    else:
        # A storage node's ring file: no builder, so no balance or move history; parts come from the assignments.
        parts = {}
        for part2dev in ring_data._replica2part2dev_id:
            for dev_id in part2dev:
                parts[dev_id] = parts.get(dev_id, 0) + 1
        devs = sorted((d for d in ring_data.devs if d is not None), key=lambda d: d["id"])
        info.update(part_power=32 - ring_data._part_shift, replicas=ring_data.replica_count, min_part_hours=None,
                    min_part_seconds_left=None, balance=None, dispersion=None,
                    devices=[device_view(d, parts.get(d["id"], 0)) for d in devs], source="ring")
    return info
