"""Test BMCs (tests/support/ipmi_bmc.py) in processes of their own, on loopback, for the bare-metal tests."""

import os
import signal
import socket
import subprocess
import sys
import time

BMC_SCRIPT = os.path.join(os.path.dirname(os.path.realpath(__file__)), "..", "..", "..", "support", "ipmi_bmc.py")
USER = "admin"
PASSWORD = "bmc-Secret-77"


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bmc_options(port, **changes):
    options = dict(address="127.0.0.1", port=port, username=USER, password=PASSWORD, privilege="administrator",
                   allow_insecure=False, timeout=10, retries=0, retry_interval=0.5)
    options.update(changes)
    return options


class RunningBmc:
    def __init__(self, process, port, journal):
        self.process = process
        self.port = port
        self.journal_path = journal

    def options(self, **changes):
        return bmc_options(self.port, **changes)

    def power_off_from_inside(self):
        """What the machine's own system does with poweroff: off, without a BMC request."""
        self.process.send_signal(signal.SIGUSR1)

    def journal(self):
        """The chassis requests the machine took so far."""
        if not os.path.exists(self.journal_path):
            return []
        with open(self.journal_path, encoding="utf-8") as f:
            return f.read().split()


def bmc_starter(tmp_path):
    """The start_bmc fixture (tests/unit/plugins/modules/conftest.py):
    start_bmc(suites="conforming", power="off", acpi=True, temperature=31, bare=False) -> RunningBmc, each
    stopped after the test."""
    started = []
    secret = tmp_path / "bmc-password"
    secret.write_text(PASSWORD + "\n")

    def start(suites="conforming", power="off", acpi=True, temperature=31, bare=False):
        port = free_udp_port()
        journal = str(tmp_path / ("journal-%d" % port))
        argv = [sys.executable, BMC_SCRIPT, "--port", str(port), "--user", USER, "--password-file", str(secret),
                "--suites", suites, "--power", power, "--journal", journal, "--temperature", str(temperature)] + (
                    [] if acpi else ["--no-acpi"]) + (["--bare"] if bare else [])
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        started.append(process)
        _wait_bound(port, process)
        return RunningBmc(process, port, journal)

    yield start
    for process in started:
        process.send_signal(signal.SIGKILL)
        process.wait()


def _wait_bound(port, process):
    """Until the BMC's process holds its UDP port (binding it ourselves then fails)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError("the test BMC exited: %s" % process.stderr.read().decode())
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return
        time.sleep(0.05)
    raise AssertionError("the test BMC did not bind port %d" % port)
