"""What the container benchmarks share: the environment, commands, the container lock, one podman host."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("NIMBUS_VENV", REPO / ".venv"))
LOCK = Path("/tmp/nimbus-containers.lock")
IMAGE = "localhost/nimbus-debian:12"


def logger(tag):
    def log(msg):
        print("[%s] %s" % (tag, msg), file=sys.stderr, flush=True)
    return log


def env():
    e = dict(os.environ)
    e["PATH"] = "%s:%s" % (VENV / "bin", e.get("PATH", ""))
    e["ANSIBLE_COLLECTIONS_PATH"] = str(REPO / ".cache" / "collections")
    e["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
    e["ANSIBLE_NOCOLOR"] = "1"
    return e


def run(argv, check=True, env_extra=None, **kw):
    proc = subprocess.run(argv, capture_output=True, text=True, env=dict(env(), **(env_extra or {})), check=False,
                          **kw)
    if check and proc.returncode != 0:
        raise SystemExit("command failed: %s\n%s%s" % (shlex.join(argv), proc.stdout[-3000:], proc.stderr[-3000:]))
    return proc


@contextlib.contextmanager
def container_lock(log):
    """The lock Molecule scenarios take too: two container runs never share the two cores."""
    with open(LOCK, "a", encoding="utf-8") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log("waiting for %s (another container run is going on)" % LOCK)
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def timed(func):
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def inventory_for(path, host):
    Path(path).write_text("all:\n  hosts:\n    %s:\n      ansible_connection: containers.podman.podman\n"
                          "      ansible_python_interpreter: /usr/bin/python3\n" % host)
    return path


def start_host(host, network, devices=()):
    """A fresh systemd container on its own podman network."""
    remove_host(host, network)
    run(["podman", "network", "create", network])
    argv = ["podman", "run", "-d", "--name", host, "--hostname", host, "--network", network, "--privileged",
            "--systemd=always"]
    for device in devices:
        argv += ["--device", device]
    run(argv + [IMAGE, "/sbin/init"])
    run(["podman", "exec", host, "systemctl", "is-system-running", "--wait"], check=False)


def remove_host(host, network):
    run(["podman", "rm", "-f", "-t", "0", host], check=False)
    run(["podman", "network", "rm", "-f", network], check=False)


def adhoc(inventory, host, module, args):
    return run(["ansible", "-i", inventory, host, "-m", module, "-a", args, "-o"])
