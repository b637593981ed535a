import json
import os
import stat
import types
import xml.etree.ElementTree as ET

import pytest

from ansible_collections.nimbus.cloud.plugins.module_utils import _libvirt
from ansible_collections.nimbus.cloud.plugins.module_utils._compute import (
    Flavor,
    Instance,
    Nic,
    Seed,
    Spec,
    VolumeDisk,
    build_domain_xml,
    parse_domain_xml,
    plan,
)
from ansible_collections.nimbus.cloud.plugins.module_utils._errors import CommandError, NimbusError, ValidationError
from ansible_collections.nimbus.cloud.plugins.module_utils._libvirt import (
    ACTION_RESULTS,
    ACTIONS,
    GIB,
    capacity,
    check_feasible,
    converge,
    run_action,
)
from ansible_collections.nimbus.cloud.plugins.module_utils._runner import CommandRunner
from ansible_collections.nimbus.cloud.tests.unit.plugins.modules import fake_libvirt

U1 = "6f1c1f0e-8a7b-4b8e-9a57-0d0c0e6a7c11"
PATHS = {"dir": "/srv/instances/web1", "root_disk": "/srv/instances/web1/disk.qcow2",
         "seed": "/srv/instances/web1/seed.iso", "console_log": "/srv/instances/web1/console.log"}
SMALL = Flavor(1, 1024, 10, "m1.small")
SEED = Seed("web1", "#cloud-config\n{}\n")
IMAGE = {"path": "/srv/images/debian-12.qcow2", "format": "qcow2", "virtual_size": 2 * GIB}


# --- capacity ---------------------------------------------------------------

@pytest.mark.parametrize("total, reserved, ratio, used, cap", [
    (8, 0, 4.0, 3, 32),
    (16000, 512, 1.0, 2048, 15488),
    (10, 1, 1.5, 0, 13),
    (7, 0, 0.5, 0, 3),
    (100, 0, 1, 20, 100),
    (0, 0, 16.0, 0, 0),
    # As the scheduler reads them: binary floating point would give 114 and 28.
    (100, 0, 1.15, 0, 115),
    (100, 0, 0.29, 0, 29),
    # Over-committed by hand: free goes negative rather than hiding it.
    (4, 0, 1.0, 6, 4),
])
def test_capacity(total, reserved, ratio, used, cap):
    assert capacity(total, reserved, ratio, used) == {"total": total, "reserved": reserved, "ratio": ratio,
                                                      "capacity": cap, "used": used, "free": cap - used}


# --- actions ----------------------------------------------------------------

class ActionRunner:
    def __init__(self, calls, check_mode):
        self.calls = calls
        self.check_mode = check_mode

    def apply(self, description, func, *args):
        self.calls.append(("apply", description))
        if not self.check_mode:
            func(*args)


class ActionHv:
    def __init__(self, saved=False, check_mode=False):
        self.calls = []
        self.saved = saved
        self.runner = ActionRunner(self.calls, check_mode)

    def start(self, name):
        self.calls.append(("start", name))

    def stop(self, name, timeout):
        self.calls.append(("stop", name, timeout))

    def domain_call(self, what, name, method, *args):
        self.calls.append(("domain_call", what, name, method) + args)

    def has_managed_save(self, name):
        return self.saved


def inst(state):
    return Instance(name="web1", uuid=U1, state=state, virt_type="kvm", vcpus=1, ram_mb=512)


# state, managed save image, action, reboot type, calls
ACTING = [
    ("shutoff", False, "start", "soft", [("start", "web1")]),
    ("crashed", False, "start", "soft", [("start", "web1")]),
    ("running", False, "shutdown", "soft", [("stop", "web1", 30)]),
    ("shutdown", False, "shutdown", "soft", [("stop", "web1", 30)]),
    ("pmsuspended", False, "shutdown", "soft", [("stop", "web1", 30)]),
    ("running", False, "reboot", "soft", [("apply", "soft reboot web1"),
                                          ("domain_call", "reboot", "web1", "reboot", 0)]),
    ("blocked", False, "reboot", "hard", [("apply", "hard reboot web1"),
                                          ("domain_call", "reboot", "web1", "reset", 0)]),
    ("running", False, "pause", "soft", [("apply", "pause web1"), ("domain_call", "pause", "web1", "suspend")]),
    ("paused", False, "unpause", "soft", [("apply", "unpause web1"), ("domain_call", "unpause", "web1", "resume")]),
    ("running", False, "suspend", "soft", [("apply", "suspend web1"),
                                           ("domain_call", "suspend", "web1", "managedSave")]),
    ("paused", False, "suspend", "soft", [("apply", "suspend web1"),
                                          ("domain_call", "suspend", "web1", "managedSave")]),
    ("shutoff", True, "resume", "soft", [("start", "web1")]),
    ("paused", False, "resume", "soft", [("apply", "resume web1"), ("domain_call", "resume", "web1", "resume")]),
    ("pmsuspended", False, "resume", "soft", [("apply", "wake web1"),
                                              ("domain_call", "wake", "web1", "pMWakeup", 0)]),
]


@pytest.mark.parametrize("state, saved, action, reboot_type, calls", ACTING,
                         ids=["%s-%s" % (row[2], row[0]) for row in ACTING])
def test_run_action(state, saved, action, reboot_type, calls):
    hv = ActionHv(saved=saved)
    assert run_action(hv, inst(state), action, reboot_type, shutdown_timeout=30) is True
    assert hv.calls == calls


@pytest.mark.parametrize("state, saved, action", [
    ("running", False, "start"),
    ("blocked", False, "start"),
    ("shutoff", False, "shutdown"),
    ("paused", False, "pause"),
    ("running", False, "unpause"),
    ("shutoff", True, "suspend"),
    ("running", False, "resume"),
    ("blocked", False, "resume"),
])
def test_run_action_already_done(state, saved, action):
    hv = ActionHv(saved=saved)
    assert run_action(hv, inst(state), action) is False
    assert hv.calls == []


@pytest.mark.parametrize("state, saved, action, message", [
    ("shutoff", False, "reboot", "cannot reboot instance web1 while it is shutoff"),
    ("paused", False, "reboot", "cannot reboot instance web1 while it is paused"),
    ("paused", False, "start", "cannot start instance web1 while it is paused"),
    ("shutoff", False, "pause", "cannot pause instance web1 while it is shutoff"),
    ("shutoff", False, "unpause", "cannot unpause instance web1 while it is shutoff"),
    ("shutoff", False, "suspend", "cannot suspend instance web1 while it is shutoff"),
    ("crashed", False, "resume", "cannot resume instance web1 while it is crashed"),
    ("shutoff", False, "resume", "cannot resume instance web1: it is shut off and was not suspended"),
])
def test_run_action_refuses(state, saved, action, message):
    hv = ActionHv(saved=saved)
    with pytest.raises(ValidationError, match=message):
        run_action(hv, inst(state), action)
    assert hv.calls == []


@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_every_action_predicts_a_state_it_can_act_from_or_is_done_in(action):
    acts_from, done_in, how = ACTIONS[action]
    assert set(acts_from).isdisjoint(done_in)
    result = ACTION_RESULTS[action]
    assert result in done_in or action in ("reboot", "suspend")


def test_run_action_in_check_mode_goes_through_the_gate():
    hv = ActionHv(check_mode=True)
    assert run_action(hv, inst("running"), "pause") is True
    assert hv.calls == [("apply", "pause web1")]


# --- feasibility ------------------------------------------------------------

class FeasibleHv:
    def __init__(self, memory_mb=4096, macs=None):
        self.memory_mb = memory_mb
        self.macs = macs or {}
        self.excluded = []

    def host_info(self):
        return {"model": "x86_64", "memory_mb": self.memory_mb, "cpus": 4}

    def macs_in_use(self, exclude=None):
        self.excluded.append(exclude)
        return {mac: name for mac, name in self.macs.items() if name != exclude}


@pytest.fixture
def bridges(monkeypatch):
    present = {"br0", "br1"}
    isdir = os.path.isdir

    def fake_isdir(path):
        if path.startswith("/sys/class/net/"):
            return path.split("/")[4] in present and path.endswith("/bridge")
        return isdir(path)

    monkeypatch.setattr(_libvirt.os.path, "isdir", fake_isdir)
    return present


def after_of(**changes):
    fields = dict(name="web1", flavor=SMALL, image="debian-12.qcow2", nics=[Nic("br0", "52:54:00:00:00:01")])
    fields.update(changes)
    return plan(Spec(**fields), None, "kvm", U1, PATHS).after


@pytest.fixture
def boot_files(tmp_path):
    (tmp_path / "vmlinuz").write_bytes(b"kernel")
    (tmp_path / "initrd.img").write_bytes(b"initrd")
    return str(tmp_path / "vmlinuz"), str(tmp_path / "initrd.img")


@pytest.mark.parametrize("changes, image, memory_mb, macs", [
    ({}, IMAGE, 4096, {}),
    ({}, IMAGE, 1024, {}),
    ({"flavor": Flavor(1, 1024, 0)}, dict(IMAGE, virtual_size=500 * GIB), 4096, {}),
    ({}, dict(IMAGE, virtual_size=10 * GIB), 4096, {}),
    ({}, None, 4096, {"52:54:00:00:00:01": "web1"}),
    ({"nics": [Nic("br0"), Nic("br1")]}, IMAGE, 4096, {"52:54:00:00:00:01": "db1"}),
], ids=["fits", "all of the host's memory", "disk_gb 0 takes the image's size", "image as big as the disk",
        "its own MAC", "derived MACs"])
def test_check_feasible_accepts(bridges, changes, image, memory_mb, macs):
    hv = FeasibleHv(memory_mb, macs)
    check_feasible(hv, Spec(name="web1"), after_of(**changes), image)
    assert hv.excluded == ["web1"]


@pytest.mark.parametrize("changes, image, message", [
    ({"flavor": Flavor(1, 4097, 10)}, IMAGE, "instance web1: ram_mb 4097 is more than this hypervisor's 4096 MiB"),
    ({}, dict(IMAGE, virtual_size=10 * GIB + 1), "image debian-12.qcow2 is 10.0 GiB, larger than the flavor's "
                                                 "disk_gb 10"),
    ({"nics": [Nic("br0", "52:54:00:00:00:02")]}, IMAGE, "MAC 52:54:00:00:00:02 is already used by instance db1"),
    ({"nics": [Nic("br0"), Nic("br9")]}, IMAGE, "instance web1: bridge br9 does not exist on this hypervisor"),
    ({"nics": [Nic("eth0")]}, IMAGE, "bridge eth0 does not exist"),
    ({"kernel": "/nonexistent/vmlinuz"}, IMAGE, "instance web1: kernel /nonexistent/vmlinuz does not exist"),
    ({"kernel": "KERNEL", "initrd": "/nonexistent/initrd"}, IMAGE, "initrd /nonexistent/initrd does not exist"),
    ({"initrd": "INITRD"}, IMAGE, "instance web1: initrd needs kernel"),
], ids=["RAM", "image bigger than disk", "MAC in use", "missing bridge", "not a bridge", "kernel", "initrd",
        "initrd without kernel"])
def test_check_feasible_refuses(bridges, boot_files, changes, image, message):
    kernel, initrd = boot_files
    # Real boot files exist only under tmp_path, so the table names them by placeholder.
    changes = {k: {"KERNEL": kernel, "INITRD": initrd}.get(v, v) if isinstance(v, str) else v
               for k, v in changes.items()}
    hv = FeasibleHv(macs={"52:54:00:00:00:02": "db1"})
    with pytest.raises(ValidationError, match=message):
        check_feasible(hv, Spec(name="web1"), after_of(**changes), image)


def test_check_feasible_accepts_direct_kernel_boot(bridges, boot_files):
    kernel, initrd = boot_files
    check_feasible(FeasibleHv(), Spec(name="web1"), after_of(kernel=kernel, initrd=initrd), IMAGE)


# --- converge ---------------------------------------------------------------

class ConvergeHv:
    """Records the order of the hypervisor calls; ``fail`` names one that raises."""

    def __init__(self, check_mode=False, fail=None):
        self.calls = []
        self.fail = fail
        self.runner = types.SimpleNamespace(check_mode=check_mode)
        self.defined = []
        self.seeds = []

    def paths(self, name):
        return dict(PATHS)

    def _record(self, *call):
        self.calls.append(call)
        if call[0] == self.fail:
            raise NimbusError("libvirt could not %s" % call[0])

    def make_dir(self, name):
        self._record("make_dir", name)

    def create_disk(self, name, image, disk_gb):
        self._record("create_disk", name, image["path"], disk_gb)

    def write_seed(self, name, files):
        self.seeds.append(files)
        self._record("write_seed", name)

    def define(self, xml):
        self.defined.append(xml)
        self._record("define", ET.fromstring(xml).findtext("name"))

    def start(self, name):
        self._record("start", name)

    def stop(self, name, timeout):
        self._record("stop", name, timeout)

    def resume(self, name):
        self._record("resume", name)

    def grow_disk(self, name, disk_gb):
        self._record("grow_disk", name, disk_gb)

    def set_metadata(self, name, after):
        self._record("set_metadata", name, after.project)

    def delete(self, name, keep_disk=False):
        self._record("delete", name, keep_disk)

    def refresh_pools(self):
        self._record("refresh_pools")


def full(**changes):
    fields = dict(name="web1", flavor=SMALL, image="debian-12.qcow2", nics=[Nic("br0")], seed=SEED, project="demo")
    fields.update(changes)
    return Spec(**fields)


def existing(state="running", **changes):
    after = plan(full(state="stopped", **changes), None, "kvm", U1, PATHS).after
    return parse_domain_xml(build_domain_xml(after, PATHS), state)


MEDIUM = Flavor(2, 2048, 20, "m1.medium")

# spec, actual, plan options, calls
CONVERGE = {
    "create and start": (full(), None, {}, [
        ("make_dir", "web1"), ("create_disk", "web1", IMAGE["path"], 10), ("write_seed", "web1"),
        ("define", "web1"), ("start", "web1"), ("refresh_pools",)]),
    "create stopped, no seed": (full(state="stopped", seed=None), None, {}, [
        ("make_dir", "web1"), ("create_disk", "web1", IMAGE["path"], 10), ("define", "web1"), ("refresh_pools",)]),
    "delete": (Spec(name="web1", state="absent"), existing(), {}, [("delete", "web1", False), ("refresh_pools",)]),
    "delete nothing": (Spec(name="web1", state="absent"), None, {}, []),
    "no change": (full(), existing(), {}, []),
    "metadata": (full(project="ops"), existing(), {}, [("set_metadata", "web1", "ops"), ("refresh_pools",)]),
    "new seed": (full(seed=Seed("web1", "#cloud-config\npackages: [vim]\n")), existing(), {}, [
        ("write_seed", "web1"), ("set_metadata", "web1", "demo"), ("refresh_pools",)]),
    "stop": (full(state="stopped"), existing(), {}, [("stop", "web1", 45), ("refresh_pools",)]),
    "start": (full(state="running"), existing("shutoff"), {}, [("start", "web1"), ("refresh_pools",)]),
    "resume": (full(state="running"), existing("paused"), {}, [("resume", "web1"), ("refresh_pools",)]),
    "resize with restart": (full(flavor=MEDIUM, project="ops"), existing(), {"allow_restart": True}, [
        ("stop", "web1", 45), ("grow_disk", "web1", 20), ("define", "web1"), ("start", "web1"),
        ("refresh_pools",)]),
    "resize while stopped": (full(flavor=MEDIUM), existing("shutoff"), {}, [
        ("grow_disk", "web1", 20), ("define", "web1"), ("refresh_pools",)]),
    "recreate": (full(image="debian-13.qcow2"), existing(), {"recreate": True}, [
        ("delete", "web1", False), ("make_dir", "web1"), ("create_disk", "web1", IMAGE["path"], 10),
        ("write_seed", "web1"), ("define", "web1"), ("start", "web1"), ("refresh_pools",)]),
}


@pytest.mark.parametrize("spec, actual, options, calls", CONVERGE.values(), ids=list(CONVERGE))
def test_converge(spec, actual, options, calls):
    hv = ConvergeHv()
    the_plan = plan(spec, actual, "kvm", U1, PATHS, **options)
    converge(hv, the_plan, spec, IMAGE, shutdown_timeout=45)
    assert hv.calls == calls
    for files in hv.seeds:
        assert files == spec.seed.files(the_plan.after.uuid)


def test_converge_keeps_the_disk_when_asked():
    hv = ConvergeHv()
    spec = Spec(name="web1", state="absent")
    converge(hv, plan(spec, existing(), "kvm", U1, PATHS), spec, None, keep_disk=True)
    assert hv.calls == [("delete", "web1", True), ("refresh_pools",)]


@pytest.mark.parametrize("vnc", [True, False])
def test_converge_defines_the_planned_domain(vnc):
    hv = ConvergeHv()
    spec = full(vnc=vnc)
    the_plan = plan(spec, None, "kvm", U1, PATHS)
    converge(hv, the_plan, spec, IMAGE)
    dom = ET.fromstring(hv.defined[0])
    assert dom.findtext("uuid") == U1 and dom.findtext("memory") == "1024"
    assert (dom.find("devices/graphics") is not None) is vnc


@pytest.mark.parametrize("failing", ["make_dir", "create_disk", "write_seed", "define", "start"])
def test_failed_create_is_cleaned_up(failing):
    hv = ConvergeHv(fail=failing)
    spec = full()
    with pytest.raises(NimbusError, match="could not %s" % failing):
        converge(hv, plan(spec, None, "kvm", U1, PATHS), spec, IMAGE)
    names = [call[0] for call in hv.calls]
    assert names[-1] == "delete" and hv.calls[-1] == ("delete", "web1", False)
    assert names[:-1] == ["make_dir", "create_disk", "write_seed", "define", "start"][:names.index(failing) + 1]
    assert "refresh_pools" not in names


def test_failed_update_is_not_undone():
    hv = ConvergeHv(fail="define")
    spec = full(flavor=MEDIUM)
    with pytest.raises(NimbusError):
        converge(hv, plan(spec, existing("shutoff"), "kvm", U1, PATHS), spec, None)
    assert [call[0] for call in hv.calls] == ["grow_disk", "define"]


# --- the Hypervisor against the fake binding --------------------------------

@pytest.fixture
def host(monkeypatch, tmp_path):
    return fake_libvirt.install(monkeypatch, tmp_path)


def hypervisor(host, check_mode=False):
    run_command = host._run_command_method()
    module = types.SimpleNamespace(
        check_mode=check_mode,
        get_bin_path=lambda name, required=False, opt_dirs=None: "/usr/bin/" + name,
        run_command=lambda args, **kwargs: run_command(None, args, **kwargs),
    )
    return _libvirt.Hypervisor(CommandRunner(module), settings=host.settings)


def test_lookup_and_read(host):
    host.add_instance("web1", state="running")
    hv = hypervisor(host)
    assert hv.lookup("ghost") is None and hv.read("ghost") is None
    inst = hv.read("web1")
    # The persistent definition, with what only the live one knows.
    assert (inst.state, inst.ram_mb, inst.nics[0].device, inst.vnc_port) == ("running", 512, "vnet0", 5901)
    assert hv.hostname() == "compute1"
    assert hv.host_info() == {"model": "x86_64", "memory_mb": 8192, "cpus": 4}


def test_lookup_errors_other_than_a_missing_domain_are_raised(host):
    host.conn.failures["lookupByName"] = fake_libvirt.libvirtError("Cannot recv data: Connection reset", 38)
    with pytest.raises(NimbusError, match="cannot read domain web1: Cannot recv data"):
        hypervisor(host).read("web1")


def test_macs_in_use_leave_the_instance_itself_out(host):
    host.add_instance("web1", macs=["52:54:00:00:00:01"])
    host.add_instance("db1", bridges=("br0", "br1"), macs=["52:54:00:00:00:02", "52:54:00:00:00:03"])
    assert hypervisor(host).macs_in_use(exclude="web1") == {"52:54:00:00:00:02": "db1", "52:54:00:00:00:03": "db1"}


@pytest.mark.parametrize("name, message", [
    ("../secret.qcow2", "must be a file name in the image cache"),
    ("", "must be a file name"),
    ("..", "must be a file name"),
    ("nope.qcow2", "image nope.qcow2 not found in the image cache"),
    ("installer.iso", "image installer.iso is in format iso; only qcow2 and raw images are accepted"),
])
def test_image_refuses(host, name, message):
    host.add_image("installer.iso", fmt="iso")
    with pytest.raises(ValidationError, match=message):
        hypervisor(host).image(name)


def test_image(host):
    path = host.add_image("debian-12.raw", virtual_size=3 * GIB, fmt="raw")
    assert hypervisor(host, check_mode=True).image("debian-12.raw") == {"path": str(path), "format": "raw",
                                                                        "virtual_size": 3 * GIB}
    # read under the probe's CPU and memory limits, as an untrusted file is
    assert host.commands == [["prlimit", "--as=1073741824", "--cpu=30", "--", "qemu-img", "info", "--output=json",
                              "--force-share", str(path)]]


def test_write_seed(host):
    (host.instances / "web1").mkdir()
    target = host.instances / "web1" / "seed.iso"
    target.write_bytes(b"old seed")
    hypervisor(host).write_seed("web1", SEED.files(U1))
    assert target.read_bytes() == b"ISO 9660 cidata"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert host.seeds["web1"] == SEED.files(U1)
    assert sorted(os.listdir(host.instances / "web1")) == ["seed.iso"]
    argv = host.commands_run("xorrisofs")[0]
    assert argv[argv.index("-volid") + 1] == "cidata" and "-joliet" in argv and "-rock" in argv


def test_failed_seed_leaves_the_old_one(host):
    (host.instances / "web1").mkdir()
    target = host.instances / "web1" / "seed.iso"
    target.write_bytes(b"old seed")
    host.command_failures["xorrisofs -quiet"] = (32, "", "xorriso : FAILURE : no space")
    with pytest.raises(CommandError, match="no space"):
        hypervisor(host).write_seed("web1", SEED.files(U1))
    assert target.read_bytes() == b"old seed" and os.listdir(host.instances / "web1") == ["seed.iso"]


def test_check_mode_writes_nothing(host):
    host.add_instance("web1", state="running")
    hv = hypervisor(host, check_mode=True)
    hv.make_dir("db1")
    hv.create_disk("db1", IMAGE, 10)
    hv.write_seed("db1", SEED.files(U1))
    hv.grow_disk("web1", 20)
    hv.define(host.conn.domains["web1"].xml)
    hv.set_metadata("web1", existing())
    hv.start("web1")
    hv.resume("web1")
    hv.stop("web1", 10)
    hv.delete("web1")
    hv.refresh_pools()
    assert host.conn.log == [] and host.commands == []
    assert sorted(os.listdir(host.instances)) == ["web1"]
    assert len(hv.runner.planned) == 12
    assert hv.runner.planned[2] == "write cloud-init seed %s" % (host.instances / "db1" / "seed.iso")
    assert hv.runner.planned[-1] == "refresh the storage pools"


def test_set_metadata_of_a_running_instance_changes_both_definitions(host):
    host.add_instance("web1", state="running", project="demo")
    hv = hypervisor(host)
    after = hv.read("web1")
    after.project = "ops"
    hv.set_metadata("web1", after)
    assert hv.read("web1").project == "ops"
    assert "<nimbus:project>ops</nimbus:project>" in host.conn.domains["web1"].XMLDesc(0)


def test_set_metadata_of_a_stopped_instance_changes_its_definition(host):
    host.add_instance("web1", state="shutoff", project="demo")
    hv = hypervisor(host)
    after = hv.read("web1")
    after.metadata = {"role": "db"}
    hv.set_metadata("web1", after)
    assert hv.read("web1").metadata == {"role": "db"}


@pytest.mark.parametrize("state, calls", [("paused", ["resume"]), ("pmsuspended", ["pMWakeup"])])
def test_resume(host, state, calls):
    host.add_instance("web1", state=state)
    hypervisor(host).resume("web1")
    assert host.conn.calls("web1") == calls and hypervisor(host).read("web1").state == "running"


@pytest.mark.parametrize("state, timeout, calls", [
    ("running", 60, ["shutdown"]),
    ("running", 0, ["destroy"]),
    ("paused", 60, ["destroy"]),
    ("pmsuspended", 60, ["destroy"]),
])
def test_stop(host, state, timeout, calls):
    host.add_instance("web1", state=state)
    hypervisor(host).stop("web1", timeout)
    assert host.conn.calls("web1") == calls and host.conn.domains["web1"].state_no == fake_libvirt.SHUTOFF


def test_stop_powers_off_a_guest_that_ignores_acpi(host, monkeypatch):
    dom = host.add_instance("web1", state="running")
    monkeypatch.setattr(dom, "shutdown", lambda: host.conn.log.append(("shutdown", "web1")))
    clock = iter(range(0, 1000, 10))
    monkeypatch.setattr(_libvirt.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(_libvirt.time, "sleep", lambda seconds: None)
    hypervisor(host).stop("web1", 30)
    assert host.conn.calls("web1") == ["shutdown", "destroy"]


def test_delete(host):
    dom = host.add_instance("web1", state="running")
    hv = hypervisor(host)
    hv.delete("web1")
    assert host.conn.calls("web1") == ["destroy", "undefineFlags"] and dom.undefine_flags == 7
    assert not (host.instances / "web1").exists()
    # Again: nothing left to undefine, and a missing directory is fine.
    hv.delete("web1")
    assert host.conn.calls("web1") == ["destroy", "undefineFlags"]


def test_delete_removes_the_chap_secrets_of_its_volumes(host):
    """An instance deleted with a volume attached leaves no CHAP secret behind; another volume's stays."""
    volume_id = "6f1c2d3e-4a5b-4c6d-8e7f-0a1b2c3d4e5f"
    dom = host.add_instance("web1", state="running")
    root = ET.fromstring(dom.xml)
    disk = VolumeDisk(volume_id=volume_id, device="vdc", portal="10.0.20.5:3260", iqn="iqn.2026-12.x:v", lun=1,
                      username="nimbus-chap")
    root.find("devices").append(disk.element())
    dom.xml = ET.tostring(root, encoding="unicode")
    for usage in (disk.secret_usage, "nimbus-volume-other"):
        host.conn.secretDefineXML("<secret><usage type='iscsi'><target>%s</target></usage></secret>" % usage)
    hypervisor(host).delete("web1")
    assert list(host.conn.secrets) == ["nimbus-volume-other"]


def test_libvirt_errors_name_what_failed(host):
    host.add_instance("web1", state="shutoff")
    host.conn.failures["create"] = fake_libvirt.libvirtError("internal error: process exited while connecting")
    with pytest.raises(NimbusError, match="libvirt could not start web1: internal error: process exited"):
        hypervisor(host).start("web1")


def test_refresh_pools_skips_missing_pools(host):
    host.conn.pools.discard("nimbus-images")
    hypervisor(host).refresh_pools()
    assert host.conn.log == [("refresh", "nimbus-instances")]


def test_lock_creates_its_directory(host):
    with hypervisor(host).lock():
        assert os.path.exists(_libvirt.LOCK_FILE)


@pytest.mark.parametrize("content, message", [
    (None, "is missing: this host is not a nimbus.cloud hypervisor"),
    ("{not json", "is not valid JSON"),
])
def test_load_settings_errors(tmp_path, content, message):
    path = tmp_path / "hypervisor.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(NimbusError, match=message):
        _libvirt.load_settings(str(path))


def test_load_settings(tmp_path):
    path = tmp_path / "hypervisor.json"
    path.write_text(json.dumps({"virt_type": "kvm"}))
    assert _libvirt.load_settings(str(path)) == {"virt_type": "kvm"}
    hv = _libvirt.Hypervisor(runner=None, settings={"virt_type": "kvm", "pools": {
        "instances": {"name": "i", "path": "/srv/i"}, "images": {"name": "m", "path": "/srv/m"}}})
    assert (hv.virt_type, hv.instances_dir, hv.image_dir) == ("kvm", "/srv/i", "/srv/m")
    assert hv.paths("web1") == {"dir": "/srv/i/web1", "root_disk": "/srv/i/web1/disk.qcow2",
                                "seed": "/srv/i/web1/seed.iso", "console_log": "/srv/i/web1/console.log"}
    assert _libvirt.Hypervisor(runner=None, settings={}).virt_type == "qemu"
