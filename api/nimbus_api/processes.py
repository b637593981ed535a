"""Finding and ending every process of a job.

ansible-runner, on cancel or timeout, SIGKILLs the process group of the ``ansible-playbook`` it started.
That is not the whole job: ansible-core's task workers call ``setsid()``, so a task (a ``pause``, a
module's command) runs in a session of its own and survives, orphaned, for as long as it likes. So each
job's processes carry ``NIMBUS_JOB_ID=<job id>`` in their environment (every descendant inherits it, a
forked one included), and a job is stopped by signalling every process that carries it, and each one's
process group: SIGINT first (ansible-playbook then stops its workers itself), SIGTERM after a grace
period, SIGKILL after another.
"""

from __future__ import annotations

import os
import signal
import time

MARKER = "NIMBUS_JOB_ID"
STEPS = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)


def job_processes(job_id: str) -> list[int]:
    """The live processes whose environment carries this job's marker (Linux /proc; none elsewhere)."""
    wanted = ("%s=%s" % (MARKER, job_id)).encode()
    found = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open("/proc/%s/environ" % entry, "rb") as f:
                if wanted in f.read().split(b"\0"):
                    found.append(int(entry))
        except OSError:  # gone meanwhile, or another user's
            continue
    return found


def signal_job(job_id: str, sig: int) -> list[int]:
    """Send ``sig`` to every process of the job and to each one's process group (never to our own)."""
    own = os.getpgrp()
    pids = job_processes(job_id)
    for pid in pids:
        try:
            group = os.getpgid(pid)
            if group != own:
                os.killpg(group, sig)
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            continue
    return pids


class Stopper:
    """Stops one job's processes, SIGINT, SIGTERM, SIGKILL, ``grace`` seconds apart; ``reason`` says why."""

    def __init__(self, job_id: str, grace: float):
        self.job_id = job_id
        self.grace = max(0.1, float(grace))
        self.reason: str | None = None
        self.since = 0.0
        self.sent = 0

    def start(self, reason: str) -> None:
        if self.reason is None:
            self.reason, self.since, self.sent = reason, time.monotonic(), 1
            signal_job(self.job_id, STEPS[0])

    def tick(self) -> None:
        """Escalate when the grace period is over; called often while the job runs."""
        if self.reason is None:
            return
        due = min(len(STEPS), 1 + int((time.monotonic() - self.since) // self.grace))
        while self.sent < due:
            signal_job(self.job_id, STEPS[self.sent])
            self.sent += 1

    def finish(self) -> None:
        """After the run of a stopped job: wait for what is left of it, escalating, until nothing is."""
        if self.reason is None:
            return
        deadline = self.since + self.grace * len(STEPS) + 5
        while job_processes(self.job_id) and time.monotonic() < deadline:
            self.tick()
            time.sleep(0.1)
        signal_job(self.job_id, signal.SIGKILL)
