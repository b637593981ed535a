"""nimbus.cloud.volume, volume_snapshot, volume_backup and volume_info on a real pool directory with real qemu-img.

The same code runs on a storage host; only the settings point at a temporary directory. A marker written into a
volume is read back from what was made of it: a snapshot's volume, a clone, a restored backup.
The Molecule scenario `storage` serves volumes to a running guest.
"""

import hashlib
import http.server
import json
import os
import shutil
import subprocess
import threading

import pytest

from ansible_collections.nimbus.cloud.plugins.module_utils import _volumes as volumes
from ansible_collections.nimbus.cloud.plugins.modules.volume import VolumeModule
from ansible_collections.nimbus.cloud.plugins.modules.volume_backup import VolumeBackupModule
from ansible_collections.nimbus.cloud.plugins.modules.volume_info import VolumeInfoModule
from ansible_collections.nimbus.cloud.plugins.modules.volume_snapshot import VolumeSnapshotModule

pytestmark = pytest.mark.skipif(any(shutil.which(b) is None for b in ("qemu-img", "prlimit")),
                                reason="needs qemu-img and prlimit (tools/testbed installs them)")
GIB = 1024 ** 3
MARKER = b"NIMBUS-VOLUME-MARKER"


@pytest.fixture
def pool(tmp_path, monkeypatch):
    """Two backends (qcow2 and raw types, one with room for 3 GiB), a backup directory, no image store."""
    root = tmp_path / "pool"
    raw = tmp_path / "raw-pool"
    for d in (root, raw):
        d.mkdir()
    settings = tmp_path / "volumes.json"
    settings.write_text(json.dumps({
        "backends": {"file": {"path": str(root), "capacity_gb": 3}, "rawfile": {"path": str(raw), "capacity_gb": 50}},
        "types": {"standard": {"backend": "file", "format": "qcow2"}, "raw": {"backend": "rawfile", "format": "raw"},
                  "broken": {"backend": "ceph"}},
        "default_type": "standard", "backup_dir": str(tmp_path / "backups"), "lock": str(tmp_path / "volumes.lock")}))
    monkeypatch.setattr(volumes, "SETTINGS", str(settings))
    return tmp_path


def files(root):
    """Every file under root but the lock, as relative paths."""
    out = []
    for base, _dirs, names in os.walk(str(root)):
        for f in names:
            rel = os.path.relpath(os.path.join(base, f), str(root))
            if not rel.endswith(".lock"):
                out.append(rel)
    return sorted(out)


def write_marker(path, fmt, marker=MARKER):
    """Write ``marker`` at the start of the disk in ``path``: through a raw scratch copy converted back over it."""
    scratch = str(path) + ".scratch"
    subprocess.run(["qemu-img", "convert", "-f", fmt, "-O", "raw", str(path), scratch], check=True)
    with open(scratch, "r+b") as f:
        f.write(marker)
    subprocess.run(["qemu-img", "convert", "-n", "-f", "raw", "-O", fmt, scratch, str(path)], check=True)
    os.unlink(scratch)


def read_head(path, fmt, length=len(MARKER)):
    """The first bytes of the disk in ``path``."""
    head = str(path) + ".head"
    subprocess.run(["qemu-img", "dd", "-f", fmt, "-O", "raw", "if=%s" % path, "of=%s" % head, "bs=512", "count=1"],
                   check=True, capture_output=True)
    with open(head, "rb") as f:
        data = f.read(length)
    os.unlink(head)
    return data


def data_file(pool, volume):
    backend = {"file": "pool", "rawfile": "raw-pool"}[volume["backend"]]
    return pool / backend / volume["id"]


def test_a_blank_volume_the_full_cycle(pool, run_module):
    args = {"name": "data", "size": 1, "project": "demo", "metadata": {"purpose": "db"}}
    result, failed = run_module(VolumeModule, args, check_mode=True, diff=True)
    assert not failed and result["changed"] and result["commands"][0].startswith("create volume data (")
    assert files(pool) == ["volumes.json"]
    result, failed = run_module(VolumeModule, args, diff=True)
    assert not failed and result["changed"], result
    volume = result["volume"]
    assert (volume["size"], volume["format"], volume["volume_type"], volume["status"]) == (1, "qcow2", "standard",
                                                                                           "available")
    assert result["diff"]["before"] == {} and result["diff"]["after"]["id"] == volume["id"]
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(data_file(pool, volume))],
                                     capture_output=True, check=True).stdout)
    assert (info["format"], info["virtual-size"]) == ("qcow2", GIB)
    assert oct(os.stat(str(data_file(pool, volume))).st_mode & 0o777) == "0o600"
    assert files(pool) == sorted(["pool/" + volume["id"], "pool/" + volume["id"] + ".json", "volumes.json"])
    for check in (True, False):
        again, failed = run_module(VolumeModule, args, check_mode=check)
        assert not failed and not again["changed"] and again["volume"]["id"] == volume["id"]
    # metadata and description change; check mode predicts without writing
    update = dict(args, metadata={"purpose": "cache"}, description="scratch")
    result = run_module(VolumeModule, update, check_mode=True, diff=True)[0]
    assert result["changed"] and result["diff"]["after"]["metadata"] == {"purpose": "cache"}
    assert json.loads((pool / "pool" / (volume["id"] + ".json")).read_text())["metadata"] == {"purpose": "db"}
    result, failed = run_module(VolumeModule, update)
    assert not failed and result["changed"] and result["volume"]["description"] == "scratch"
    assert not run_module(VolumeModule, update)[0]["changed"]
    # renamed through its id
    result, failed = run_module(VolumeModule, {"id": volume["id"], "name": "data-2"})
    assert not failed and result["changed"] and result["volume"]["name"] == "data-2"
    # grows, in check mode first
    result = run_module(VolumeModule, {"name": "data-2", "size": 2}, check_mode=True)[0]
    assert result["changed"] and result["commands"] == ["extend volume data-2 (%s) from 1 to 2 GiB" % volume["id"]]
    result, failed = run_module(VolumeModule, {"name": "data-2", "size": 2})
    assert not failed and result["volume"]["size"] == 2
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(data_file(pool, volume))],
                                     capture_output=True, check=True).stdout)
    assert info["virtual-size"] == 2 * GIB
    # the type and project are fixed
    result, failed = run_module(VolumeModule, {"name": "data-2", "project": "other"})
    assert failed and "project 'demo' -> 'other' cannot change" in result["msg"]
    # delete: check mode, then for real, then nothing to do
    result = run_module(VolumeModule, {"name": "data-2", "state": "absent"}, check_mode=True)[0]
    assert result["changed"] and (pool / "pool" / volume["id"]).exists()
    result, failed = run_module(VolumeModule, {"name": "data-2", "state": "absent"}, diff=True)
    assert not failed and result["changed"] and result["volume"] == {} and result["diff"]["after"] == {}
    assert files(pool) == ["volumes.json"]
    assert not run_module(VolumeModule, {"name": "data-2", "state": "absent"})[0]["changed"]


def test_bad_input_is_refused_and_nothing_is_made(pool, run_module):
    made = run_module(VolumeModule, {"name": "small", "size": 2})[0]["volume"]
    before = files(pool)
    for args, message in (
        ({"name": "small", "size": 1}, "a volume only grows"),
        ({"name": "big", "size": 2}, "backend file is full (2 of 3 GiB allocated; 2 GiB more asked for)"),
        ({"name": "small", "size": 4}, "backend file is full"),
        ({"name": "odd", "size": 1, "volume_type": "broken"}, "names backend ceph, which this storage host does not"),
        ({"name": "odd", "size": 1, "volume_type": "gold"}, "volume type gold does not exist here"),
        ({"name": "odd", "size": 0}, "size must be 1 to"),
        ({"name": "odd"}, "give size"),
        ({"name": "odd", "size": 1, "snapshot": "nope"}, "snapshot nope does not exist"),
        ({"name": "odd", "size": 1, "backup": "nope"}, "backup nope does not exist"),
        ({"name": "odd", "size": 1, "image": "tiny"}, "no image store is configured"),
        ({"name": "odd", "source_volume": "small", "snapshot": "x"}, "mutually exclusive"),
        ({"id": "not-a-uuid"}, "is not a UUID"),
        ({"name": " ", "size": 1}, "1 to 255 characters"),
        ({"name": "odd", "size": 1, "metadata": {"k": 5}}, "values must be strings"),
        ({"name": "odd", "size": 1, "source_volume": "small"}, "is 2 GiB; the volume must be at least that"),
    ):
        result, failed = run_module(VolumeModule, args)
        assert failed and message in result["msg"], (args, result)
        assert files(pool) == before, args
    # attached: no delete, no extend, no snapshot, no backup, no clone
    record = pool / "pool" / (made["id"] + ".json")
    data = json.loads(record.read_text())
    data["attachments"] = [{"server_id": "vm-1", "host": "hv1", "device": "vdb"}]
    data["status"] = "in-use"
    record.write_text(json.dumps(data))
    before = files(pool)
    for cls, args, message in (
        (VolumeModule, {"name": "small", "state": "absent"}, "is attached to vm-1: detach it before deleting it"),
        (VolumeModule, {"name": "small", "size": 3}, "detach it before extending it"),
        (VolumeModule, {"name": "copy", "source_volume": "small", "volume_type": "raw"}, "detach it before cloning"),
        (VolumeSnapshotModule, {"name": "s", "volume": "small"}, "detach it before taking a snapshot"),
        (VolumeBackupModule, {"name": "b", "volume": "small"}, "detach it before backing it up"),
    ):
        result, failed = run_module(cls, args)
        assert failed and message in result["msg"], (args, result)
        assert files(pool) == before, args


def test_a_full_disk_leaves_nothing(pool, run_module, monkeypatch):
    real = volumes.Storage.qemu_img

    def filling_up(self, argv, what, where):
        if argv[0] == "create":
            # The disk fills while the file is being made: a part of it exists.
            with open(argv[-2], "wb") as f:
                f.write(b"QFI")
            return volumes._fail_no_space(volumes.NimbusError("qemu-img: No space left on device"), what, where)
        return real(self, argv, what, where)

    monkeypatch.setattr(volumes.Storage, "qemu_img", filling_up)
    result, failed = run_module(VolumeModule, {"name": "data", "size": 1})
    assert failed and "volume data: no space left in" in result["msg"]
    assert files(pool) == ["volumes.json"]


@pytest.mark.parametrize("volume_type", ["standard", "raw"])
def test_snapshots_clones_and_backups_keep_the_data(pool, run_module, volume_type):
    volume = run_module(VolumeModule, {"name": "src", "size": 1, "volume_type": volume_type,
                                       "project": "demo"})[0]["volume"]
    path = data_file(pool, volume)
    write_marker(path, volume["format"])
    # snapshot: check mode, then taken, idempotent
    snap_args = {"name": "snap", "volume": "src", "metadata": {"why": "before upgrade"}}
    result = run_module(VolumeSnapshotModule, snap_args, check_mode=True)[0]
    assert result["changed"] and result["commands"][0].startswith("take snapshot snap (")
    assert run_module(VolumeInfoModule, {})[0]["snapshots"] == []
    result, failed = run_module(VolumeSnapshotModule, snap_args)
    assert not failed and result["changed"], result
    snapshot = result["snapshot"]
    assert (snapshot["volume_id"], snapshot["size"], snapshot["project"]) == (volume["id"], 1, "demo")
    assert not run_module(VolumeSnapshotModule, snap_args)[0]["changed"]
    # the volume changes after the snapshot; the snapshot keeps the marker
    write_marker(path, volume["format"], b"CHANGED-AFTERWARDS!!")
    made, failed = run_module(VolumeModule, {"name": "from-snap", "snapshot": "snap", "size": 2, "project": "demo"})
    assert not failed, made
    made = made["volume"]
    assert (made["source"], made["size"]) == ("snapshot:" + snapshot["id"], 2)
    assert read_head(data_file(pool, made), made["format"]) == MARKER
    # a clone of the volume as it is now
    clone = run_module(VolumeModule, {"name": "clone", "source_volume": volume["id"], "volume_type": "raw"})[0]
    assert read_head(data_file(pool, clone["volume"]), "raw") == b"CHANGED-AFTERWARDS!!"
    # a backup; restored into a new volume; the data is the same
    result, failed = run_module(VolumeBackupModule, {"name": "nightly", "volume": "src"})
    assert not failed and result["changed"], result
    backup = result["backup"]
    backup_file = pool / "backups" / backup["id"]
    assert backup["sha256"] == hashlib.sha256(backup_file.read_bytes()).hexdigest()
    assert not run_module(VolumeBackupModule, {"name": "nightly", "volume": "src"})[0]["changed"]
    restored = run_module(VolumeModule, {"name": "restored", "backup": "nightly", "volume_type": "raw"})[0]["volume"]
    assert restored["source"] == "backup:" + backup["id"] and restored["size"] == 1
    assert read_head(data_file(pool, restored), restored["format"]) == b"CHANGED-AFTERWARDS!!"
    # a damaged backup restores nothing
    with open(str(backup_file), "r+b") as f:
        f.seek(100)
        f.write(b"X")
    before = files(pool)
    result, failed = run_module(VolumeModule, {"name": "again", "backup": backup["id"], "volume_type": "raw"})
    assert failed and "the backup is damaged, nothing was restored" in result["msg"]
    assert files(pool) == before
    # info lists everything, filtered by project
    info = run_module(VolumeInfoModule, {"project": "demo"})[0]
    assert sorted(v["name"] for v in info["volumes"]) == ["from-snap", "src"]
    assert [s["name"] for s in info["snapshots"]] == ["snap"]
    assert [b["name"] for b in info["backups"]] == ["nightly"]
    assert run_module(VolumeInfoModule, {"name": "clone"})[0]["volumes"][0]["id"] == clone["volume"]["id"]
    # a volume with a snapshot goes only with cascade
    result, failed = run_module(VolumeModule, {"name": "src", "state": "absent"})
    assert failed and "has snapshots (snap): delete them first, or set cascade=true" in result["msg"]
    result, failed = run_module(VolumeModule, {"name": "src", "state": "absent", "cascade": True})
    assert not failed and result["changed"]
    assert run_module(VolumeInfoModule, {})[0]["snapshots"] == []
    for name in ("from-snap", "clone", "restored"):
        assert run_module(VolumeModule, {"name": name, "state": "absent"})[0]["changed"]
    result, failed = run_module(VolumeBackupModule, {"name": "nightly", "state": "absent"})
    assert not failed and result["changed"]
    leftover = [f for f in files(pool) if not f.startswith(("pool/.incoming", "raw-pool/.incoming",
                                                            "backups/.incoming")) and f != "volumes.json"]
    assert leftover == []


def test_a_snapshot_is_deleted_on_its_own(pool, run_module):
    volume = run_module(VolumeModule, {"name": "v", "size": 1})[0]["volume"]
    snapshot = run_module(VolumeSnapshotModule, {"name": "s", "volume": "v"})[0]["snapshot"]
    tags = subprocess.run(["qemu-img", "snapshot", "-l", str(data_file(pool, volume))], capture_output=True,
                          text=True, check=True).stdout
    assert snapshot["id"] in tags
    result = run_module(VolumeSnapshotModule, {"name": "s", "state": "absent"}, check_mode=True)[0]
    assert result["changed"] and snapshot["id"] in subprocess.run(
        ["qemu-img", "snapshot", "-l", str(data_file(pool, volume))], capture_output=True, text=True, check=True).stdout
    result, failed = run_module(VolumeSnapshotModule, {"name": "s", "state": "absent"})
    assert not failed and result["changed"]
    assert snapshot["id"] not in subprocess.run(["qemu-img", "snapshot", "-l", str(data_file(pool, volume))],
                                                capture_output=True, text=True, check=True).stdout
    assert not run_module(VolumeSnapshotModule, {"name": "s", "state": "absent"})[0]["changed"]
    result, failed = run_module(VolumeSnapshotModule, {"name": "s2", "volume": "missing"})
    assert failed and "volume missing does not exist" in result["msg"]


@pytest.fixture
def image_store(tmp_path, pool):
    """A store directory with one qcow2 image (marker in its first bytes), served on loopback."""
    from ansible_collections.nimbus.cloud.plugins.module_utils import _images as images

    store = tmp_path / "store"
    store.mkdir()
    raw = tmp_path / "image.raw"
    raw.write_bytes(MARKER + b"\0" * (1024 * 1024 - len(MARKER)))
    image_id = "0b0e8a32-6b0c-4f4e-9a56-8a1d4c0d1a11"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(store / image_id)], check=True)
    data = (store / image_id).read_bytes()
    record = images.Image(id=image_id, name="tiny", disk_format="qcow2", size=len(data), virtual_size=1024 * 1024,
                          checksum=hashlib.md5(data).hexdigest(), os_hash_algo="sha512",
                          os_hash_value=hashlib.sha512(data).hexdigest(), visibility="private", project="demo",
                          min_disk=1)
    (store / (image_id + ".json")).write_text(json.dumps(record.__dict__))
    (store / "index.json").write_text(json.dumps({"images": [record.__dict__]}))

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(store), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings_path = pool / "volumes.json"
    settings = json.loads(settings_path.read_text())
    settings["image_store_url"] = "http://127.0.0.1:%d" % server.server_address[1]
    settings_path.write_text(json.dumps(settings))
    yield store, image_id
    server.shutdown()
    server.server_close()


def test_a_volume_from_an_image_of_the_store(pool, image_store, run_module):
    store, image_id = image_store
    result, failed = run_module(VolumeModule, {"name": "root", "image": "tiny", "size": 1, "project": "demo"})
    assert not failed and result["changed"], result
    volume = result["volume"]
    assert (volume["source"], volume["bootable"]) == ("image:" + image_id, True)
    assert read_head(data_file(pool, volume), "qcow2") == MARKER
    # pulled once, verified, kept for the next volume
    assert (pool / "pool" / ".images" / image_id).exists()
    # another project does not see the private image
    result, failed = run_module(VolumeModule, {"name": "theirs", "image": "tiny", "size": 1, "project": "other"})
    assert failed and "not found" in result["msg"]
    # a store that serves other bytes than its record says is refused
    (pool / "pool" / ".images" / image_id).unlink()
    (pool / "pool" / ".images" / ".records" / (image_id + ".json")).unlink()
    with open(str(store / image_id), "r+b") as f:
        f.seek(os.path.getsize(str(store / image_id)) - 1)
        f.write(b"\1")
    before = files(pool)
    result, failed = run_module(VolumeModule, {"name": "bad", "image": image_id, "size": 1, "project": "demo"})
    assert failed and "its sha512 is" in result["msg"]
    assert files(pool) == before


@pytest.fixture
def tgtd(pool):
    from ansible_collections.nimbus.cloud.tests.unit.plugins.module_utils.fake_tgtd import FakeTgtd

    server = FakeTgtd(str(pool / "tgtd.socket"))
    settings = json.loads((pool / "volumes.json").read_text())
    settings.update(tgt_socket=server.path, secrets_dir=str(pool / "secrets"),
                    iscsi={"address": "10.0.20.5", "port": 3260, "iqn_prefix": "iqn.2026-12.cloud.nimbus"})
    (pool / "volumes.json").write_text(json.dumps(settings))
    yield server
    server.close()


def test_an_export_is_a_target_with_a_chap_account_and_the_attachment_recorded(pool, tgtd, run_module):
    from ansible_collections.nimbus.cloud.plugins.modules.volume_export import VolumeExportModule

    volume = run_module(VolumeModule, {"name": "data", "size": 1, "volume_type": "raw"})[0]["volume"]
    args = {"volume": "data", "server_id": "vm-1", "host": "cmp1", "initiator": "10.0.20.11"}
    result, failed = run_module(VolumeExportModule, args, check_mode=True)
    assert not failed and result["changed"] and result["commands"] == [
        "export volume %s to 10.0.20.11 (server vm-1) as target 1" % volume["id"]]
    assert tgtd.targets == {} and not (pool / "secrets").exists()
    result, failed = run_module(VolumeExportModule, args, diff=True)
    assert not failed and result["changed"], result
    iqn = "iqn.2026-12.cloud.nimbus:volume-" + volume["id"]
    assert result["connection"] == {"portal": "10.0.20.5:3260", "iqn": iqn, "lun": 1,
                                    "username": "volume-" + volume["id"]}
    secret_file = pool / "secrets" / volume["id"]
    assert result["secret_file"] == str(secret_file) and oct(secret_file.stat().st_mode & 0o777) == "0o600"
    password = secret_file.read_text().strip()
    assert len(password) >= 24 and tgtd.accounts == {"volume-" + volume["id"]: password}
    # the password is nowhere in the result (the diff included)
    assert password not in json.dumps(result)
    assert tgtd.targets[1]["luns"][1] == str(pool / "raw-pool" / volume["id"]) and tgtd.targets[1]["acl"] == [
        "10.0.20.11"]
    assert result["volume"]["status"] == "in-use" and result["volume"]["attachments"][0]["host"] == "cmp1"
    assert not run_module(VolumeExportModule, args)[0]["changed"]
    # tgtd restarted: the target comes back from the record and the stored password
    tgtd.targets.clear()
    tgtd.accounts.clear()
    result = run_module(VolumeExportModule, args)[0]
    assert result["changed"] and tgtd.accounts == {"volume-" + volume["id"]: password}
    # bad input and a second attachment are refused, and nothing changes
    for extra, message in (({"server_id": "vm-2"}, "is attached to server vm-1: detach it first"),
                           ({"initiator": "10.0.20.12"}, "at 10.0.20.11, not 10.0.20.12"),
                           ({"initiator": "cmp1; rm -rf /"}, "initiator must be the compute host's IP address"),
                           ({"server_id": "../../etc"}, "server_id must be")):
        result, failed = run_module(VolumeExportModule, dict(args, **extra))
        assert failed and message in result["msg"], (extra, result)
    for cls, extra, message in ((VolumeModule, {"name": "data", "state": "absent"}, "detach it before deleting"),
                                (VolumeSnapshotModule, {"name": "s", "volume": "data"}, "detach it before taking")):
        result, failed = run_module(cls, extra)
        assert failed and message in result["msg"]
    # still logged in: refused; logged out: removed with its account and password
    tgtd.targets[1]["sessions"] = 1
    result, failed = run_module(VolumeExportModule, dict(args, state="absent"))
    assert failed and "still logged in to its target; detach the volume from the instance first" in result["msg"]
    tgtd.targets[1]["sessions"] = 0
    result, failed = run_module(VolumeExportModule, dict(args, state="absent"))
    assert not failed and result["changed"] and result["volume"]["status"] == "available"
    assert tgtd.targets == {} and tgtd.accounts == {} and not secret_file.exists()
    assert not run_module(VolumeExportModule, dict(args, state="absent"))[0]["changed"]


def test_a_qcow2_volume_is_not_exported(pool, tgtd, run_module):
    from ansible_collections.nimbus.cloud.plugins.modules.volume_export import VolumeExportModule

    run_module(VolumeModule, {"name": "thin", "size": 1})
    result, failed = run_module(VolumeExportModule, {"volume": "thin", "server_id": "vm-1", "initiator": "10.0.0.1"})
    assert failed and "only raw volumes are served over iSCSI" in result["msg"] and tgtd.targets == {}
