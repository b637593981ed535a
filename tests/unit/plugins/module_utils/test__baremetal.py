"""A node's deploy and cleaning jobs on a provisioning host (module_utils/_baremetal.py): the iPXE script, the
job and its token, the ramdisk's report, and the files written and removed (gated in check mode)."""

import hashlib
import json
import os
import stat

import pytest

from ansible_collections.nimbus.cloud.plugins.module_utils import _baremetal

RECORD = {"name": "bm-1", "address": "10.0.50.100", "macs": ["52:54:00:be:00:10", "52:54:00:be:00:11"]}
IMAGE = {"url": "http://10.0.50.1:8088/images/5d2f9e67.raw", "size": 16777216, "sha256": "c" * 64}


class Runner:
    def __init__(self, check_mode=False):
        self.check_mode = check_mode
        self.planned = []

    def apply(self, description, func, *args, **kwargs):
        self.planned.append(description)
        return None if self.check_mode else func(*args, **kwargs)


@pytest.fixture
def host(tmp_path):
    (tmp_path / "http" / "nodes").mkdir(parents=True)
    return {"state_dir": str(tmp_path), "http_dir": str(tmp_path / "http"), "http_url": "http://10.0.50.1:8088",
            "server_address": "10.0.50.1", "callback_port": 8089}


def jobs(settings, check_mode=False):
    provisioner = _baremetal.Provisioner(Runner(check_mode), settings=settings)
    return _baremetal.Jobs(provisioner)


def test_the_script_boots_the_ramdisk_and_names_the_callback_service(host):
    script = _baremetal.ipxe_script(host, "bm-1", "deploy")
    lines = script.splitlines()
    assert lines[0] == "#!ipxe"
    assert lines[2] == ("kernel http://10.0.50.1:8088/deploy/vmlinuz nimbus.callback=http://10.0.50.1:8089 "
                        "console=ttyS0,115200 console=tty0")
    assert lines[3] == "initrd http://10.0.50.1:8088/deploy/initrd.img"
    assert _baremetal.script_name("52:54:00:be:00:10") == "52-54-00-be-00-10.ipxe"


def test_a_job_holds_a_fresh_token_and_its_digest(host):
    first = _baremetal.new_job(RECORD, "deploy", IMAGE)
    second = _baremetal.new_job(RECORD, "deploy", IMAGE)
    assert first["token"] != second["token"] and len(first["token"]) >= 40
    assert first["token_sha256"] == hashlib.sha256(first["token"].encode()).hexdigest()
    assert (first["address"], first["macs"], first["image_size"]) == ("10.0.50.100", RECORD["macs"], "16777216")
    clean = _baremetal.new_job(RECORD, "clean")
    assert (clean["mode"], clean["image_url"], clean["image_sha256"]) == ("clean", "", "")


@pytest.mark.parametrize("result, error", [
    (None, "never reported"),
    ({"mode": "clean", "status": "ok"}, "not of this deploy"),
    ({"mode": "deploy", "status": "failed", "message": "no disk"}, "reports a failure: no disk"),
    ({"mode": "deploy", "status": "ok", "sha256": "d" * 64}, "the disk holds " + "d" * 64),
    ({"mode": "deploy", "status": "ok", "sha256": "c" * 64}, None),
])
def test_a_report_is_taken_only_when_it_did_what_was_asked(result, error):
    found = _baremetal.result_error(result, _baremetal.new_job(RECORD, "deploy", IMAGE))
    assert found == error if error is None else error in found


def test_start_writes_the_job_and_a_script_per_mac_and_end_removes_them(host):
    job = _baremetal.new_job(RECORD, "deploy", IMAGE)
    jobs(host).start(RECORD, job)
    path = os.path.join(host["state_dir"], "jobs", "bm-1.json")
    assert json.load(open(path)) == job
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    scripts = sorted(os.listdir(os.path.join(host["http_dir"], "nodes")))
    assert scripts == ["52-54-00-be-00-10.ipxe", "52-54-00-be-00-11.ipxe"]
    with open(os.path.join(host["state_dir"], "jobs", "bm-1.result.json"), "w") as f:
        json.dump({"mode": "deploy", "status": "ok"}, f)
    assert jobs(host).wait("bm-1", timeout=0)["status"] == "ok"
    jobs(host).end(RECORD)
    assert os.listdir(os.path.join(host["state_dir"], "jobs")) == []
    assert os.listdir(os.path.join(host["http_dir"], "nodes")) == []


def test_check_mode_writes_nothing(host):
    planned = jobs(host, check_mode=True)
    planned.start(RECORD, _baremetal.new_job(RECORD, "clean"))
    assert len(planned.runner.planned) == 3
    assert not os.path.exists(os.path.join(host["state_dir"], "jobs"))
    assert os.listdir(os.path.join(host["http_dir"], "nodes")) == []


def test_a_new_job_drops_the_result_of_the_last_one(host):
    os.makedirs(os.path.join(host["state_dir"], "jobs"))
    stale = os.path.join(host["state_dir"], "jobs", "bm-1.result.json")
    with open(stale, "w") as f:
        f.write("{}")
    jobs(host).start(RECORD, _baremetal.new_job(RECORD, "clean"))
    assert not os.path.exists(stale)


def test_the_wait_ends_at_its_timeout_without_a_result(host):
    now = [0.0]
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    assert jobs(host).wait("bm-1", timeout=7, sleep=sleep, clock=lambda: now[0]) is None
    assert sum(slept) >= 7 and len(slept) == 4
