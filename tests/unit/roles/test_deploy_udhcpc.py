"""The deploy ramdisk's udhcpc script (roles/pxe/files/deploy_udhcpc.sh) with a stand-in `ip` that records its
arguments: a lease is taken only from the provisioning host, and no router is ever set."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "roles" / "pxe" / "files" / "deploy_udhcpc.sh"


@pytest.fixture
def run(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "ip-calls"
    (bin_dir / "ip").write_text('#!/bin/sh\necho "$*" >>"%s"\n' % calls)
    (bin_dir / "ip").chmod(0o755)
    refused = tmp_path / "dhcp-refused"

    def run_script(event, **lease):
        env = {"PATH": "%s:/usr/bin:/bin" % bin_dir, "interface": "eth9", "NIMBUS_DHCP_SERVER": "10.0.50.1",
               "NIMBUS_DHCP_REFUSED": str(refused)}
        env.update(lease)
        done = subprocess.run(["/bin/sh", str(SCRIPT), event], env=env, capture_output=True, text=True, check=False)
        lines = calls.read_text().splitlines() if calls.exists() else []
        return done.returncode, lines, refused.read_text().strip() if refused.exists() else None

    return run_script


def test_a_lease_from_the_provisioning_host_is_taken_without_its_router(run):
    rc, calls, refused = run("bound", ip="10.0.50.100", mask="24", serverid="10.0.50.1", router="10.0.50.254")
    assert rc == 0 and refused is None
    assert calls == ["-4 addr flush dev eth9", "-4 addr add 10.0.50.100/24 dev eth9"]


def test_a_lease_from_another_server_is_not_taken(run):
    rc, calls, refused = run("bound", ip="192.0.2.7", mask="32", serverid="10.0.50.66", router="192.0.2.1")
    assert rc == 0 and refused == "10.0.50.66"
    assert calls == ["-4 addr flush dev eth9"]
    assert not any(" add " in call or "route" in call for call in calls)


def test_without_the_provisioning_hosts_address_nothing_is_taken(tmp_path):
    calls = tmp_path / "ip-calls"
    (tmp_path / "ip").write_text('#!/bin/sh\necho "$*" >>"%s"\n' % calls)
    (tmp_path / "ip").chmod(0o755)
    done = subprocess.run(["/bin/sh", str(SCRIPT), "bound"], capture_output=True, text=True, check=False,
                          env={"PATH": "%s:/usr/bin:/bin" % tmp_path, "interface": "eth9", "ip": "10.0.50.100",
                               "serverid": "10.0.50.1"})
    assert done.returncode != 0 and "names the provisioning host" in done.stderr
    assert calls.read_text().splitlines() == ["-4 addr flush dev eth9"]
