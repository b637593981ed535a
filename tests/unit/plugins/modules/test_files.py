"""nimbus.cloud.files on a real directory tree (as the user running the tests)."""

import grp
import os
import pwd
import stat

import pytest

from ansible_collections.nimbus.cloud.plugins.modules.files import FilesModule

USER = pwd.getpwuid(os.getuid())[0]
GROUP = grp.getgrgid(os.getgid())[0]


def mode_of(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "etc").mkdir()
    return tmp_path


def declare(tree):
    return [
        {"path": str(tree / "etc" / "app"), "state": "directory", "mode": "0750"},
        {"path": str(tree / "etc" / "app" / "app.conf"), "content": "a = 1\n", "mode": "0640"},
        {"path": str(tree / "etc" / "app.service"), "content": "[Unit]\n", "mode": "0644"},
    ]


def test_creates_then_changes_nothing(tree, run_module):
    files = declare(tree)
    result, failed = run_module(FilesModule, {"files": files, "owner": USER, "group": GROUP}, diff=True)
    assert not failed, result.get("msg")
    assert result["changed"]
    assert result["changed_paths"] == [f["path"] for f in files]
    assert [r["steps"] for r in result["files"]] == [["create"]] * 3
    assert (tree / "etc" / "app" / "app.conf").read_text() == "a = 1\n"
    assert mode_of(tree / "etc" / "app") == 0o750
    assert mode_of(tree / "etc" / "app" / "app.conf") == 0o640
    contents = [d for d in result["diff"] if "(attributes)" not in d["before_header"]]
    assert [d["after"] for d in contents] == ["a = 1\n", "[Unit]\n"]

    again, failed = run_module(FilesModule, {"files": files, "owner": USER, "group": GROUP}, diff=True)
    assert not failed
    assert not again["changed"]
    assert again["changed_paths"] == []
    assert again["diff"] == []


def test_check_mode_reports_and_writes_nothing(tree, run_module):
    files = declare(tree)
    result, failed = run_module(FilesModule, {"files": files}, check_mode=True, diff=True)
    assert not failed, result.get("msg")
    assert result["changed"]
    assert result["commands"] == ["create " + f["path"] for f in files]
    assert os.listdir(tree / "etc") == []


def test_content_mode_and_removal(tree, run_module):
    run_module(FilesModule, {"files": declare(tree)})
    conf = tree / "etc" / "app" / "app.conf"
    (tree / "etc" / "old.service").write_text("[Unit]\n")
    files = declare(tree)
    files[1]["content"] = "a = 2\n"
    files[2]["mode"] = "0600"
    files.append({"path": str(tree / "etc" / "old.service"), "state": "absent"})
    result, failed = run_module(FilesModule, {"files": files}, diff=True)
    assert not failed, result.get("msg")
    assert [r["steps"] for r in result["files"]] == [[], ["write"], ["chmod"], ["remove"]]
    assert conf.read_text() == "a = 2\n"
    assert mode_of(conf) == 0o640
    assert mode_of(tree / "etc" / "app.service") == 0o600
    assert not (tree / "etc" / "old.service").exists()
    content = result["diff"][0]
    assert (content["before"], content["after"]) == ("a = 1\n", "a = 2\n")
    assert result["diff"][1]["before"]["mode"] == "0644" and result["diff"][1]["after"]["mode"] == "0600"


def test_a_link_at_a_file_path_is_replaced_not_followed(tree, run_module):
    target = tree / "target"
    target.write_text("keep me\n")
    link = tree / "etc" / "app.service"
    link.symlink_to(target)
    result, failed = run_module(FilesModule, {"files": [{"path": str(link), "content": "new\n", "mode": "0644"}]})
    assert not failed, result.get("msg")
    assert result["files"][0]["steps"] == ["create"]
    assert not link.is_symlink() and link.read_text() == "new\n"
    assert target.read_text() == "keep me\n"


@pytest.mark.parametrize("entry, message", [
    ({"path": "etc/x", "content": "", "mode": "0644"}, "must be absolute"),
    ({"path": "/etc/../etc/x", "content": "", "mode": "0644"}, "normalised"),
    ({"path": "{tree}/etc/x", "content": "", "mode": 644}, "octal string"),
    ({"path": "{tree}/etc/x", "content": "", "mode": "u+rwx"}, "octal string"),
    ({"path": "{tree}/etc/x", "content": ""}, "mode is required"),
    ({"path": "{tree}/etc/x", "mode": "0644"}, "needs content"),
    ({"path": "{tree}/etc/x", "state": "directory", "mode": "0755", "content": "x"}, "only for state=file"),
    ({"path": "{tree}/missing/x", "content": "", "mode": "0644"}, "does not exist"),
    ({"path": "{tree}/etc/x", "content": "", "mode": "0644", "owner": "no-such-user-here"}, "no user named"),
    ({"path": "{tree}/etc", "content": "", "mode": "0644"}, "directory is in the way"),
])
def test_bad_input_changes_nothing(tree, run_module, entry, message):
    first = {"path": str(tree / "etc" / "first.conf"), "content": "first\n", "mode": "0644"}
    bad = {k: v.format(tree=tree) if isinstance(v, str) else v for k, v in entry.items()}
    result, failed = run_module(FilesModule, {"files": [first, bad]})
    assert failed
    assert message in result["msg"]
    assert not (tree / "etc" / "first.conf").exists()


def test_duplicates_and_a_full_directory_are_refused(tree, run_module):
    path = str(tree / "etc" / "x")
    result, failed = run_module(FilesModule, {"files": [{"path": path, "content": "", "mode": "0644"}] * 2})
    assert failed and "declared twice" in result["msg"]
    (tree / "etc" / "keep").write_text("")
    result, failed = run_module(FilesModule, {"files": [{"path": str(tree / "etc"), "state": "absent"}]})
    assert failed and "not empty" in result["msg"]
    assert (tree / "etc" / "keep").exists()


def test_check_mode_accepts_an_owner_an_earlier_task_creates(tree, run_module):
    path = str(tree / "etc" / "x")
    result, failed = run_module(FilesModule, {"files": [{"path": path, "content": "", "mode": "0644",
                                                         "group": "no-such-group-yet"}]}, check_mode=True)
    assert not failed, result.get("msg")
    assert result["changed"] and not os.path.exists(path)


def test_a_directory_brings_the_missing_directories_above_it(tree, run_module):
    deep = tree / "var" / "lib" / "nimbus" / "instances"
    entries = [{"path": str(deep), "state": "directory", "mode": "0711"},
               {"path": str(deep / "x.json"), "content": "{}\n", "mode": "0644"}]
    planned, failed = run_module(FilesModule, {"files": entries}, check_mode=True)
    assert not failed, planned.get("msg")
    assert planned["commands"][:3] == ["create " + str(tree / "var"), "create " + str(tree / "var" / "lib"),
                                       "create " + str(tree / "var" / "lib" / "nimbus")]
    assert not (tree / "var").exists()
    result, failed = run_module(FilesModule, {"files": entries})
    assert not failed, result.get("msg")
    assert result["files"][0]["parents"] == [str(tree / "var"), str(tree / "var" / "lib"),
                                             str(tree / "var" / "lib" / "nimbus")]
    assert mode_of(tree / "var" / "lib") == 0o711 and (deep / "x.json").read_text() == "{}\n"
    again, failed = run_module(FilesModule, {"files": entries})
    assert not failed and not again["changed"] and again["files"][0]["parents"] == []


def test_a_file_above_a_directory_is_refused(tree, run_module):
    (tree / "etc" / "plain").write_text("")
    result, failed = run_module(FilesModule, {"files": [{"path": str(tree / "etc" / "plain" / "sub" / "d"),
                                                         "state": "directory", "mode": "0755"}]})
    assert failed and "is in the way of the directory above it" in result["msg"]
