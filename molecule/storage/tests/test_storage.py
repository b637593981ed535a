"""The image store the images role built, the hypervisor's view of it, and the storage host the volumes role
built."""

import json
import shlex

import pytest

STORE = "podman://nimbus-st-store"
COMPUTE = "podman://nimbus-st-compute"
testinfra_hosts = [STORE]


@pytest.mark.parametrize("package", ["nginx", "qemu-utils", "util-linux", "tgt"])
def test_packages(host, package):
    assert host.package(package).is_installed


def test_the_stores_own_nginx_runs_unprivileged_and_the_distributions_does_not(host):
    store = host.service("nimbus-images")
    assert store.is_running and store.is_enabled
    assert host.socket("tcp://0.0.0.0:9292").is_listening
    assert not host.socket("tcp://0.0.0.0:80").is_listening
    assert not host.service("nginx").is_running and not host.service("nginx").is_enabled
    users = host.check_output("ps -o user= -C nginx").split()
    assert users and set(users) == {"www-data"}


def test_settings_name_the_store_and_its_url(host):
    settings = json.loads(host.file("/etc/nimbus/image-store.json").content_string)
    assert settings == {"path": "/var/lib/nimbus/image-store", "url": "http://nimbus-st-store:9292"}


def test_the_incoming_directory_is_roots_only(host):
    store = host.file("/var/lib/nimbus/image-store")
    incoming = host.file("/var/lib/nimbus/image-store/.incoming")
    assert store.is_directory and store.mode == 0o755
    assert incoming.is_directory and incoming.mode == 0o700 and incoming.user == "root"


def test_the_site_serves_only_what_hypervisors_read(host):
    site = host.file("/etc/nimbus/images-nginx.conf").content_string
    assert "autoindex off;" in site and "limit_except GET" in site
    # nginx accepts the whole configuration as it is on the host.
    assert host.run("nginx -q -t -e /dev/null -c /etc/nimbus/images-nginx.conf").rc == 0
    # Nothing else answers: a listing, the incoming directory, a path outside the store.
    for path in ("/", "/.incoming/", "/../etc/passwd", "/index.json/x", "/image-store.json"):
        assert status(host, path) in (400, 404), path


# http.client sends the path as it is (no normalisation), as an attacker's client would.
PROBE = """
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", 9292, timeout=10)
c.request("GET", sys.argv[1])
print(c.getresponse().status)
"""


def status(host, path):
    return int(host.check_output("python3 -c %s %s" % (_quote(PROBE), _quote(path))))


def _quote(text):
    return shlex.quote(text)


def test_the_hypervisor_knows_the_store():
    import testinfra
    compute = testinfra.get_host(COMPUTE)
    settings = json.loads(compute.file("/etc/nimbus/hypervisor.json").content_string)
    assert settings["image_store"] == {"url": "http://nimbus-st-store:9292"}


def test_the_iscsi_target_runs_and_listens_on_its_port(host):
    tgt = host.service("tgt")
    assert tgt.is_running and tgt.is_enabled
    assert host.socket("tcp://0.0.0.0:3260").is_listening
    dropin = host.file("/etc/systemd/system/tgt.service.d/nimbus.conf").content_string
    assert "--iscsi portal=0.0.0.0:3260" in dropin
    assert "ExecStartPost=-/usr/bin/python3 /usr/local/lib/nimbus/tgt_restore.py" in dropin
    # The attachments' CHAP passwords are root's only.
    secrets = host.file("/etc/nimbus/volume-secrets")
    assert secrets.is_directory and secrets.mode == 0o700 and secrets.user == "root"


def test_the_volume_settings_name_the_backends_types_and_image_store(host):
    settings = json.loads(host.file("/etc/nimbus/volumes.json").content_string)
    assert settings["types"] == {"standard": {"backend": "file", "format": "qcow2"},
                                 "raw": {"backend": "rawfile", "format": "raw"}}
    assert settings["backends"]["file"] == {"path": "/var/lib/nimbus/volumes", "capacity_gb": 6}
    assert settings["default_type"] == "standard"
    assert settings["image_store_url"] == "http://nimbus-st-store:9292"
    assert settings["iscsi"] == {"address": "0.0.0.0", "port": 3260, "iqn_prefix": "iqn.2026-12.cloud.nimbus"}


@pytest.mark.parametrize("path", ["/var/lib/nimbus/volumes", "/var/lib/nimbus/volumes/.incoming",
                                  "/var/lib/nimbus/volumes/snapshots", "/var/lib/nimbus/volumes-raw",
                                  "/var/lib/nimbus/volume-backups"])
def test_pools_and_backups_are_roots_only(host, path):
    directory = host.file(path)
    assert directory.is_directory and directory.mode == 0o700 and directory.user == "root"
