import json

import pytest
import yaml

from ansible_collections.nimbus.cloud.plugins.module_utils import _libvirt
from ansible_collections.nimbus.cloud.plugins.module_utils._compute import Seed, mac_for
from ansible_collections.nimbus.cloud.plugins.modules import instance as instance_module
from ansible_collections.nimbus.cloud.plugins.modules.instance import InstanceModule
from ansible_collections.nimbus.cloud.tests.unit.plugins.modules import fake_libvirt

GIB = 1024 ** 3
# Must reach the seed ISO and nothing else: not the result, not the diff.
SENTINEL = "sentinel-Zq8v-never-in-results"
USER_DATA = "#cloud-config\nchpasswd:\n  list: |\n    debian:%s\n" % SENTINEL
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ3 test@example"
FLAVORS = {
    "m1.small": {"vcpus": 1, "ram_mb": 1024, "disk_gb": 10},
    "m1.medium": {"vcpus": 2, "ram_mb": 2048, "disk_gb": 20},
    "m1.tiny": {"vcpus": 1, "ram_mb": 512, "disk_gb": 5},
    "m1.huge": {"vcpus": 4, "ram_mb": 65536, "disk_gb": 10},
}
BASE = {
    "name": "web1",
    "project": "demo",
    "flavor": "m1.small",
    "flavors": FLAVORS,
    "image": "debian-12.qcow2",
    "nics": [{"bridge": "br0"}],
    "cloud_init": {"user_data": USER_DATA, "ssh_authorized_keys": [KEY]},
    "metadata": {"role": "web"},
}
DOCUMENTED = sorted(yaml.safe_load(instance_module.RETURN)["instance"]["contains"])


def args(**overrides):
    return dict(BASE, **overrides)


@pytest.fixture
def host(monkeypatch, tmp_path):
    hv = fake_libvirt.install(monkeypatch, tmp_path)
    hv.add_image()
    return hv


@pytest.fixture
def instance(run_module):
    """Run the instance module; no result may ever hold the user data."""

    def run(module_args, check_mode=False, diff=True):
        result, failed = run_module(InstanceModule, module_args, check_mode=check_mode, diff=diff)
        assert SENTINEL not in json.dumps(result)
        return result, failed

    return run


def new_calls(host, since):
    """libvirt calls that change a domain, after the first ``since`` of the log."""
    return [call for call, name in host.conn.log[since:] if call != "refresh"]


# --- create -----------------------------------------------------------------

def test_create_in_check_mode_predicts_and_touches_nothing(host, instance):
    result, failed = instance(args(), check_mode=True)
    assert not failed and result["changed"] is True
    assert host.conn.domains == {} and host.conn.log == []
    assert not (host.instances / "web1").exists()
    assert [argv[4:6] for argv in host.commands] == [["qemu-img", "info"]]
    inst = result["instance"]
    assert (inst["name"], inst["state"], inst["project"], inst["hypervisor"]) == ("web1", "running", "demo", "compute1")
    assert (inst["vcpus"], inst["ram_mb"], inst["flavor"]["name"]) == (1, 1024, "m1.small")
    # Generated values a real run would draw differently.
    assert inst["uuid"] is None
    assert inst["nics"] == [{"bridge": "br0", "mac": None, "model": "virtio", "device": None, "port": None}]
    assert result["diff"]["before"] is None and result["diff"]["after"]["name"] == "web1"


def test_create(host, instance):
    result, failed = instance(args())
    assert not failed and result["changed"] is True
    dom = host.conn.domains["web1"]
    assert dom.state_no == fake_libvirt.RUNNING
    assert host.conn.calls("web1") == ["defineXML", "create"]
    assert ("refresh", "nimbus-instances") in host.conn.log
    inst = result["instance"]
    assert inst["uuid"] == dom.UUIDString() and inst["state"] == "running"
    assert inst["nics"] == [{"bridge": "br0", "mac": mac_for(inst["uuid"], 0), "model": "virtio", "device": "vnet0",
                             "port": None}]
    root = str(host.instances / "web1" / "disk.qcow2")
    seed = str(host.instances / "web1" / "seed.iso")
    assert host.commands_run("qemu-img", "create") == [[
        "qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(host.images / "debian-12.qcow2"), root,
        str(10 * GIB)]]
    expected_digest = Seed("web1", USER_DATA, [KEY]).digest(inst["uuid"])
    assert inst["disks"] == [{"device": "vda", "role": "root", "path": root},
                             {"device": "vdb", "role": "seed", "path": seed, "sha256": expected_digest}]
    assert inst["console"]["vnc"]["host"] == "127.0.0.1" and inst["console"]["vnc"]["port"] >= 5900
    files = host.seeds["web1"]
    assert files["user-data"] == USER_DATA.encode()
    assert ('instance-id: "%s"' % inst["uuid"]).encode() in files["meta-data"] and KEY.encode() in files["meta-data"]
    assert result["diff"]["before"] is None and result["diff"]["after"]["uuid"] == inst["uuid"]


def test_create_again_changes_nothing(host, instance):
    first = instance(args())[0]
    log, commands = len(host.conn.log), len(host.commands)
    result, failed = instance(args())
    assert not failed and result["changed"] is False and result["changed_fields"] == []
    assert host.conn.log[log:] == []
    assert [argv[0] for argv in host.commands[commands:]] == []
    assert result["instance"] == first["instance"]
    assert result["diff"]["before"] == result["diff"]["after"]


def test_create_stopped_defines_without_starting(host, instance):
    result = instance(args(state="stopped"))[0]
    assert result["changed"] and result["instance"]["state"] == "shutoff"
    assert host.conn.calls("web1") == ["defineXML"]
    assert result["instance"]["console"]["vnc"] is None


def test_given_uuid_and_mac_are_kept(host, instance):
    uuid = "6F1C1F0E-8A7B-4B8E-9A57-0D0C0E6A7C11"
    nics = [{"bridge": "br0", "mac": "52:54:00:12:34:56"}, {"bridge": "br1", "model": "e1000"}]
    result = instance(args(uuid=uuid, nics=nics), check_mode=True)[0]
    # With the UUID given, check mode can predict the derived MAC too.
    assert result["instance"]["uuid"] == uuid.lower()
    assert [n["mac"] for n in result["instance"]["nics"]] == ["52:54:00:12:34:56", mac_for(uuid.lower(), 1)]
    real = instance(args(uuid=uuid, nics=nics))[0]["instance"]
    assert real["uuid"] == uuid.lower()
    assert [(n["mac"], n["model"]) for n in real["nics"]] == [("52:54:00:12:34:56", "virtio"),
                                                              (mac_for(uuid.lower(), 1), "e1000")]


# --- modify -----------------------------------------------------------------

SEED_V2 = {"user_data": USER_DATA + "# v2\n", "ssh_authorized_keys": [KEY]}

# change, libvirt calls of the real run, changed_fields, commands run, state after
MODIFICATIONS = {
    "metadata": ({"metadata": {"role": "db"}}, ["setMetadata"], ["metadata"], [], "running"),
    "project": ({"project": "ops"}, ["setMetadata"], ["project"], [], "running"),
    "server_group": ({"server_group": "web"}, ["setMetadata"], ["server_group"], [], "running"),
    "cloud_init": ({"cloud_init": SEED_V2}, ["setMetadata"], ["seed_digest"], [["xorrisofs"]], "running"),
    "stop": ({"state": "stopped"}, ["shutdown"], [], [], "shutoff"),
    "flavor with restart": ({"flavor": "m1.medium", "allow_restart": True}, ["shutdown", "defineXML", "create"],
                            ["vcpus", "ram_mb", "flavor_name", "disk_grow"], [["qemu-img", "resize"]], "running"),
    "flavor while stopping": ({"flavor": "m1.medium", "state": "stopped"}, ["shutdown", "defineXML"],
                              ["vcpus", "ram_mb", "flavor_name", "disk_grow"], [["qemu-img", "resize"]], "shutoff"),
    "smaller flavor, same disk": ({"flavor": {"vcpus": 1, "ram_mb": 512, "disk_gb": 10}, "allow_restart": True},
                                  ["shutdown", "defineXML", "create"], ["ram_mb", "flavor_name"], [], "running"),
}


@pytest.mark.parametrize("change, calls, fields, commands, state", MODIFICATIONS.values(), ids=list(MODIFICATIONS))
def test_modify_in_check_mode_then_for_real_then_again(host, instance, change, calls, fields, commands, state):
    instance(args())
    xml, log, ran = host.conn.domains["web1"].xml, len(host.conn.log), len(host.commands)

    checked, failed = instance(args(**change), check_mode=True)
    assert not failed and checked["changed"] is True and checked["changed_fields"] == fields
    assert host.conn.log[log:] == [] and host.conn.domains["web1"].xml == xml
    assert host.commands[ran:] == []
    assert checked["instance"]["state"] == state

    real, failed = instance(args(**change))
    assert not failed and real["changed"] is True and real["changed_fields"] == fields
    assert new_calls(host, log) == calls
    assert [argv[:len(c)] for argv, c in zip(host.commands[ran:], commands)] == commands
    assert real["instance"]["state"] == state
    # Check mode predicted the real run, but for what a restart renumbers: tap devices and the VNC port.
    for view in (checked["instance"], real["instance"]):
        for nic in view["nics"]:
            nic.pop("device")
        view["console"].pop("vnc")
    assert checked["instance"] == real["instance"]

    log = len(host.conn.log)
    again, failed = instance(args(**change))
    assert not failed and again["changed"] is False and again["changed_fields"] == []
    assert host.conn.log[log:] == []


def test_modify_shows_before_and_after_in_the_diff(host, instance):
    instance(args())
    result = instance(args(metadata={"role": "db"}, cloud_init=SEED_V2))[0]
    before, after = result["diff"]["before"], result["diff"]["after"]
    assert (before["metadata"], after["metadata"]) == ({"role": "web"}, {"role": "db"})
    assert before["disks"][1]["sha256"] != after["disks"][1]["sha256"]
    assert host.seeds["web1"]["user-data"] == SEED_V2["user_data"].encode()


def test_diff_only_when_asked(host, instance):
    result = instance(args(), diff=False)[0]
    assert "diff" not in result


def test_only_given_options_are_compared(host, instance):
    instance(args())
    result = instance({"name": "web1"})[0]
    assert result["changed"] is False and result["instance"]["project"] == "demo"
    assert result["instance"]["metadata"] == {"role": "web"}


def test_empty_server_group_clears_it_once(host, instance):
    instance(args(server_group="web"))
    cleared = instance(args(server_group=""))[0]
    assert cleared["changed"] and cleared["instance"]["server_group"] is None
    assert instance(args(server_group=""))[0]["changed"] is False


def test_start_a_stopped_instance(host, instance):
    instance(args(state="stopped"))
    result = instance({"name": "web1", "state": "running"})[0]
    assert result["changed"] and result["instance"]["state"] == "running"
    assert host.conn.calls("web1")[-1] == "create"


@pytest.mark.parametrize("state, call", [("paused", "resume"), ("pmsuspended", "pMWakeup")])
def test_running_resumes_or_wakes(host, instance, state, call):
    host.add_instance("web1", state=state)
    result, failed = instance({"name": "web1", "state": "running"})
    assert not failed, result["msg"]
    assert result["changed"] and result["instance"]["state"] == "running"
    assert host.conn.calls("web1") == [call]


def test_offline_change_of_a_running_instance_is_refused(host, instance):
    instance(args())
    log = len(host.conn.log)
    result, failed = instance(args(flavor="m1.medium"))
    assert failed
    assert "can only change while it is stopped" in result["msg"] and "allow_restart" in result["msg"]
    assert result["fields"] == ["vcpus", "ram_mb", "disk_grow"]
    assert host.conn.log[log:] == []


@pytest.mark.parametrize("change, label", [
    ({"image": "other.qcow2"}, "image"),
    ({"nics": [{"bridge": "br1"}]}, "NICs"),
    ({"flavor": "m1.tiny", "state": "stopped"}, "disk_gb (shrink)"),
])
def test_fixed_fields_are_refused_without_recreate(host, instance, change, label):
    host.add_image("other.qcow2")
    instance(args())
    log = len(host.conn.log)
    result, failed = instance(args(**change))
    assert failed and label in result["msg"] and "recreate=true" in result["msg"]
    assert host.conn.log[log:] == []


def test_recreate_keeps_uuid_macs_and_what_the_task_leaves_out(host, instance):
    host.add_image("other.qcow2")
    first = instance(args(nics=[{"bridge": "br0", "mac": "52:54:00:12:34:56"}, {"bridge": "br1"}]))[0]["instance"]
    log = len(host.conn.log)
    result, failed = instance({"name": "web1", "image": "other.qcow2", "recreate": True,
                               "cloud_init": BASE["cloud_init"]})
    assert not failed, result["msg"]
    assert result["changed"] and result["changed_fields"] == ["image"]
    assert new_calls(host, log) == ["destroy", "undefineFlags", "defineXML", "create"]
    inst = result["instance"]
    assert inst["image"] == "other.qcow2" and inst["state"] == "running"
    for key in ("uuid", "project", "metadata", "flavor", "vcpus", "ram_mb"):
        assert inst[key] == first[key], key
    assert [n["mac"] for n in inst["nics"]] == [n["mac"] for n in first["nics"]]
    assert host.commands_run("qemu-img", "create")[-1][8] == str(host.images / "other.qcow2")


def test_recreate_needs_cloud_init_to_rebuild_the_seed(host, instance):
    host.add_image("other.qcow2")
    instance(args())
    log = len(host.conn.log)
    result, failed = instance({"name": "web1", "image": "other.qcow2", "recreate": True})
    assert failed and "give cloud_init" in result["msg"]
    assert host.conn.log[log:] == [] and "web1" in host.conn.domains


def test_recreate_in_check_mode_changes_nothing(host, instance):
    host.add_image("other.qcow2")
    instance(args())
    log = len(host.conn.log)
    result = instance(args(image="other.qcow2", recreate=True), check_mode=True)[0]
    assert result["changed"] and result["instance"]["image"] == "other.qcow2"
    assert host.conn.log[log:] == [] and (host.instances / "web1" / "disk.qcow2").exists()


# --- delete -----------------------------------------------------------------

def test_delete_in_check_mode_then_for_real_then_again(host, instance):
    instance(args())
    before = instance({"name": "web1"})[0]["instance"]
    log = len(host.conn.log)

    checked, failed = instance({"name": "web1", "state": "absent"}, check_mode=True)
    assert not failed and checked["changed"] is True and checked["instance"] is None
    assert host.conn.log[log:] == [] and "web1" in host.conn.domains
    assert (host.instances / "web1" / "disk.qcow2").exists()

    real, failed = instance({"name": "web1", "state": "absent"})
    assert not failed and real["changed"] is True and real["instance"] is None
    assert real["diff"] == {"before": before, "after": None}
    assert new_calls(host, log) == ["destroy", "undefineFlags"]
    assert "web1" not in host.conn.domains and not (host.instances / "web1").exists()

    again, failed = instance({"name": "web1", "state": "absent"})
    assert not failed and again["changed"] is False and again["instance"] is None
    assert again["diff"] == {"before": None, "after": None}


def test_delete_undefines_with_managed_save_and_snapshots(host, instance):
    dom = host.add_instance("web1", state="shutoff", managed_save=True)
    instance({"name": "web1", "state": "absent"})
    assert dom.undefine_flags == (fake_libvirt.FakeLibvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                                  | fake_libvirt.FakeLibvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                                  | fake_libvirt.FakeLibvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
    # Not running: nothing to power off first.
    assert host.conn.calls("web1") == ["undefineFlags"]


def test_delete_can_keep_the_disk(host, instance):
    instance(args())
    result = instance({"name": "web1", "state": "absent", "keep_disk": True})[0]
    assert result["changed"] and "web1" not in host.conn.domains
    assert (host.instances / "web1" / "disk.qcow2").exists() and (host.instances / "web1" / "seed.iso").exists()


# --- return contract --------------------------------------------------------

@pytest.mark.parametrize("check_mode", [True, False], ids=["check", "real"])
@pytest.mark.parametrize("existing", [False, True], ids=["create", "modify"])
def test_every_documented_key_is_returned(host, instance, check_mode, existing):
    if existing:
        instance(args())
    result, failed = instance(args(metadata={"role": "db"}), check_mode=check_mode)
    assert not failed
    assert sorted(result["instance"]) == DOCUMENTED
    assert isinstance(result["changed_fields"], list)


# --- bad input --------------------------------------------------------------

BAD_INPUT = {
    "unknown flavor": ({"flavor": "m9.giant"}, "unknown flavor 'm9.giant' (known flavors: m1.huge, m1.medium"),
    "flavor not a dict": ({"flavor": 4}, "flavor must be a flavor name or a dict"),
    "flavor key typo": ({"flavor": {"vcpus": 1, "ram_mb": 512, "disks_gb": 5}}, "unknown keys disks_gb"),
    "no vcpus": ({"flavor": {"vcpus": 0, "ram_mb": 512}}, "vcpus must be at least 1, got 0"),
    "unknown hw spec": ({"flavor": {"vcpus": 1, "ram_mb": 512, "extra_specs": {"hw:cpu_modle": "custom"}}},
                        "unsupported extra spec hw:cpu_modle"),
    "topology": ({"flavor": {"vcpus": 2, "ram_mb": 512, "extra_specs": {"hw:cpu_sockets": 3}}},
                 "sockets x cores x threads (3) must equal vcpus (2)"),
    "more RAM than the host": ({"flavor": "m1.huge"}, "ram_mb 65536 is more than this hypervisor's 8192 MiB"),
    "missing image": ({"image": "nope.qcow2"}, "image nope.qcow2 not found in the image cache"),
    "image path": ({"image": "../etc/passwd"}, "must be a file name in the image cache"),
    "image too big": ({"image": "big.qcow2"}, "image big.qcow2 is 40.0 GiB, larger than the flavor's disk_gb 10"),
    "iso image": ({"image": "installer.iso"}, "image installer.iso is in format iso; only qcow2 and raw"),
    "no flavor": ({"flavor": None}, "flavor and image (or boot_volume) are required to create instance web1"),
    "leading dash": ({"name": "-web1"}, "invalid instance name '-web1'"),
    "space": ({"name": "web 1"}, "invalid instance name 'web 1'"),
    "too long": ({"name": "w" * 64}, "invalid instance name"),
    "MAC twice": ({"nics": [{"bridge": "br0", "mac": "52:54:00:00:00:01"},
                            {"bridge": "br1", "mac": "52-54-00-00-00-01"}]},
                  "nics[1]: MAC 52:54:00:00:00:01 is given twice"),
    "MAC of another instance": ({"nics": [{"bridge": "br0", "mac": "52:54:00:AA:BB:CC"}]},
                                "MAC 52:54:00:aa:bb:cc is already used by instance legacy"),
    "multicast MAC": ({"nics": [{"bridge": "br0", "mac": "01:00:5e:00:00:01"}]}, "is a multicast MAC address"),
    "not a MAC": ({"nics": [{"bridge": "br0", "mac": "52:54:00:00:01"}]}, "is not a MAC address"),
    "unknown bridge": ({"nics": [{"bridge": "br9"}]}, "bridge br9 does not exist on this hypervisor"),
    "NIC model": ({"nics": [{"bridge": "br0", "model": "ne2k"}]}, "model must be one of"),
    "initrd without kernel": ({"initrd": "/boot/initrd.img"}, "missing parameter(s) required by 'initrd': kernel"),
    "kernel_args without kernel": ({"kernel_args": "console=ttyS0"}, "required by 'kernel_args': kernel"),
    "missing kernel": ({"kernel": "/nonexistent/vmlinuz"}, "kernel /nonexistent/vmlinuz does not exist"),
    "bad uuid": ({"uuid": "not-a-uuid"}, "uuid 'not-a-uuid' is not a UUID"),
    "negative timeout": ({"shutdown_timeout": -1}, "shutdown_timeout must be 0 or more"),
}


@pytest.mark.parametrize("change, message", BAD_INPUT.values(), ids=list(BAD_INPUT))
@pytest.mark.parametrize("check_mode", [False, True], ids=["real", "check"])
def test_bad_input_fails_before_anything_changes(host, instance, change, message, check_mode):
    host.add_image("big.qcow2", virtual_size=40 * GIB)
    host.add_image("installer.iso", fmt="iso")
    host.conn.add_domain(fake_libvirt.unmanaged_xml("legacy", "0b7f3e56-5c6e-4d27-9c53-7f6b1b0c1a11"), "running")
    result, failed = instance(args(**change), check_mode=check_mode)
    assert failed and message in result["msg"], result.get("msg")
    assert host.conn.log == []
    assert host.commands_run("qemu-img", "create") == [] and host.commands_run("xorrisofs") == []
    assert not (host.instances / "web1").exists()


@pytest.mark.parametrize("state", ["present", "absent"])
def test_domains_made_elsewhere_are_left_alone(host, instance, state):
    host.conn.add_domain(fake_libvirt.unmanaged_xml("web1", "0b7f3e56-5c6e-4d27-9c53-7f6b1b0c1a11"), "running")
    result, failed = instance(args(state=state))
    assert failed and "was not created by nimbus.cloud" in result["msg"]
    assert host.conn.log == [] and "web1" in host.conn.domains


# --- failures while applying ------------------------------------------------

@pytest.mark.parametrize("call", ["defineXML", "create"])
def test_failed_create_leaves_nothing_behind(host, instance, call):
    host.conn.failures[call] = fake_libvirt.libvirtError("internal error: no space for %s" % call)
    result, failed = instance(args())
    assert failed and "libvirt could not" in result["msg"] and "no space for" in result["msg"]
    assert host.conn.domains == {} and not (host.instances / "web1").exists()


def test_failed_disk_creation_leaves_nothing_behind(host, instance):
    host.command_failures["qemu-img create"] = (1, "", "qemu-img: disk.qcow2: No space left on device")
    result, failed = instance(args())
    assert failed and "No space left on device" in result["msg"] and result["rc"] == 1
    assert host.conn.log == [] and not (host.instances / "web1").exists()


def test_missing_binding_is_reported(host, instance, monkeypatch):
    monkeypatch.setattr(_libvirt, "LIBVIRT_IMPORT_ERROR", ImportError("No module named 'libvirt'"))
    result, failed = instance(args())
    assert failed and "libvirt-python" in result["msg"]


def test_unreachable_libvirt_is_reported(host, instance):
    host.libvirt.open_error = "Failed to connect socket to '/var/run/libvirt/libvirt-sock'"
    result, failed = instance(args(uri="qemu+tcp://compute1/system"))
    assert failed and result["msg"].startswith("cannot connect to libvirt at qemu+tcp://compute1/system")
    assert host.libvirt.uris == ["qemu+tcp://compute1/system"]


# --- ports ----------------------------------------------------------------------

PORT = {
    "id": "3f0e2d9c-1b7a-5e44-8c3d-2a1b0c9d8e7f", "name": "web1-eth0", "network": "demo-net", "bridge": "nb-0b6f8c1e",
    "mac": "fa:16:3e:4c:2a:10", "mtu": 1450, "fixed_ips": [{"subnet": "demo-subnet", "ip": "10.20.0.11"}],
    "security_groups": ["web"], "port_security": True, "project": "demo", "device_owner": "compute",
}
WITH_GROUP = {"nftables": [{"table": {"family": "inet", "name": "nimbus"}},
                           {"chain": {"family": "inet", "table": "nimbus", "name": "sg-web-in"}},
                           {"chain": {"family": "inet", "table": "nimbus", "name": "sg-web-out"}}]}


def test_a_port_nic_takes_the_ports_bridge_mac_and_tap_and_binds_its_filter(host, instance):
    host.bridges.add("nb-0b6f8c1e")
    host.nft["inet"] = WITH_GROUP
    result, failed = instance(args(nics=[{"port": PORT}]))
    assert not failed, result
    nic = result["instance"]["nics"][0]
    assert (nic["bridge"], nic["mac"]) == ("nb-0b6f8c1e", "fa:16:3e:4c:2a:10")
    assert nic["port"]["id"] == PORT["id"] and nic["port"]["fixed_ips"] == PORT["fixed_ips"]
    target = host.domain_xml("web1").find("devices/interface/target")
    assert target.get("dev") == "tap3f0e2d9c-1b"
    script = host.nft_scripts[-1]
    assert 'add element inet nimbus port_ingress { "nb-0b6f8c1e" . fa:16:3e:4c:2a:10 : jump port-3f0e2d9c-in }' in script
    assert "add rule inet nimbus port-3f0e2d9c-in jump sg-web-in" in script
    assert "ip saddr != { 10.20.0.11 } ip saddr != 0.0.0.0 drop" in script


def test_a_port_whose_group_is_missing_is_refused_before_anything_is_defined(host, instance):
    host.bridges.add("nb-0b6f8c1e")
    result, failed = instance(args(nics=[{"port": PORT}]))
    assert failed and "security group web (port web1-eth0) is not defined on this host" in result["msg"]
    assert host.conn.domains == {} and host.nft_scripts == []


def test_a_port_and_a_conflicting_mac_are_refused(host, instance):
    result, failed = instance(args(nics=[{"port": PORT, "mac": "fa:16:3e:00:00:01"}]))
    assert failed and "conflicts with the port's mac" in result["msg"]


def test_new_port_groups_are_a_live_change_and_delete_unbinds(host, instance):
    host.bridges.add("nb-0b6f8c1e")
    host.nft["inet"] = WITH_GROUP
    instance(args(nics=[{"port": PORT}]))
    defined = host.conn.calls("web1")
    changed, failed = instance(args(nics=[{"port": dict(PORT, security_groups=[])}]))
    assert not failed and changed["changed"] and changed["changed_fields"] == ["ports"]
    assert host.conn.calls("web1")[len(defined):] == ["setMetadata"]
    assert "jump sg-web-in" not in host.nft_scripts[-1]
    host.nft["inet"] = {"nftables": WITH_GROUP["nftables"] + [
        {"chain": {"family": "inet", "table": "nimbus", "name": "port-3f0e2d9c-in"}},
        {"map": {"family": "inet", "table": "nimbus", "name": "port_ingress",
                 "elem": [[{"concat": ["nb-0b6f8c1e", "fa:16:3e:4c:2a:10"]}, {"jump": {"target": "port-3f0e2d9c-in"}}]]}}]}
    deleted, failed = instance(args(state="absent"))
    assert not failed and deleted["changed"]
    assert host.nft_scripts[-1].splitlines() == [
        'delete element inet nimbus port_ingress { "nb-0b6f8c1e" . fa:16:3e:4c:2a:10 }',
        "delete chain inet nimbus port-3f0e2d9c-in"]


# --- boot from volume ---------------------------------------------------------

VOLUME_ID = "4d1c5b8e-2f59-4c1b-9a0e-6f7d9a3b2c11"
CHAP = "chap-Kq2w-never-in-results"
BOOT_VOLUME = {"volume_id": VOLUME_ID, "portal": "10.0.20.5:3260",
               "iqn": "iqn.2026-12.cloud.nimbus:volume-" + VOLUME_ID, "lun": 1, "username": "u" + VOLUME_ID[:8],
               "password": CHAP}


def from_volume(**overrides):
    task = {k: v for k, v in BASE.items() if k != "image"}
    task["boot_volume"] = dict(BOOT_VOLUME)
    task.update(overrides)
    return task


def test_boot_from_volume_in_check_mode_then_for_real_then_again(host, instance):
    result, failed = instance(from_volume(), check_mode=True)
    assert not failed and result["changed"] and host.conn.log == [] and host.conn.secrets == {}
    result, failed = instance(from_volume())
    assert not failed and result["changed"] and CHAP not in json.dumps(result)
    # No disk of its own: the volume is vda, the firmware boots it, the CHAP password is in a secret only.
    assert host.commands_run("qemu-img", "create") == []
    assert not (host.instances / "web1" / "disk.qcow2").exists()
    assert host.conn.secrets["nimbus-volume-" + VOLUME_ID].value == CHAP.encode()
    xml = host.conn.domains["web1"].xml
    assert CHAP not in xml and "<boot order=\"1\" />" in xml and "<boot dev=" not in xml
    disks = result["instance"]["disks"]
    assert disks[0] == {"device": "vda", "role": "root", "volume_id": VOLUME_ID,
                        "target": "iscsi://10.0.20.5:3260/iqn.2026-12.cloud.nimbus:volume-%s/1" % VOLUME_ID}
    assert [d["device"] for d in disks] == ["vda", "vdb"] and result["instance"]["image"] is None
    # Again, and without the boot volume: nothing to do (the flavor's disk does not apply to it).
    without = {k: v for k, v in from_volume().items() if k != "boot_volume"}
    for again in (from_volume(), without, from_volume(flavor="m1.medium", allow_restart=True)):
        log = len(host.conn.log)
        result, failed = instance(again)
        assert not failed, result
        if again.get("flavor") == "m1.medium":
            assert result["changed_fields"] == ["vcpus", "ram_mb", "flavor_name"]
            assert host.commands_run("qemu-img", "resize") == []
        else:
            assert not result["changed"] and host.conn.log[log:] == []


def test_a_boot_volume_never_changes_and_delete_removes_its_secret(host, instance):
    instance(from_volume())
    other = dict(BOOT_VOLUME, volume_id="9a6b7c1d-0000-4000-8000-000000000001")
    for change in (dict(boot_volume=other), dict(boot_volume=dict(BOOT_VOLUME, portal="10.0.20.6:3260")),
                   dict(image="debian-12.qcow2")):
        task = dict(from_volume(recreate=True), **change)
        if "image" in change:
            del task["boot_volume"]
        result, failed = instance(task)
        assert failed and "booted from a volume" in result["msg"], result
    result, failed = instance(from_volume(state="absent"))
    assert not failed and result["changed"] and host.conn.domains == {} and host.conn.secrets == {}


def test_an_instance_from_an_image_does_not_become_one_from_a_volume(host, instance):
    instance(args())
    result, failed = instance(dict(from_volume(recreate=True)))
    assert failed and "boot_volume" in result["msg"] and "booted from a volume" in result["msg"]


@pytest.mark.parametrize("change, message", [
    (dict(image="debian-12.qcow2"), "mutually exclusive"),
    (dict(boot_volume=dict(BOOT_VOLUME, volume_id="../../etc")), "is not a UUID"),
    (dict(boot_volume=dict(BOOT_VOLUME, portal="10.0.20.5:3260/x")), "portal must be HOST:PORT"),
    (dict(boot_volume=dict(BOOT_VOLUME, iqn="iqn.2026-12.x:a'/><disk")), "iqn must be an iSCSI qualified name"),
    (dict(boot_volume=dict(BOOT_VOLUME, username="a b")), "username must be"),
    (dict(boot_volume={k: v for k, v in BOOT_VOLUME.items() if k != "password"}), "parameters are required together"),
], ids=["with-image", "volume-id", "portal", "iqn", "username", "no-password"])
def test_a_bad_boot_volume_is_refused_before_anything_changes(host, instance, change, message):
    result, failed = instance(from_volume(**change))
    assert failed and message in result["msg"], result["msg"]
    assert host.conn.log == [] and host.conn.secrets == {} and not (host.instances / "web1").exists()


def test_a_failed_boot_from_volume_leaves_no_secret(host, instance):
    host.conn.failures["create"] = fake_libvirt.libvirtError("iSCSI login failed")
    result, failed = instance(from_volume())
    assert failed and "iSCSI login failed" in result["msg"] and CHAP not in json.dumps(result)
    assert host.conn.domains == {} and host.conn.secrets == {} and not (host.instances / "web1").exists()
