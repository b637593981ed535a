"""The ``openstack`` command and openstacksdk scripts, forked from one Python of the clients' virtualenv that has
imported them.

Every ``openstack`` process spends about 1.5 s of CPU importing the client, openstacksdk and their plugins
before it sends a request, and the tests run hundreds of them. Here the clients' Python imports them once; each
command then runs in a child forked from it, through the entry point of the ``openstack`` script
(``openstackclient.shell.main``), with the command's own environment, an empty standard input and its output
captured. SDK scripts run the same way, with the standard input they are given. A child shares nothing with
the next command: each is a process of its own, as with the script, only without the imports.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import threading
import time
from pathlib import Path

# The clients' side: one JSON request a line in, one JSON answer a line out, on the pipes the tests hold.
SERVER = r"""
import contextlib, importlib, io, json, os, pkgutil, sys, traceback

import openstack
import openstackclient
from openstackclient import shell

# What the commands load lazily (their command modules, the SDK's services), imported once before any fork.
for package in (openstackclient, openstack):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if ".tests" not in module.name and not module.name.endswith("__main__"):
            try:
                importlib.import_module(module.name)
            except Exception:
                pass
with contextlib.suppress(ImportError):
    importlib.import_module("keystonemiddleware.auth_token")


def run(request):
    os.environ.clear()
    os.environ.update(request["env"])
    sys.stdin = io.StringIO(request.get("stdin") or "")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            if "python" in request:
                exec(compile(request["python"], "<script>", "exec"), {"__name__": "__main__"})
                rc = 0
            else:
                rc = shell.main(request["argv"])
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:
            traceback.print_exc()
            rc = 1
    return {"rc": rc or 0, "stdout": out.getvalue(), "stderr": err.getvalue()}


for line in sys.stdin:
    request = json.loads(line)
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(reader)
        try:
            answer = run(request)
        except BaseException:
            answer = {"rc": 1, "stdout": "", "stderr": traceback.format_exc()}
        with os.fdopen(writer, "w") as pipe:
            json.dump(answer, pipe)
        os._exit(0)
    os.close(writer)
    with os.fdopen(reader) as pipe:
        answer = pipe.read()
    _, status = os.waitpid(pid, 0)
    if not answer:
        answer = json.dumps({"rc": 1, "stdout": "", "stderr": "the command's process ended with status %d" % status})
    sys.stdout.write(answer + "\n")
    sys.stdout.flush()
"""


class Shell:
    """Runs ``openstack`` commands and SDK scripts forked from one Python of ``venv``; thread-safe (one at a
    time)."""

    def __init__(self, venv: Path):
        self.venv = Path(venv)
        if not (self.venv / "bin" / "openstack").exists():
            raise AssertionError("%s has no openstack command: tools/test installs "
                                 "requirements/openstack-clients.txt there" % self.venv)
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None

    def _start(self):
        # Its own stderr goes to ours: an import error shows in the test's output. Each command is given its
        # whole environment; the OpenStack variables of ours are not a default for them.
        self._proc = subprocess.Popen([str(self.venv / "bin" / "python"), "-c", SERVER], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True, bufsize=1, start_new_session=True,
                                      env={k: v for k, v in os.environ.items() if not k.startswith("OS_")})

    def close(self):
        with self._lock:
            self._stop()

    def _stop(self):
        if self._proc is not None:
            # The command running in a child goes too.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait()
            for pipe in (self._proc.stdin, self._proc.stdout):
                pipe.close()
            self._proc = None

    def _ask(self, request: dict, args, timeout: float) -> subprocess.CompletedProcess:
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._start()
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
            deadline = time.monotonic() + timeout
            ready = []
            while not ready:
                left = deadline - time.monotonic()
                if left <= 0:
                    # A command that hangs takes its process with it; the next one starts a new one.
                    self._stop()
                    raise subprocess.TimeoutExpired(args, timeout)
                ready = select.select([self._proc.stdout], [], [], left)[0]
            line = self._proc.stdout.readline()
            if not line:
                code = self._proc.wait()
                self._proc = None
                raise RuntimeError("the clients' Python ended (rc %s) during %s" % (code, args))
        answer = json.loads(line)
        return subprocess.CompletedProcess(args, answer["rc"], answer["stdout"], answer["stderr"])

    def openstack(self, *args: str, env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
        """``openstack ARGS`` with this environment (standard input empty)."""
        return self._ask({"argv": list(args), "env": env}, ["openstack", *args], timeout)

    def python(self, code: str, env: dict, stdin: str = "", timeout: float = 600) -> subprocess.CompletedProcess:
        """A script, as ``python -c CODE`` would run it with this environment and standard input."""
        return self._ask({"python": code, "env": env, "stdin": stdin}, ["python", "-c", "..."], timeout)
