import os
from dataclasses import dataclass

from ansible_collections.nimbus.cloud.plugins.module_utils import _files


def test_lock_in_check_mode_creates_nothing(tmp_path):
    path = tmp_path / "state" / "net" / ".lock"
    with _files.locked(str(path), check_mode=True):
        pass
    assert not (tmp_path / "state").exists()


def test_lock_in_check_mode_still_locks_an_existing_file(tmp_path):
    path = tmp_path / ".lock"
    path.write_text("")
    with _files.locked(str(path), check_mode=True):
        assert os.path.exists(path)
    assert os.listdir(tmp_path) == [".lock"]


def test_lock_for_real_creates_the_directory_and_file(tmp_path):
    path = tmp_path / "state" / ".lock"
    with _files.locked(str(path)):
        pass
    assert path.exists()


@dataclass
class Thing:
    name: str
    size: int = 1


def test_typed_records_drop_unknown_keys(tmp_path):
    records = _files.Records(str(tmp_path / "things"), kind=Thing)
    assert records.load("a") is None and records.load_all() == []
    records.write("a", {"name": "a", "size": 3, "added_later": True})
    records.write("b", {"name": "b"})
    assert records.load("a") == Thing("a", 3)
    assert records.load_all() == [Thing("a", 3), Thing("b", 1)]
    assert records.remove("a") and not records.remove("a")


def test_remove_tree(tmp_path):
    (tmp_path / "d" / "e").mkdir(parents=True)
    assert _files.remove_tree(str(tmp_path / "d")) and not (tmp_path / "d").exists()
    assert not _files.remove_tree(str(tmp_path / "d"))
