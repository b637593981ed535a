"""A node's deploy and cleaning jobs on a provisioning host (module_utils/_baremetal.py): the iPXE script, the
job and its token, the ramdisk's report, and the files written and removed (gated in check mode)."""

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess

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
                        "console=tty0 console=ttyS0,115200")
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
    assert os.listdir(os.path.join(host["state_dir"], "jobs")) == [".lock"]  # the lock the callback service shares
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
    assert sum(slept) >= 7 and len(slept) == 14  # every half second


def test_a_steps_time_is_split_by_the_ramdisks_marks():
    result = {"uptime": 30.0, "marks": {"lease": 12.25, "job": 12.5, "done": 29.75}}
    assert _baremetal.step_timings(71.44, 75.91, result, 1796300000.12345) == {
        "total_s": 75.9, "reported_s": 71.4, "ramdisk_uptime_s": 30.0, "firmware_s": 41.4, "lease_s": 12.25,
        "job_s": 0.2, "work_s": 17.2, "after_report_s": 4.5, "powered_on_at": 1796300000.123}
    # A ramdisk that reported no marks (or no report at all): those parts are unknown.
    assert _baremetal.step_timings(10, 12, {"uptime": 8.0}) == {
        "total_s": 12, "reported_s": 10, "ramdisk_uptime_s": 8.0, "firmware_s": 2.0, "lease_s": None,
        "job_s": None, "work_s": None, "after_report_s": 2, "powered_on_at": None}
    assert _baremetal.step_timings(10, 12, None)["firmware_s"] is None


# --- images made ready for deploys -----------------------------------------------------------------------------

STORE_URL = "http://10.0.40.5:9292"
DEPLOY_IMAGE_ID = "0b7d3c1e-6f2a-4c59-8e0d-9a1b2c3d4e5f"


class Module:
    """What the command runner needs of AnsibleModule, running the real programs (qemu-img, prlimit)."""

    def __init__(self, check_mode=False):
        self.check_mode = check_mode

    @staticmethod
    def get_bin_path(name, required=False, opt_dirs=None):
        return shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")

    @staticmethod
    def run_command(args, data=None, environ_update=None, check_rc=False, binary_data=False):
        done = subprocess.run(args, capture_output=True, text=True, check=False,
                              env=dict(os.environ, **(environ_update or {})))
        return done.returncode, done.stdout, done.stderr


@pytest.fixture
def store(tmp_path):
    """An image store's files (a qcow2 image and its record) and an opener that reads them as the store's web
    server would serve them; ``got`` records every path asked for."""
    directory = tmp_path / "store"
    directory.mkdir()
    raw = tmp_path / "source.raw"
    raw.write_bytes(b"NIMBUS!!" * 65536 + bytes(1 << 20))  # whole sectors, as a disk is
    qcow2 = directory / DEPLOY_IMAGE_ID
    subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(qcow2)], check=True)
    record = {"id": DEPLOY_IMAGE_ID, "name": "debian-12", "disk_format": "qcow2", "size": qcow2.stat().st_size,
              "virtual_size": raw.stat().st_size, "checksum": "", "os_hash_algo": "sha512",
              "os_hash_value": hashlib.sha512(qcow2.read_bytes()).hexdigest(), "visibility": "public"}
    (directory / (DEPLOY_IMAGE_ID + ".json")).write_text(json.dumps(record))
    (directory / "index.json").write_text(json.dumps({"images": [record]}))
    got = []

    def opener(url, timeout):
        assert url.startswith(STORE_URL + "/")
        got.append(url[len(STORE_URL) + 1:])
        return open(directory / url[len(STORE_URL) + 1:], "rb")

    return {"dir": directory, "raw": raw, "record": record, "opener": opener, "got": got}


def deploy_images(settings, store, check_mode=False):
    from ansible_collections.nimbus.cloud.plugins.module_utils._runner import CommandRunner

    settings = dict(settings, image_store_url=STORE_URL)
    provisioner = _baremetal.Provisioner(CommandRunner(Module(check_mode)), settings=settings)
    return _baremetal.DeployImages(provisioner, opener=store["opener"])


def test_an_image_is_pulled_and_converted_once_to_raw_with_its_size_and_sha256(host, store):
    record, ready = deploy_images(host, store).prepare("debian-12", "ops")
    raw_copy = os.path.join(host["http_dir"], "images", DEPLOY_IMAGE_ID + ".raw")
    assert record.id == DEPLOY_IMAGE_ID
    # The raw copy holds the disk the qcow2 image holds, byte for byte.
    with open(raw_copy, "rb") as f:
        assert f.read() == store["raw"].read_bytes()
    assert ready == {"url": "http://10.0.50.1:8088/images/%s.raw" % DEPLOY_IMAGE_ID,
                     "size": store["raw"].stat().st_size,
                     "sha256": hashlib.sha256(store["raw"].read_bytes()).hexdigest()}
    # The web server (www-data) reads the copy; the size and sha256 the ramdisk is checked against are root's.
    assert stat.S_IMODE(os.stat(raw_copy).st_mode) == 0o644
    meta = os.path.join(host["state_dir"], "images", DEPLOY_IMAGE_ID + ".json")
    assert stat.S_IMODE(os.stat(meta).st_mode) == 0o600
    assert not [n for n in os.listdir(os.path.dirname(raw_copy)) if n.startswith(".")]
    # Asked again: nothing pulled, nothing converted.
    before = os.stat(raw_copy).st_mtime_ns
    store["got"].clear()
    assert deploy_images(host, store).prepare(DEPLOY_IMAGE_ID, None)[1] == ready
    assert DEPLOY_IMAGE_ID not in store["got"] and os.stat(raw_copy).st_mtime_ns == before


def test_check_mode_pulls_and_converts_nothing(host, store):
    record, ready = deploy_images(host, store, check_mode=True).prepare("debian-12", None)
    assert record.id == DEPLOY_IMAGE_ID and ready is None
    assert DEPLOY_IMAGE_ID not in store["got"]
    assert not os.path.exists(os.path.join(host["http_dir"], "images"))


def test_an_image_changed_in_the_store_is_converted_again(host, store):
    deploy_images(host, store).prepare("debian-12", None)
    # The store's image replaced (its sha512 changed): the raw copy follows it.
    store["raw"].write_bytes(b"OTHER!!!" * 131072)
    qcow2 = store["dir"] / DEPLOY_IMAGE_ID
    subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(store["raw"]), str(qcow2)],
                   check=True)
    record = dict(store["record"], size=qcow2.stat().st_size, virtual_size=store["raw"].stat().st_size,
                  os_hash_value=hashlib.sha512(qcow2.read_bytes()).hexdigest())
    (store["dir"] / (DEPLOY_IMAGE_ID + ".json")).write_text(json.dumps(record))
    ready = deploy_images(host, store).prepare(DEPLOY_IMAGE_ID, None)[1]
    assert ready["sha256"] == hashlib.sha256(store["raw"].read_bytes()).hexdigest()


def test_an_image_whose_data_is_not_the_stores_record_is_refused_and_nothing_is_left(host, store):
    (store["dir"] / DEPLOY_IMAGE_ID).write_bytes(b"not the image the record names")
    with pytest.raises(_baremetal.NimbusError, match="its sha512 is .* the store's record says .* refused"):
        deploy_images(host, store).prepare("debian-12", None)
    assert not os.path.exists(os.path.join(host["http_dir"], "images", DEPLOY_IMAGE_ID + ".raw"))
    assert not os.path.exists(os.path.join(host["state_dir"], "images", DEPLOY_IMAGE_ID + ".json"))


def test_an_image_another_project_keeps_private_is_not_found(host, store):
    record = dict(store["record"], visibility="private", project="other")
    (store["dir"] / "index.json").write_text(json.dumps({"images": [record]}))
    (store["dir"] / (DEPLOY_IMAGE_ID + ".json")).write_text(json.dumps(record))
    for image in ("debian-12", DEPLOY_IMAGE_ID):
        with pytest.raises(_baremetal.NimbusError, match="not found"):
            deploy_images(host, store).prepare(image, "ops")


def _everything_under(path):
    return sorted(os.path.relpath(os.path.join(d, f), path) for d, _dirs, files in os.walk(path) for f in files)


@pytest.mark.parametrize("change, refused", [
    ({"id": "../../../../etc/cron.d/nimbus"}, "id that is not a UUID"),
    ({"id": DEPLOY_IMAGE_ID.upper()}, "id that is not a UUID"),
    ({"disk_format": "vmdk"}, "disk_format 'vmdk', not one of qcow2, raw"),
    ({"os_hash_value": "../x"}, "no sha512"),
    ({"name": ["debian-12"]}, "no name"),
])
def test_a_store_record_that_would_name_a_path_or_a_format_is_refused_with_nothing_written(
        host, store, tmp_path, change, refused):
    """The store's record is another host's data: its id names the cached file and the raw copy, its format is
    qemu-img's input. A record asked for by name (the index) or by id alike."""
    record = dict(store["record"], **change)
    if "name" in change:  # asked for by id: the index would not find it by name
        (store["dir"] / (DEPLOY_IMAGE_ID + ".json")).write_text(json.dumps(record))
        asked = DEPLOY_IMAGE_ID
    else:
        (store["dir"] / "index.json").write_text(json.dumps({"images": [record]}))
        asked = "debian-12"
    before = _everything_under(tmp_path)
    with pytest.raises(_baremetal.NimbusError, match=re.escape(refused) + ".*refused"):
        deploy_images(host, store).prepare(asked, None)
    assert _everything_under(tmp_path) == before
    assert [path for path in store["got"] if not path.endswith(".json")] == []


def test_a_store_that_answers_for_another_image_is_refused(host, store):
    other = "0b7e8f3c-6a61-4d0e-9a4b-3f1f2a7c9d10"
    (store["dir"] / (other + ".json")).write_text(json.dumps(store["record"]))
    with pytest.raises(_baremetal.NimbusError, match="answered for image %s with the record of %s: refused"
                       % (other, DEPLOY_IMAGE_ID)):
        deploy_images(host, store).prepare(other, None)


def test_the_raw_copy_is_made_from_the_format_the_data_was_pulled_as(host, store):
    """The cached data was checked as qcow2 when it was pulled; a record that later says raw (same sha512: the
    same data) does not make qemu-img read the qcow2 container as a disk."""
    record, ready = deploy_images(host, store).prepare("debian-12", None)
    raw_copy = os.path.join(host["http_dir"], "images", DEPLOY_IMAGE_ID + ".raw")
    os.unlink(raw_copy)
    os.unlink(os.path.join(host["state_dir"], "images", DEPLOY_IMAGE_ID + ".json"))
    (store["dir"] / "index.json").write_text(json.dumps({"images": [dict(store["record"], disk_format="raw")]}))
    again = deploy_images(host, store).prepare("debian-12", None)[1]
    assert again == ready
    with open(raw_copy, "rb") as f:
        assert f.read() == store["raw"].read_bytes()
