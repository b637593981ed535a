"""The provisioning host the pxe role built on the hypervisor: packages, its two servers, what they listen on
and serve, and the files the node records live in."""

import json

import pytest

HOST = "nimbus-kvm-1"
testinfra_hosts = ["podman://" + HOST]


@pytest.mark.parametrize("package", ["dnsmasq-base", "dnsmasq-utils", "ipxe", "nginx-light", "python3-pyghmi"])
def test_packages(host, package):
    assert host.package(package).is_installed


def test_no_distribution_dns_service(host):
    # dnsmasq-base has no unit of its own; the role's answers no DNS (port=0).
    assert not host.service("dnsmasq").is_running
    assert "port=0" in host.file("/etc/nimbus/pxe-dnsmasq.conf").content_string
    assert not host.socket("udp://0.0.0.0:53").is_listening


@pytest.mark.parametrize("unit", ["nimbus-pxe-dnsmasq.service", "nimbus-pxe-http.service",
                                  "nimbus-pxe-callback.service"])
def test_units_run_and_are_enabled(host, unit):
    service = host.service(unit)
    assert service.is_running and service.is_enabled


def test_dhcp_only_for_known_macs_on_the_provisioning_bridge(host):
    conf = host.file("/etc/nimbus/pxe-dnsmasq.conf").content_string.splitlines()
    assert "interface=br-prov" in conf and "dhcp-ignore=tag:!known" in conf
    assert "dhcp-range=set:nimbus-pxe,10.0.50.0,static,255.255.255.0,1h" in conf
    assert "dhcp-boot=tag:ipxe,http://10.0.50.1:8088/boot.ipxe" in conf


def test_ipxe_is_served_over_tftp_root(host):
    for name in ("undionly.kpxe", "ipxe.efi"):
        binary = host.file("/var/lib/nimbus/pxe/tftp/" + name)
        assert binary.is_file and binary.size > 50000 and binary.mode == 0o644


# The host has no curl: http.client sends the path exactly as given.
FETCH = ("import http.client, sys; c = http.client.HTTPConnection('10.0.50.1', 8088, timeout=10); "
         "c.request(sys.argv[1], sys.argv[2]); r = c.getresponse(); print(r.status); print(r.read().decode())")


def fetch(host, path, method="GET"):
    out = host.check_output("python3 -c %s %s %s" % tuple(map(_quote, (FETCH, method, path))))
    status, body = (out.split("\n", 1) + [""])[:2]  # a HEAD's answer has no body
    return int(status), body


def _quote(text):
    return "'" + text.replace("'", "'\\''") + "'"


def test_the_web_server_serves_the_boot_script_and_nothing_else(host):
    assert host.socket("tcp://10.0.50.1:8088").is_listening
    assert not host.socket("tcp://0.0.0.0:8088").is_listening
    status, script = fetch(host, "/boot.ipxe")
    assert status == 200 and script.startswith("#!ipxe")
    assert "chain --autofree nodes/${netX/mac:hexhyp}.ipxe" in script
    for path in ("/", "/nodes/", "/../../etc/passwd", "/dhcp-hosts", "/nodes/bm-1.json", "/tftp/ipxe.efi"):
        assert fetch(host, path)[0] in (400, 403, 404), path
    assert fetch(host, "/boot.ipxe", method="POST")[0] == 403
    assert host.process.filter(comm="nginx") and {p.user for p in host.process.filter(comm="nginx")} == {"www-data"}


def test_node_records_are_roots_alone(host):
    nodes = host.file("/var/lib/nimbus/pxe/nodes")
    assert nodes.is_directory and nodes.user == "root" and nodes.mode == 0o700


def test_settings_for_the_modules(host):
    settings = json.loads(host.file("/etc/nimbus/pxe.json").content_string)
    assert settings["interface"] == "br-prov" and settings["server_address"] == "10.0.50.1"
    assert (settings["range_start"], settings["range_end"]) == ("10.0.50.100", "10.0.50.109")


def test_the_deploy_kernel_and_ramdisk_are_served_and_their_manifest_is_not(host):
    for name in ("vmlinuz", "initrd.img"):
        assert host.file("/var/lib/nimbus/pxe/http/deploy/" + name).size > 1024 * 1024
        assert fetch(host, "/deploy/" + name, method="HEAD")[0] == 200
    manifest = host.file("/var/lib/nimbus/pxe/http/deploy/manifest").content_string
    assert "kernel=linux-image-" in manifest and "virtio_net" in manifest
    for path in ("/deploy/manifest", "/deploy/", "/images/", "/images/not-an-image.raw"):
        assert fetch(host, path)[0] in (403, 404), path


def test_the_callback_service_listens_on_the_provisioning_address_and_answers_no_stranger(host):
    assert host.socket("tcp://10.0.50.1:8089").is_listening
    assert not host.socket("tcp://0.0.0.0:8089").is_listening
    ask = ("import http.client, sys; c = http.client.HTTPConnection('10.0.50.1', 8089, timeout=10); "
           "c.request('POST', sys.argv[1], body=sys.argv[2], headers={'Content-Type': "
           "'application/x-www-form-urlencoded'}); print(c.getresponse().status)")
    # The host's own address has no job: no token, no result taken.
    for path, body in (("/v1/lookup", "macs=52:54:00:be:00:10"), ("/v1/callback", "status=ok&token=x")):
        out = host.check_output("python3 -c %s %s %s" % tuple(map(_quote, (ask, path, body))))
        assert int(out) in (400, 404), (path, out)
    jobs = host.file("/var/lib/nimbus/pxe/jobs")
    assert jobs.is_directory and (jobs.user, jobs.group, jobs.mode) == ("root", "nimbus-pxe", 0o750)
    reports = host.file("/var/lib/nimbus/pxe/reports")
    assert reports.is_directory and (reports.user, reports.group, reports.mode) == ("nimbus-pxe", "nimbus-pxe", 0o700)


def test_the_callback_service_is_not_root_and_cannot_reach_the_bmc_passwords(host):
    """It talks to the provisioning network: its own user, no capabilities, the node records out of its sight."""
    unit = "nimbus-pxe-callback.service"
    pid = host.check_output("systemctl show --property=MainPID --value %s" % unit)
    status = host.file("/proc/%s/status" % pid).content_string
    fields = dict(line.split(":", 1) for line in status.splitlines())
    uid = host.check_output("id -u nimbus-pxe")
    assert fields["Uid"].split() == [uid] * 4 and fields["CapEff"].strip() == "0" * 16
    assert fields["NoNewPrivs"].strip() == "1"
    # In its mount namespace the node records' directory is covered (an empty, inaccessible one), whatever the
    # records' modes.
    mounts = host.file("/proc/%s/mountinfo" % pid).content_string.splitlines()
    assert "/var/lib/nimbus/pxe/nodes" in [line.split()[4] for line in mounts]
    # What it may write: its reports, and nothing of the jobs.
    probe = "nsenter --target %s --mount --setuid %s --setgid %s touch %%s" % (pid, uid, uid)
    assert host.run(probe % "/var/lib/nimbus/pxe/reports/.probe").rc == 0
    host.run("rm -f /var/lib/nimbus/pxe/reports/.probe")
    assert host.run(probe % "/var/lib/nimbus/pxe/jobs/.probe").rc != 0
