"""nimbus.cloud.baremetal_node on a provisioning host's state directory (a temporary one, with the settings the
pxe role writes), against BMCs speaking IPMI 2.0 on loopback (tests/support/ipmi_bmc.py). The commands it runs
(dnsmasq's reload, dhcp_release) are answered by a table and recorded."""

import json
import os
import re
import stat
import threading
import time

import pytest
from ansible.module_utils import basic

from ansible_collections.nimbus.cloud.plugins.module_utils import _baremetal, _ipmi
from ansible_collections.nimbus.cloud.plugins.modules.baremetal_node import BaremetalNodeModule
from ansible_collections.nimbus.cloud.plugins.modules.baremetal_power import BaremetalPowerModule
from ansible_collections.nimbus.cloud.tests.unit.plugins.modules.bmc_fixture import PASSWORD, bmc_options

pytestmark = pytest.mark.skipif(_ipmi.PYGHMI_IMPORT_ERROR is not None, reason="pyghmi is not installed")

MAC = "52:54:00:aa:00:01"
RELOAD = ("systemctl", "reload-or-restart", "nimbus-pxe-dnsmasq.service")


@pytest.fixture
def host(tmp_path, monkeypatch, fake_commands):
    """A provisioning host: its settings, state directory, empty hosts and lease files, and its commands."""
    state = tmp_path / "pxe"
    state.mkdir()
    settings = {"state_dir": str(state), "hostsfile": str(state / "dhcp-hosts"), "leasefile": str(state / "leases"),
                "interface": "br-prov", "server_address": "10.0.50.1", "range_start": "10.0.50.100",
                "range_end": "10.0.50.102", "dnsmasq_unit": "nimbus-pxe-dnsmasq.service"}
    path = tmp_path / "pxe.json"
    path.write_text(json.dumps(settings))
    monkeypatch.setattr(_baremetal, "SETTINGS_FILE", str(path))
    (state / "dhcp-hosts").write_text("")
    table, calls = fake_commands
    table[RELOAD] = (0, "", "")

    class Host:
        dir = state

        @staticmethod
        def record(name):
            path = state / "nodes" / (name + ".json")
            return json.loads(path.read_text()) if path.exists() else None

        @staticmethod
        def hosts():
            return [line for line in (state / "dhcp-hosts").read_text().splitlines() if not line.startswith("#")]

        @staticmethod
        def lease(mac, address):
            with open(state / "leases", "a") as f:
                f.write("1900000000 %s %s host-%s *\n" % (mac, address, mac[-2:]))
            table[("dhcp_release", "br-prov", address, mac)] = (0, "", "")

        commands = calls

        @staticmethod
        def ran():
            return [tuple(os.path.basename(c["argv"][0]) if i == 0 else a for i, a in enumerate(c["argv"]))
                    for c in calls]

    return Host


@pytest.fixture
def warnings(monkeypatch):
    seen = []
    monkeypatch.setattr(basic.AnsibleModule, "warn", lambda self, text: seen.append(text))
    return seen


def node(run_module, check_mode=False, diff=True, fail=False, **args):
    result, failed = run_module(BaremetalNodeModule, dict({"name": "node-1"}, **args), check_mode=check_mode,
                                diff=diff)
    assert failed == fail, result
    assert PASSWORD not in json.dumps(result)
    return result


def test_the_twelve_steps_of_a_record(run_module, host):
    """Enrol, change, remove: each in check mode, for real, then both again with nothing to do."""
    enrol = {"macs": [MAC.upper()], "properties": {"cpus": 2, "memory_mb": "512"}}
    predicted = node(run_module, check_mode=True, **enrol)
    assert predicted["changed"] and predicted["node"]["address"] == "10.0.50.100"
    assert predicted["diff"]["before"] is None and predicted["diff"]["after"]["macs"] == [MAC]
    assert any("systemctl reload-or-restart" in c for c in predicted["commands"])
    assert host.record("node-1") is None and host.hosts() == [] and host.ran() == []

    made = node(run_module, **enrol)
    assert made["changed"] and made["node"]["provision_state"] == "enrolled"
    assert made["node"]["properties"] == {"cpus": 2, "memory_mb": 512}
    assert host.hosts() == [MAC + ",10.0.50.100,node-1"]
    assert host.ran() == [RELOAD]
    assert stat.S_IMODE(os.stat(host.dir / "nodes" / "node-1.json").st_mode) == 0o600
    for check_mode in (True, False):
        again = node(run_module, check_mode=check_mode, **enrol)
        assert not again["changed"] and "diff" not in again and again["node"] == made["node"]
    assert host.ran() == [RELOAD]

    changed = {"macs": [MAC, "52:54:00:aa:00:02"], "properties": {"cpus": 4}}
    predicted = node(run_module, check_mode=True, **changed)
    assert predicted["changed"] and predicted["diff"]["before"]["properties"] == {"cpus": 2, "memory_mb": 512}
    assert predicted["diff"]["after"]["properties"] == {"cpus": 4}
    assert host.record("node-1")["properties"] == {"cpus": 2, "memory_mb": 512} and host.ran() == [RELOAD]
    done = node(run_module, **changed)
    assert done["changed"] and done["node"]["address"] == "10.0.50.100" and done["node"]["uuid"] == made["node"]["uuid"]
    assert host.hosts() == [MAC + ",52:54:00:aa:00:02,10.0.50.100,node-1"]
    for check_mode in (True, False):
        assert not node(run_module, check_mode=check_mode, **changed)["changed"]
    assert host.ran() == [RELOAD, RELOAD]

    host.lease("52:54:00:aa:00:02", "10.0.50.100")
    predicted = node(run_module, check_mode=True, state="absent")
    assert predicted["changed"] and predicted["diff"]["after"] is None and "node" not in predicted
    assert host.record("node-1") is not None and host.ran() == [RELOAD, RELOAD]
    gone = node(run_module, state="absent")
    assert gone["changed"] and host.record("node-1") is None and host.hosts() == []
    assert host.ran()[2:] == [RELOAD, ("dhcp_release", "br-prov", "10.0.50.100", "52:54:00:aa:00:02")]
    for check_mode in (True, False):
        assert not node(run_module, check_mode=check_mode, state="absent")["changed"]
    assert len(host.ran()) == 4


def test_manageable_checks_the_bmc_and_records_its_state(run_module, host, start_bmc):
    bmc = start_bmc(power="off")
    predicted = node(run_module, check_mode=True, state="manageable", macs=[MAC], bmc=bmc.options())
    assert predicted["changed"] and predicted["node"]["power"] == "off" and predicted["node"]["bmc"]["port"] == bmc.port
    assert predicted["session"] == {"ipmi_version": "2.0", "cipher_suite": 3} and host.record("node-1") is None
    made = node(run_module, state="manageable", macs=[MAC], bmc=bmc.options())
    assert made["changed"] and made["node"]["provision_state"] == "manageable"
    assert (made["node"]["power"], made["drift"]) == ("off", [])
    assert "password" not in made["node"]["bmc"]
    assert host.record("node-1")["bmc"]["password"] == PASSWORD  # kept for later runs, in a 0600 file
    assert bmc.journal() == []  # read only

    # Later runs need no BMC option: the record's is used.
    again = node(run_module, state="manageable")
    assert not again["changed"] and again["drift"] == []


def test_a_power_change_behind_the_modules_back_is_reported_as_drift_and_not_corrected(
        run_module, host, start_bmc, warnings):
    bmc = start_bmc(power="off")
    node(run_module, state="manageable", macs=[MAC], bmc=bmc.options())
    result, failed = run_module(BaremetalPowerModule, {"bmc": bmc.options(), "state": "on"})
    assert not failed and result["power"] == "on"

    seen = node(run_module, state="manageable")
    assert not seen["changed"]
    assert seen["drift"] == [{"field": "power", "recorded": "off", "bmc": "on"}]
    assert warnings == ["node node-1: the BMC reports power on where the record says off (not corrected)"]
    assert host.record("node-1")["power"] == "off" and bmc.journal() == ["on"]
    # Still reported on the next run: the record is not quietly taken over.
    assert node(run_module, state="manageable", check_mode=True)["drift"] == seen["drift"]

    # A BMC given anew (its password changed) is the new baseline; the diff says the password changed, not what.
    changed = node(run_module, state="manageable", bmc=bmc.options(timeout=5))
    assert not changed["changed"] and changed["drift"] == seen["drift"]
    result = node(run_module, state="manageable", bmc=bmc.options(allow_insecure=True))
    assert result["changed"] and result["drift"] == [] and result["node"]["power"] == "on"
    assert result["diff"]["before"]["bmc"]["allow_insecure"] is False


def test_a_wrong_bmc_password_fails_clearly_and_writes_nothing(run_module, host, start_bmc):
    bmc = start_bmc()
    result = node(run_module, fail=True, state="manageable", macs=[MAC], bmc=bmc.options(password="Wrong-77"))
    assert "BMC 127.0.0.1 port %d" % bmc.port in result["msg"] and "password" in result["msg"]
    assert "Wrong-77" not in json.dumps(result)
    assert host.record("node-1") is None and host.hosts() == [] and host.ran() == []

    # An enrolled node keeps its state when the BMC refuses: nothing is half-made.
    node(run_module, macs=[MAC], bmc=bmc.options(password="Wrong-77"))
    before = host.record("node-1")
    node(run_module, fail=True, state="manageable")
    assert host.record("node-1") == before


def test_a_password_change_shows_as_such_in_the_diff(run_module, host, start_bmc):
    bmc = start_bmc()
    node(run_module, macs=[MAC], bmc=bmc.options(password="Old-Pass-1"))
    result = node(run_module, bmc=bmc.options())
    assert result["changed"]
    assert (result["diff"]["before"]["bmc"]["password"], result["diff"]["after"]["bmc"]["password"]) == (
        "(set)", "(changed)")
    assert "Old-Pass-1" not in json.dumps(result)


def test_addresses_skip_other_nodes_and_leases_of_other_macs_and_run_out(run_module, host):
    host.lease("52:54:00:bb:00:01", "10.0.50.100")  # a machine no longer enrolled still holds .100
    assert node(run_module, name="a", macs=["52:54:00:aa:00:01"])["node"]["address"] == "10.0.50.101"
    # A MAC that holds a lease gets its leased address back.
    host.lease("52:54:00:aa:00:03", "10.0.50.102")
    assert node(run_module, name="c", macs=["52:54:00:aa:00:03"])["node"]["address"] == "10.0.50.102"
    result = node(run_module, fail=True, name="b", macs=["52:54:00:aa:00:02"])
    assert "no free address left in the provisioning range 10.0.50.100-10.0.50.102" in result["msg"]
    assert host.record("b") is None and len(host.hosts()) == 2


def test_a_mac_belongs_to_one_node(run_module, host):
    node(run_module, name="a", macs=[MAC])
    result = node(run_module, fail=True, name="b", macs=["52:54:00:aa:00:09", MAC.upper()])
    assert result["msg"] == "node b: MAC %s (node a) already enrolled" % MAC
    assert host.record("b") is None and host.hosts() == [MAC + ",10.0.50.100,a"]


@pytest.mark.parametrize("args, message", [
    ({"name": "../../etc/cron.d/x", "macs": [MAC]}, "must be a DNS label"),
    ({"name": "Node_1", "macs": [MAC]}, "must be a DNS label"),
    ({"name": "a" * 64, "macs": [MAC]}, "must be a DNS label"),
    ({"name": "n\nx", "macs": [MAC]}, "must be a DNS label"),
    ({"macs": ["52:54:00:aa:00:01,set:known,10.0.0.1"]}, "is not a MAC address"),
    ({"macs": ["52:54:00:aa:00:01\n01:02:03:04:05:06"]}, "is not a MAC address"),
    ({"macs": ["01:00:5e:00:00:01"]}, "multicast or null"),
    ({"macs": ["00:00:00:00:00:00"]}, "multicast or null"),
    ({"macs": [MAC, MAC.upper()]}, "is given twice"),
    ({"macs": []}, "at least one"),
    ({}, "macs are required to enrol it"),
    ({"macs": [MAC], "properties": {"cpus": "2; reboot"}}, "positive whole number"),
    ({"macs": [MAC], "properties": {"cpus": True}}, "positive whole number"),
    ({"macs": [MAC], "properties": {"cpu_arch": "sparc"}}, "must be one of"),
    ({"macs": [MAC], "properties": {"dhcp-option": "x"}}, "is not one of"),
    ({"macs": [MAC], "state": "manageable"}, "has no BMC"),
    ({"macs": [MAC], "bmc": bmc_options(623, address="10.0.0.1;reboot")}, "neither an IP address nor a host name"),
    ({"macs": [MAC], "bmc": bmc_options(623, password="p" * 21)}, "bmc.password must be 1-20"),
])
def test_bad_input_is_refused_before_anything_is_written(run_module, host, args, message):
    result = node(run_module, fail=True, **args)
    assert message in result["msg"]
    assert host.record("node-1") is None and not (host.dir / "nodes").exists() and host.hosts() == []
    assert host.ran() == []


def test_a_host_without_the_pxe_role_is_told_so(run_module, monkeypatch, tmp_path):
    monkeypatch.setattr(_baremetal, "SETTINGS_FILE", str(tmp_path / "missing.json"))
    result = node(run_module, fail=True, macs=[MAC])
    assert "not a nimbus.cloud provisioning host (apply the nimbus.cloud.pxe role first)" in result["msg"]


def test_power_through_the_node_keeps_its_record_in_step(run_module, host, start_bmc, warnings):
    """baremetal_power with node: the record's BMC, and the record takes the state the task left (no drift)."""
    from ansible_collections.nimbus.cloud.plugins.modules.baremetal_node_info import BaremetalNodeInfoModule

    bmc = start_bmc(power="off")
    node(run_module, state="manageable", macs=[MAC], bmc=bmc.options())
    predicted, failed = run_module(BaremetalPowerModule, {"node": "node-1", "state": "on", "boot_device": "network"},
                                   check_mode=True)
    assert not failed and predicted["changed"] and host.record("node-1")["power"] == "off" and bmc.journal() == []
    result, failed = run_module(BaremetalPowerModule, {"node": "node-1", "state": "on", "boot_device": "network"})
    assert not failed and result["power"] == "on" and PASSWORD not in json.dumps(result)
    assert bmc.journal() == ["bootdev", "network", "on"]
    assert (host.record("node-1")["power"], host.record("node-1")["boot_device"]) == ("on", "network")
    again = node(run_module, state="manageable")
    assert again["drift"] == [] and warnings == []

    info, failed = run_module(BaremetalNodeInfoModule, {"node": "node-1", "sensors": False, "inventory": False})
    assert not failed and info["power"] == "on" and PASSWORD not in json.dumps(info)


@pytest.mark.parametrize("args, message", [
    ({"node": "missing"}, "node missing is not enrolled on this host"),
    ({"node": "../x"}, "must be a DNS label"),
    ({"node": "bare"}, "node bare has no BMC"),
])
def test_power_through_a_node_that_cannot_be_reached_is_refused(run_module, host, args, message):
    node(run_module, name="bare", macs=[MAC])
    result, failed = run_module(BaremetalPowerModule, dict(args, state="on"))
    assert failed and message in result["msg"]


# --- cleaning and deploying ----------------------------------------------------------------------------------

IMAGE_ID = "5d2f9e67-0c1a-4b8e-9a77-2f1c3e4d5a6b"


@pytest.fixture
def deploy_host(host, tmp_path, monkeypatch):
    """The provisioning host with its web root, callback port and an image in its cache, already converted (the
    conversion has its own tests, in module_utils/test__baremetal.py): no image store."""
    settings = json.loads((tmp_path / "pxe.json").read_text())
    settings.update(http_dir=str(host.dir / "http"), http_url="http://10.0.50.1:8088", callback_port=8089)
    (tmp_path / "pxe.json").write_text(json.dumps(settings))
    (host.dir / "http" / "nodes").mkdir(parents=True)
    cache = host.dir / "image-cache"
    (cache / ".records").mkdir(parents=True)
    (cache / IMAGE_ID).write_bytes(b"raw image")
    (cache / ".records" / (IMAGE_ID + ".json")).write_text(json.dumps({
        "id": IMAGE_ID, "name": "marker-disk", "disk_format": "raw", "size": 9, "virtual_size": 9, "checksum": "",
        "os_hash_algo": "sha512", "os_hash_value": "e" * 128, "visibility": "public"}))
    (host.dir / "images").mkdir()
    (host.dir / "images" / (IMAGE_ID + ".json")).write_text(json.dumps({
        "id": IMAGE_ID, "os_hash_value": "e" * 128, "size": 9, "sha256": "f" * 64}))
    (host.dir / "images" / (IMAGE_ID + ".raw")).write_bytes(b"raw image")
    real_wait = _baremetal.Jobs.wait

    def wait(self, name, timeout):
        return real_wait(self, name, timeout, every=0.1)

    monkeypatch.setattr(_baremetal.Jobs, "wait", wait)
    return host


class Ramdisk(threading.Thread):
    """What the node's deploy ramdisk does once the module powered it on: report (as the callback service writes
    it) and power the machine off, or take the job's next step without a reboot (fast track). ``sha256``: what
    it says it wrote; None: it never reports."""

    def __init__(self, host, bmc, sha256="f" * 64, status="ok"):
        super().__init__(daemon=True)
        self.host, self.bmc, self.sha256, self.status = host, bmc, sha256, status
        self.served = []
        self.jobs = []
        self.states = []  # the node's recorded provision_state as each job is taken

    def run(self):
        jobs, reports = self.host.dir / "jobs", self.host.dir / "reports"
        reports.mkdir(exist_ok=True)  # the pxe role's, the callback service's to write
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            job_path = jobs / "node-1.json"
            if job_path.exists() and not (reports / "node-1.result.json").exists() \
                    and self.bmc.journal()[-1:] in (["on"], ["reset"]):
                job = json.loads(job_path.read_text())
                if job["token"] in [j["token"] for j in self.jobs]:
                    continue
                self.jobs.append(job)
                link = self.host.dir / "http" / "images" / job["image_link"]
                self.served.append(os.readlink(link) if job["image_link"] else None)
                record = json.loads((self.host.dir / "nodes" / "node-1.json").read_text())
                self.states.append(record["provision_state"])
                if self.sha256 is None:
                    return
                # Uptimes as the real ramdisk marks them: a step of the running ramdisk waited for its job.
                fast_tracked = len(self.jobs) > 1 and self.jobs[-2]["next_step"]
                marks = {"wait": 11.5, "job": 12.0, "done": 14.25} if fast_tracked else {
                    "lease": 4.0, "job": 4.5, "done": 11.25}
                (reports / "node-1.result.json").write_text(json.dumps({
                    "node": "node-1", "mode": job["mode"], "status": self.status,
                    "sha256": self.sha256 if job["mode"] == "deploy" else None, "message": "done",
                    "uptime": marks["done"] + 0.25, "marks": marks}))
                if job["next_step"]:
                    continue
                self.bmc.power_off_from_inside()
                if job["mode"] == "deploy":
                    return
            time.sleep(0.05)


def test_a_node_is_cleaned_deployed_left_alone_then_cleaned_again(run_module, deploy_host, start_bmc):
    host = deploy_host
    bmc = start_bmc(power="off")
    node(run_module, state="manageable", macs=[MAC], bmc=bmc.options())

    predicted = node(run_module, check_mode=True, state="active", image="marker-disk")
    assert predicted["changed"] and predicted["steps"] == ["clean", "deploy"]
    assert predicted["node"]["provision_state"] == "active" and bmc.journal() == []
    assert not (host.dir / "jobs").exists()

    ramdisk = Ramdisk(host, bmc)
    ramdisk.start()
    before = time.time()
    deployed = node(run_module, state="active", image="marker-disk")
    ramdisk.join(5)
    assert deployed["changed"] and deployed["steps"] == ["clean", "deploy"]
    assert [j["mode"] for j in ramdisk.jobs] == ["clean", "deploy"]
    assert ramdisk.states == ["cleaning", "deploying"]
    assert re.fullmatch(r"http://10\.0\.50\.1:8088/images/[0-9a-f]{32}\.raw", ramdisk.jobs[1]["image_url"])
    # While its job lived, the deploy's link led to the raw copy; nothing is served now.
    assert ramdisk.served[1] == os.path.join(str(host.dir), "images", IMAGE_ID + ".raw")
    assert ramdisk.served[0] is None and os.listdir(host.dir / "http" / "images") == []
    assert (ramdisk.jobs[1]["image_size"], ramdisk.jobs[1]["image_sha256"]) == ("9", "f" * 64)
    shown = deployed["node"]
    assert (shown["provision_state"], shown["power"], shown["boot_device"]) == ("active", "on", "disk")
    assert shown["instance_info"]["image_id"] == IMAGE_ID and shown["last_error"] is None
    # One boot of the ramdisk cleaned and deployed (fast track): the cleaning's job named the deploy as its next
    # step, the machine was powered on once and stayed on between them.
    assert [j["next_step"] for j in ramdisk.jobs] == ["deploy", ""]
    assert bmc.journal() == ["bootdev", "network", "on", "self-off", "bootdev", "hd", "on"]
    assert set(deployed["timings"]) == {"clean", "deploy"}
    clean, deploy = deployed["timings"]["clean"], deployed["timings"]["deploy"]
    assert (clean["booted"], clean["lease_s"], clean["job_s"], clean["work_s"]) == (True, 4.0, 0.5, 6.8)
    assert before <= clean["powered_on_at"] <= time.time() and clean["firmware_s"] is not None
    # The deploy's part: the wait for its job from the cleaning's report, then the write.
    assert (deploy["booted"], deploy["powered_on_at"], deploy["firmware_s"], deploy["lease_s"]) == (
        False, None, None, None)
    assert (deploy["ramdisk_uptime_s"], deploy["job_s"], deploy["work_s"]) == (14.5, 0.5, 2.2)
    for step in (clean, deploy):
        assert step["total_s"] >= step["reported_s"] and step["after_report_s"] is not None
    # Nothing of the jobs is left: no script makes the node boot the ramdisk again.
    assert os.listdir(host.dir / "jobs") == [".lock"] and os.listdir(host.dir / "http" / "nodes") == []
    assert os.listdir(host.dir / "reports") == []
    assert bmc.journal()[-3:] == ["bootdev", "hd", "on"]

    for check_mode in (True, False):
        again = node(run_module, check_mode=check_mode, state="active", image="marker-disk")
        assert not again["changed"] and again["node"]["provision_state"] == "active"

    ramdisk = Ramdisk(host, bmc)
    ramdisk.start()
    before = len(bmc.journal())
    cleaned = node(run_module, state="available")
    ramdisk.join(5)
    # The machine was on (booted from its disk): off first, then the boot device, then on; never a reset, which
    # would keep the boot order a virtualbmc domain applies only at a power on.
    assert bmc.journal()[before:before + 4] == ["off", "bootdev", "network", "on"]
    assert "reset" not in bmc.journal()
    assert cleaned["changed"] and cleaned["steps"] == ["clean"]
    assert (cleaned["node"]["provision_state"], cleaned["node"]["power"]) == ("available", "off")
    assert cleaned["node"]["instance_info"] is None
    assert not node(run_module, state="available")["changed"]


def test_without_fast_track_the_cleaning_and_the_deploy_each_boot_the_ramdisk(run_module, deploy_host, start_bmc):
    host = deploy_host
    bmc = start_bmc(power="off")
    node(run_module, state="manageable", macs=[MAC], bmc=bmc.options())
    ramdisk = Ramdisk(host, bmc)
    ramdisk.start()
    before = time.time()
    deployed = node(run_module, state="active", image="marker-disk", fast_track=False)
    ramdisk.join(5)
    assert [(j["mode"], j["next_step"]) for j in ramdisk.jobs] == [("clean", ""), ("deploy", "")]
    # Off after the cleaning, on again for the deploy; each step's power on on the host's clock, in order.
    assert bmc.journal().count("on") == 3 and deployed["node"]["provision_state"] == "active"
    timings = deployed["timings"]
    assert timings["clean"]["booted"] and timings["deploy"]["booted"] and timings["deploy"]["lease_s"] == 4.0
    assert before <= timings["clean"]["powered_on_at"] <= timings["deploy"]["powered_on_at"] <= time.time()


def test_a_cleaning_that_fails_under_fast_track_gives_no_deploy_job(run_module, deploy_host, start_bmc):
    host = deploy_host
    bmc = start_bmc(power="off")
    node(run_module, state="manageable", macs=[MAC], bmc=bmc.options())
    ramdisk = Ramdisk(host, bmc, status="failed")
    ramdisk.start()
    failed = node(run_module, fail=True, state="active", image="marker-disk", deploy_timeout=3)
    ramdisk.join(5)
    assert "the clean failed and the machine is off" in failed["msg"]
    assert [j["mode"] for j in ramdisk.jobs] == ["clean"]
    kept = host.record("node-1")
    assert (kept["provision_state"], kept["power"]) == ("clean failed", "off")
    assert os.listdir(host.dir / "jobs") == [".lock"] and os.listdir(host.dir / "reports") == []


@pytest.mark.parametrize("sha256, status, error", [
    (None, "ok", "never reported"),
    ("0" * 64, "ok", "the disk holds " + "0" * 64),
    ("f" * 64, "failed", "reports a failure"),
])
def test_a_deploy_that_fails_leaves_the_node_off_with_its_error(run_module, deploy_host, start_bmc, sha256, status,
                                                                error):
    host = deploy_host
    bmc = start_bmc(power="off")
    node(run_module, state="manageable", macs=[MAC], bmc=bmc.options())
    record = host.record("node-1")
    record["provision_state"] = "available"
    (host.dir / "nodes" / "node-1.json").write_text(json.dumps(record))
    ramdisk = Ramdisk(host, bmc, sha256=sha256, status=status)
    ramdisk.start()
    failed = node(run_module, fail=True, state="active", image="marker-disk", deploy_timeout=3)
    ramdisk.join(5)
    assert error in failed["msg"] and "the machine is off" in failed["msg"]
    kept = host.record("node-1")
    assert kept["provision_state"] == "deploy failed" and error in kept["last_error"] and kept["power"] == "off"
    assert os.listdir(host.dir / "jobs") == [".lock"] and os.listdir(host.dir / "http" / "nodes") == []
    assert os.listdir(host.dir / "reports") == []


@pytest.mark.parametrize("args, message", [
    ({"state": "active"}, "image is required with state active"),
    ({"state": "available", "image": "marker-disk"}, "taken with no other state"),
    ({"state": "available", "root_device": "/dev/sda; reboot"}, "must be a whole disk"),
    ({"state": "available", "root_device": "../../etc/passwd"}, "must be a whole disk"),
    ({"state": "available", "deploy_timeout": 0}, "deploy_timeout must be a positive"),
])
def test_provisioning_arguments_are_checked_before_anything(run_module, deploy_host, args, message):
    failed = node(run_module, fail=True, macs=[MAC], **args)
    assert message in failed["msg"] and deploy_host.record("node-1") is None
