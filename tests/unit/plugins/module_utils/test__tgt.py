"""The tgtd management client against a stand-in that decodes requests as tgtd 1.0.85 does."""

import json
import os

import pytest
from ansible_collections.nimbus.cloud.tests.unit.plugins.module_utils.fake_tgtd import FakeTgtd

from ansible_collections.nimbus.cloud.plugins.module_utils import _tgt


@pytest.fixture
def tgtd(tmp_path):
    server = FakeTgtd(str(tmp_path / "socket.0"))
    yield server
    server.close()


def test_requests_are_tgtadms_with_the_password_last(tgtd):
    tgt = _tgt.Tgt(tgtd.path)
    tgt.export(3, "iqn.2026-12.cloud.nimbus:volume-x", "/var/lib/nimbus/volumes/x", "10.0.0.5", "volume-x",
               "p4ss,with=commas")
    assert tgtd.requests == [
        (1, 0, 3, 2 ** 64 - 1, 0, "targetname=iqn.2026-12.cloud.nimbus:volume-x"),
        (2, 0, 3, 1, 0, "path=/var/lib/nimbus/volumes/x"),
        (1, 3, 3, 2 ** 64 - 1, 0, "initiator-address=10.0.0.5"),
        (7, 0, -1, 2 ** 64 - 1, 0, "user=volume-x,password=***"),
        (7, 3, 3, 2 ** 64 - 1, 0, "user=volume-x"),
    ]
    # tgtd takes the rest of the string as the password, commas and all.
    assert tgtd.accounts == {"volume-x": "p4ss,with=commas"}
    targets = tgt.targets()
    assert targets == {3: {"name": "iqn.2026-12.cloud.nimbus:volume-x", "luns": {0: "None", 1: "/var/lib/nimbus/volumes/x"},
                           "accounts": ["volume-x"], "acl": ["10.0.0.5"], "sessions": 0}}
    tgt.unexport(3, "volume-x")
    assert tgtd.targets == {} and tgtd.accounts == {}


def test_a_failed_step_undoes_the_export(tgtd):
    tgt = _tgt.Tgt(tgtd.path)
    tgtd.targets[7] = {"name": "other", "luns": {}, "accounts": [], "acl": [], "sessions": 0}
    with pytest.raises(_tgt.TgtError, match="the target already exists"):
        tgt.export(7, "iqn.2026-12.x:v", "/p", "10.0.0.5", "volume-v", "pw")
    assert tgtd.targets[7]["name"] == "other" and tgtd.accounts == {}
    # a LUN path tgtd would split is refused before anything is sent
    before = len(tgtd.requests)
    with pytest.raises(ValueError, match="characters it cannot take"):
        tgt.new_lun(8, 1, "/srv/a,b")
    assert len(tgtd.requests) == before


def test_an_active_target_is_not_deleted_without_force(tgtd):
    tgt = _tgt.Tgt(tgtd.path)
    tgt.export(1, "iqn.2026-12.x:v", "/p", "10.0.0.5", "volume-v", "pw")
    tgtd.targets[1]["sessions"] = 1
    with pytest.raises(_tgt.TgtError) as e:
        tgt.unexport(1, "volume-v")
    assert e.value.code == _tgt.TARGET_ACTIVE and 1 in tgtd.targets


def test_no_daemon_is_a_clear_error(tmp_path):
    with pytest.raises(ConnectionError, match="is tgt.service running"):
        _tgt.Tgt(str(tmp_path / "none")).targets()


def test_restore_exports_what_the_records_hold(tgtd, tmp_path):
    pool = tmp_path / "pool"
    pool.mkdir()
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    attachment = {"server_id": "vm1", "tid": 2, "iqn": "iqn.2026-12.x:volume-a", "initiator": "10.0.0.7",
                  "username": "volume-a", "secret_file": str(secret)}
    (pool / "a.json").write_text(json.dumps({"id": "a", "attachments": [attachment]}))
    (pool / "b.json").write_text(json.dumps({"id": "b", "attachments": []}))
    settings = tmp_path / "volumes.json"
    settings.write_text(json.dumps({"backends": {"file": {"path": str(pool)}}}))
    tgt = _tgt.Tgt(tgtd.path)
    assert _tgt.restore(str(settings), tgt) == 1
    assert tgtd.targets[2]["luns"][1] == os.path.join(str(pool), "a") and tgtd.accounts == {"volume-a": "s3cret"}
    # already there: nothing again
    assert _tgt.restore(str(settings), tgt) == 0
