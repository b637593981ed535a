"""The API service embedded on the test machine for a Molecule scenario: SQLite, jobs run in the service's own
process, this checkout's code and collections, none of Molecule's Ansible settings.

    with EmbeddedAPI(state_dir, host="127.0.0.1") as api:
        api.manage("migrate")
        api.manage("bootstrap", "--password-stdin", "--public-url", api.url, stdin=password + "\\n")
        api.serve()
        ... api.url, api.log ...

Commands (``manage``) may run before and after ``serve``; the service stops when the block ends.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class EmbeddedAPI:
    def __init__(self, state: Path, host: str = "127.0.0.1", port: int | None = None, settings: dict | None = None):
        self.state = Path(state)
        self.host = host
        self.port = port or free_port(host)
        self.url = "http://%s:%d" % (host, self.port)
        self.log = self.state / "api.log"
        self._server = None
        # Jobs take the service's environment: none of Molecule's Ansible settings, this checkout's collections.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "NIMBUS_API_", "OS_"))}
        self.env.update(PYTHONPATH=str(REPO / "api"), ANSIBLE_COLLECTIONS_PATH=str(REPO / ".cache" / "collections"),
                        NIMBUS_API_DATABASE_URL="sqlite:///%s" % (self.state / "nimbus.db"),
                        NIMBUS_API_STATE_DIR=str(self.state), NIMBUS_API_DATA_DIR=str(self.state / "jobs"),
                        NIMBUS_API_PLAYBOOKS_DIR=str(REPO / "playbooks"), NIMBUS_API_QUEUE="inprocess",
                        NIMBUS_API_WORKERS="2", NIMBUS_API_HOST=host, NIMBUS_API_PORT=str(self.port))
        self.env.update({"NIMBUS_API_" + k.upper(): str(v) for k, v in (settings or {}).items()})

    def manage(self, *args: str, stdin: str = "") -> str:
        """Run ``nimbus-api ARGS``; its standard output (a failure fails the test with its output)."""
        proc = subprocess.run([sys.executable, "-m", "nimbus_api.cli", *args], env=self.env, cwd=self.state,
                              input=stdin, capture_output=True, text=True, timeout=300, check=False)
        assert proc.returncode == 0, (args, proc.stdout[-2000:], proc.stderr[-2000:])
        return proc.stdout

    def serve(self, timeout: float = 60) -> None:
        log = open(self.log, "w")
        self._server = subprocess.Popen([sys.executable, "-m", "nimbus_api.cli", "serve"], env=self.env,
                                        cwd=self.state, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection((self.host, self.port), timeout=1).close()
                return
            except OSError:
                assert self._server.poll() is None and time.monotonic() < deadline, self.log.read_text()[-3000:]
                time.sleep(0.5)

    def __enter__(self) -> EmbeddedAPI:
        return self

    def __exit__(self, *exc) -> None:
        if self._server is not None:
            self._server.terminate()
            self._server.wait(timeout=30)
