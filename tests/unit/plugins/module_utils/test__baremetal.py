"""A node's deploy and cleaning jobs on a provisioning host (module_utils/_baremetal.py): the iPXE script, the
job and its token, the ramdisk's report, and the files written and removed (gated in check mode)."""

import grp
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
IMAGE = {"path": "/var/lib/nimbus/pxe/images/5d2f9e67-0d6c-4c2e-9a51-1f0e7c2d3b4a.raw", "size": 16777216,
         "sha256": "c" * 64}


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
    first = _baremetal.new_job(host, RECORD, "deploy", IMAGE)
    second = _baremetal.new_job(host, RECORD, "deploy", IMAGE)
    assert first["token"] != second["token"] and len(first["token"]) >= 40
    assert first["token_sha256"] == hashlib.sha256(first["token"].encode()).hexdigest()
    assert (first["address"], first["macs"], first["image_size"]) == ("10.0.50.100", RECORD["macs"], "16777216")
    # Each deploy serves its image under a name of its own, which nobody can guess.
    assert re.fullmatch(r"http://10\.0\.50\.1:8088/images/[0-9a-f]{32}\.raw", first["image_url"])
    assert first["image_url"].endswith("/" + first["image_link"]) and first["image_link"] != second["image_link"]
    clean = _baremetal.new_job(host, RECORD, "clean")
    assert (clean["mode"], clean["image_url"], clean["image_sha256"], clean["image_link"]) == ("clean", "", "", "")
    assert clean["next_step"] == "" and _baremetal.new_job(host, RECORD, "clean", next_step="deploy")["next_step"] \
        == "deploy"


@pytest.mark.parametrize("result, error", [
    (None, "never reported"),
    ({"mode": "clean", "status": "ok"}, "not of this deploy"),
    ({"mode": "deploy", "status": "failed", "message": "no disk"}, "reports a failure: no disk"),
    ({"mode": "deploy", "status": "ok", "sha256": "d" * 64}, "the disk holds " + "d" * 64),
    ({"mode": "deploy", "status": "ok", "sha256": "c" * 64}, None),
])
def test_a_report_is_taken_only_when_it_did_what_was_asked(host, result, error):
    found = _baremetal.result_error(result, _baremetal.new_job(host, RECORD, "deploy", IMAGE))
    assert found == error if error is None else error in found


def test_start_writes_the_job_and_a_script_per_mac_and_end_removes_them(host):
    job = _baremetal.new_job(host, RECORD, "deploy", IMAGE)
    jobs(host).start(RECORD, job)
    path = os.path.join(host["state_dir"], "jobs", "bm-1.json")
    assert json.load(open(path)) == job
    # Root's, the callback service's group's to read (here, with no group in the settings, the owner's own).
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640 and os.stat(path).st_gid == os.getgid()
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o750
    scripts = sorted(os.listdir(os.path.join(host["http_dir"], "nodes")))
    assert scripts == ["52-54-00-be-00-10.ipxe", "52-54-00-be-00-11.ipxe"]
    reports = os.path.join(host["state_dir"], "reports")
    os.makedirs(reports)
    for name, report in (("bm-1.result.json", {"mode": "deploy", "status": "ok"}), ("bm-1.issued.json", {})):
        with open(os.path.join(reports, name), "w") as f:
            json.dump(report, f)
    assert jobs(host).wait("bm-1", timeout=0)["status"] == "ok"
    jobs(host).end(RECORD)
    assert os.listdir(os.path.join(host["state_dir"], "jobs")) == [".lock"]  # the lock the callback service shares
    assert os.listdir(os.path.join(host["http_dir"], "nodes")) == [] and os.listdir(reports) == []


def _plant(path, kind):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if kind == "link":
        os.symlink("/etc/shadow" if os.path.exists("/etc/shadow") else "/etc/passwd", path)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "large":
        with open(path, "w") as f:
            f.write("{" + " " * 70000 + "}")
    else:
        with open(path, "w") as f:
            f.write('["not", "a", "report"]')


@pytest.mark.parametrize("kind, refused", [
    ("link", "cannot be read"),
    ("fifo", "not a regular file"),
    ("large", "not a regular file of 65536 bytes at most"),
    ("list", "not a JSON object"),
])
def test_a_report_the_callback_service_could_not_have_written_is_not_taken(host, kind, refused):
    """The reports directory is the callback service's user's: whatever is planted there, root never follows a
    link out of it, never hangs on a FIFO, never reads more than a report's size."""
    path = os.path.join(host["state_dir"], "reports", "bm-1.result.json")
    _plant(path, kind)
    with pytest.raises(_baremetal.NimbusError, match=re.escape(refused)):
        jobs(host).wait("bm-1", timeout=0)
    # The run's end removes it (unlinked, never followed) with the rest of the job.
    jobs(host).end(RECORD)
    assert not os.path.lexists(path)


def test_a_deploys_image_is_served_only_while_its_job_lives(host, tmp_path):
    raw = tmp_path / "images" / "5d2f9e67-0d6c-4c2e-9a51-1f0e7c2d3b4a.raw"
    raw.parent.mkdir()
    raw.write_bytes(b"DISK" * 1024)
    served = os.path.join(host["http_dir"], "images")
    job = _baremetal.new_job(host, RECORD, "deploy", dict(IMAGE, path=str(raw)))
    jobs(host).start(RECORD, job)
    assert os.listdir(served) == [job["image_link"]]
    with open(os.path.join(served, job["image_link"]), "rb") as f:
        assert f.read() == raw.read_bytes()
    # A cleaning of another node meanwhile leaves the deploy's link alone.
    other = dict(RECORD, name="bm-2", macs=["52:54:00:be:00:20"])
    jobs(host).start(other, _baremetal.new_job(host, other, "clean"))
    jobs(host).end(other)
    assert os.listdir(served) == [job["image_link"]]
    jobs(host).end(RECORD)
    assert os.listdir(served) == [] and raw.exists()


def test_what_no_live_job_names_is_served_no_more(host, tmp_path):
    """A killed run's link, a job too old for the callback service to hand out, and a raw copy an older version
    kept in the web server's root: the next start or end removes them."""
    served = os.path.join(host["http_dir"], "images")
    os.makedirs(served)
    old_copy = os.path.join(served, "5d2f9e67-0d6c-4c2e-9a51-1f0e7c2d3b4a.raw")
    open(old_copy, "w").close()
    killed = _baremetal.new_job(host, dict(RECORD, name="bm-3"), "deploy", dict(IMAGE, path=old_copy))
    jobs(host).start(dict(RECORD, name="bm-3", macs=["52:54:00:be:00:30"]), killed)
    stale = _baremetal.new_job(host, dict(RECORD, name="bm-4"), "deploy", dict(IMAGE, path=old_copy))
    stale["created_at"] = "2026-01-01T00:00:00Z"
    jobs(host).start(dict(RECORD, name="bm-4", macs=["52:54:00:be:00:40"]), stale)
    # Only the live job's link is left.
    assert sorted(os.listdir(served)) == [killed["image_link"]]
    assert _baremetal.job_age({"created_at": "not a time"}) == float("inf")


def test_check_mode_writes_nothing(host):
    planned = jobs(host, check_mode=True)
    planned.start(RECORD, _baremetal.new_job(host, RECORD, "deploy", IMAGE))
    assert len(planned.runner.planned) == 3
    assert not os.path.exists(os.path.join(host["state_dir"], "jobs"))
    assert not os.path.exists(os.path.join(host["http_dir"], "images"))
    assert os.listdir(os.path.join(host["http_dir"], "nodes")) == []


def test_a_new_job_drops_the_reports_of_the_last_one(host):
    os.makedirs(os.path.join(host["state_dir"], "reports"))
    stale = [os.path.join(host["state_dir"], "reports", "bm-1" + suffix)
             for suffix in (".result.json", ".issued.json")]
    for path in stale:
        with open(path, "w") as f:
            f.write("{}")
    jobs(host).start(RECORD, _baremetal.new_job(host, RECORD, "clean"))
    assert not [path for path in stale if os.path.exists(path)]


def test_the_job_is_given_the_callback_services_group_which_must_exist(host):
    group = grp.getgrgid(os.getgid()).gr_name
    jobs(dict(host, callback_group=group)).start(RECORD, _baremetal.new_job(host, RECORD, "clean"))
    assert os.stat(os.path.join(host["state_dir"], "jobs", "bm-1.json")).st_gid == os.getgid()
    with pytest.raises(_baremetal.NimbusError, match="group nimbus-no-such-group is missing"):
        jobs(dict(host, callback_group="nimbus-no-such-group")).start(
            RECORD, _baremetal.new_job(host, RECORD, "clean"))


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
        "job_s": 0.2, "work_s": 17.2, "after_report_s": 4.5, "powered_on_at": 1796300000.123, "booted": True}
    # A step the running ramdisk took on (fast track): no firmware, no lease; its job came after a wait.
    fast = {"uptime": 33.0, "marks": {"wait": 30.0, "job": 30.75, "done": 32.9}}
    assert _baremetal.step_timings(3.1, 3.9, fast, booted=False) == {
        "total_s": 3.9, "reported_s": 3.1, "ramdisk_uptime_s": 33.0, "firmware_s": None, "lease_s": None,
        "job_s": 0.8, "work_s": 2.1, "after_report_s": 0.8, "powered_on_at": None, "booted": False}
    # A ramdisk that reported no marks (or no report at all): those parts are unknown.
    assert _baremetal.step_timings(10, 12, {"uptime": 8.0}) == {
        "total_s": 12, "reported_s": 10, "ramdisk_uptime_s": 8.0, "firmware_s": 2.0, "lease_s": None,
        "job_s": None, "work_s": None, "after_report_s": 2, "powered_on_at": None, "booted": True}
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
    raw_copy = os.path.join(host["state_dir"], "images", DEPLOY_IMAGE_ID + ".raw")
    assert record.id == DEPLOY_IMAGE_ID
    # The raw copy holds the disk the qcow2 image holds, byte for byte.
    with open(raw_copy, "rb") as f:
        assert f.read() == store["raw"].read_bytes()
    assert ready == {"path": raw_copy, "size": store["raw"].stat().st_size,
                     "sha256": hashlib.sha256(store["raw"].read_bytes()).hexdigest()}
    # The web server (www-data) reads the copy through a deploy's link, never lists the directory; the size and
    # sha256 the ramdisk is checked against are root's. Nothing is served before a deploy.
    assert stat.S_IMODE(os.stat(raw_copy).st_mode) == 0o644
    assert stat.S_IMODE(os.stat(os.path.dirname(raw_copy)).st_mode) == 0o711
    meta = os.path.join(host["state_dir"], "images", DEPLOY_IMAGE_ID + ".json")
    assert stat.S_IMODE(os.stat(meta).st_mode) == 0o600
    assert not os.path.exists(os.path.join(host["http_dir"], "images"))
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
    assert not os.path.exists(os.path.join(host["state_dir"], "images"))


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
    assert not os.path.exists(os.path.join(host["state_dir"], "images", DEPLOY_IMAGE_ID + ".raw"))
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
    raw_copy = os.path.join(host["state_dir"], "images", DEPLOY_IMAGE_ID + ".raw")
    os.unlink(raw_copy)
    os.unlink(os.path.join(host["state_dir"], "images", DEPLOY_IMAGE_ID + ".json"))
    (store["dir"] / "index.json").write_text(json.dumps({"images": [dict(store["record"], disk_format="raw")]}))
    again = deploy_images(host, store).prepare("debian-12", None)[1]
    assert again == ready
    with open(raw_copy, "rb") as f:
        assert f.read() == store["raw"].read_bytes()


def test_a_raw_copy_that_went_missing_is_made_again(host, store):
    ready = deploy_images(host, store).prepare("debian-12", None)[1]
    os.unlink(ready["path"])
    assert deploy_images(host, store).prepare("debian-12", None)[1] == ready
    with open(ready["path"], "rb") as f:
        assert f.read() == store["raw"].read_bytes()
