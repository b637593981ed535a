# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The provisioning host's callback service (nimbus-pxe-callback.service): what a node's deploy ramdisk asks
for, and what it reports, while nimbus.cloud.baremetal_node deploys or cleans it.

nimbus.cloud.baremetal_node writes a job per node in ``<state_dir>/jobs/<node>.json`` before it powers the node
on: what to do (``deploy`` or ``clean``), the node's address and MACs, the image's URL, size and sha256, and a
one-time token. The ramdisk then

- ``POST /v1/lookup`` (``macs=<mac>,<mac>``): answered only to the node's own address and only once, with the
  job's settings and the token as ``key=value`` lines (the token leaves the host this one time, as Ironic hands
  its agent token over on the first lookup; a second lookup, a replayed one or an impostor's, gets 409). That it
  was handed out is written to ``<state_dir>/reports/<node>.issued.json``;
- ``POST /v1/callback`` (``token=<token>&status=ok|failed``, the written image's ``sha256``, a ``message``,
  the ramdisk's ``uptime`` and ``marks``, its uptime at each step: ``lease:3.1,job:3.4,done:9.8``): the
  result, taken only from the node's address, with the token, once (the token travels in the body, never on a
  command line or in a URL). It is written to ``<state_dir>/reports/<node>.result.json``, where the module
  reads it.

The service runs as its own user (``nimbus-pxe``), which may read the jobs (root's directory, the group's to
read) and write only the reports directory: whoever took the service over could neither change a job nor read
the nodes' records (their BMC passwords), which are root's alone. Everything a request carries is checked
against what it may hold before it is used or written; nothing of it is evaluated. Tokens are never logged.
Only the Python standard library is used.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import fcntl
import hashlib
import hmac
import http.server
import json
import os
import re
import sys
import threading
from urllib.parse import parse_qs

MAX_BODY = 4096
# How long a client may take to send its request, and how many may be connected at once: a slow or idle
# connection holds a thread, and every ramdisk of the host shares them.
CLIENT_TIMEOUT = 10
MAX_CLIENTS = 32
LENGTH = re.compile(r"^[0-9]{1,5}$")
TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
# A job not taken within this many seconds of its making is stale (its run was killed): never handed out.
MAX_JOB_AGE = 7200
# Control characters as escapes in the log: a request's path is the client's, and a terminal reads the journal.
LOGGED = {code: "\\x%02x" % code for code in list(range(32)) + [127]}
MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
# What a value handed to the ramdisk may hold: its shell reads the answer line by line, never evaluates it.
SAFE_VALUE = re.compile(r"^[A-Za-z0-9._:/=+-]{0,512}$")
# What a ramdisk's message may hold (printable ASCII, one line).
MESSAGE = re.compile(r"^[ -~]{0,300}$")
# The ramdisk's uptime at each of its steps (a name and seconds, comma-separated; at most 8).
SECONDS = r"[0-9]{1,7}(\.[0-9]{1,3})?"
MARKS = re.compile(r"^[a-z]{1,16}:%s(,[a-z]{1,16}:%s){0,7}$" % (SECONDS, SECONDS))
# The job's fields the lookup hands to the ramdisk, in this order.
ANSWERED = ("node", "mode", "image_url", "image_size", "image_sha256", "disk", "next_step")


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def age(stamp, clock=None):
    """Seconds since ``stamp`` (now()'s format); None when it is not one."""
    try:
        made = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    except (TypeError, ValueError):
        return None
    return ((clock or datetime.datetime.now(datetime.timezone.utc)) - made).total_seconds()


def token_digest(token):
    return hashlib.sha256(token.encode("ascii")).hexdigest()


class Jobs:
    """The job files of one provisioning host (read only) and the reports the service writes of them; every
    read-modify-write under the jobs directory's lock, which the module takes too."""

    def __init__(self, directory, reports):
        self.directory = directory
        self.reports = reports
        self.guard = threading.Lock()

    @contextlib.contextmanager
    def locked(self):
        # The module makes the lock file with the first job: none yet, no job to look up. A read-only open is
        # enough for flock, and all the service may have.
        try:
            lock = open(os.path.join(self.directory, ".lock"), encoding="ascii")
        except FileNotFoundError:
            raise Refused(404, "no job for this address")
        with self.guard, lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def path(self, node, suffix=".json"):
        return os.path.join(self.directory, node + suffix)

    def report_path(self, node, suffix):
        return os.path.join(self.reports, node + suffix)

    def for_address(self, address):
        """The one job of the node at ``address``, or None."""
        found = []
        for file_name in sorted(os.listdir(self.directory)):
            node = file_name[:-len(".json")]
            if not file_name.endswith(".json") or file_name.endswith(".result.json") or not NAME.match(node):
                continue
            try:
                with open(self.path(node), encoding="utf-8") as f:
                    job = json.load(f)
            except (OSError, ValueError):
                continue
            if job.get("address") == address and job.get("node") == node:
                found.append(job)
        return found[0] if len(found) == 1 else None

    def issued(self, job):
        """Whether ``job``'s token was handed out (a mark of an earlier job, another token, is not this one's)."""
        try:
            with open(self.report_path(job["node"], ".issued.json"), encoding="utf-8") as f:
                mark = json.load(f)
        except (OSError, ValueError):
            return False
        return isinstance(mark, dict) and hmac.compare_digest(str(mark.get("token_sha256", "")),
                                                              str(job.get("token_sha256", "")))

    def write(self, name, data):
        path = os.path.join(self.reports, name)
        part = path + ".part"
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(part, path)


class Refused(Exception):
    def __init__(self, status, reason):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def parse_form(body):
    """A urlencoded body as {key: value}, each key once."""
    try:
        fields = parse_qs(body.decode("ascii"), keep_blank_values=True, strict_parsing=bool(body),
                          max_num_fields=16)
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, "the body is not a urlencoded form")
    if any(len(values) != 1 for values in fields.values()):
        raise Refused(400, "a field is given twice")
    return {key: values[0] for key, values in fields.items()}


def lookup(jobs, address, form):
    """The job's settings and its token for the node at ``address``, once."""
    macs = [mac.strip().lower() for mac in form.get("macs", "").split(",") if mac.strip()]
    if not macs or len(macs) > 16 or not all(MAC.match(mac) for mac in macs):
        raise Refused(400, "macs must be the node's MACs, comma-separated")
    with jobs.locked():
        job = jobs.for_address(address)
        if job is None or not set(macs) & set(job.get("macs", [])):
            raise Refused(404, "no job for this address and these MACs")
        if not job.get("token") or jobs.issued(job):
            raise Refused(409, "the token of this job was handed out already")
        made = age(job.get("created_at"))
        if made is None or made > MAX_JOB_AGE:
            raise Refused(410, "this job is older than %d s: its run is over" % MAX_JOB_AGE)
        answer = {key: str(job.get(key, "")) for key in ANSWERED}
        answer["token"] = job["token"]
        for key, value in answer.items():
            if not SAFE_VALUE.match(value):
                raise Refused(500, "the job's %s cannot be handed over" % key)
        mark = {"node": job["node"], "token_sha256": job["token_sha256"], "issued_at": now()}
        jobs.write(job["node"] + ".issued.json", mark)
    return job["node"], "".join("%s=%s\n" % (key, answer[key]) for key in ANSWERED + ("token",))


def callback(jobs, address, form):
    """The ramdisk's result for the node at ``address``, with the job's token, once."""
    token = form.get("token", "")
    if not TOKEN.match(token):
        raise Refused(400, "token must be the job's token")
    status = form.get("status")
    if status not in ("ok", "failed"):
        raise Refused(400, "status must be ok or failed")
    message = form.get("message", "")
    if not MESSAGE.match(message):
        raise Refused(400, "message must be one line of printable ASCII, 300 characters at most")
    sha256 = form.get("sha256", "")
    if sha256 and not SHA256.match(sha256):
        raise Refused(400, "sha256 must be 64 hexadecimal digits")
    uptime = form.get("uptime", "")
    if uptime and not re.match(r"^%s$" % SECONDS, uptime):
        raise Refused(400, "uptime must be the ramdisk's seconds since it booted")
    marks = form.get("marks", "")
    if marks and not MARKS.match(marks):
        raise Refused(400, "marks must be step:seconds pairs, comma-separated")
    with jobs.locked():
        job = jobs.for_address(address)
        if job is None or not jobs.issued(job):
            raise Refused(404, "no job for this address waits for a result")
        if not hmac.compare_digest(token_digest(token), job.get("token_sha256", "")):
            raise Refused(403, "wrong token")
        if os.path.lexists(jobs.report_path(job["node"], ".result.json")):
            raise Refused(409, "this job has its result already")
        if job["mode"] == "deploy" and status == "ok" and not sha256:
            raise Refused(400, "a deploy's result names the sha256 of what it wrote")
        jobs.write(job["node"] + ".result.json", {
            "node": job["node"], "mode": job["mode"], "status": status, "sha256": sha256 or None,
            "message": message, "uptime": float(uptime) if uptime else None,
            "marks": {step: float(at) for step, at in (mark.split(":") for mark in marks.split(","))} if marks else {},
            "received_at": now()})
    return job["node"]


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "nimbus-pxe-callback"
    sys_version = ""
    timeout = CLIENT_TIMEOUT

    def do_POST(self):  # noqa: N802 (http.server's name)
        address = self.client_address[0]
        try:
            length = self.headers.get("Content-Length", "")
            if not LENGTH.match(length) or int(length) > MAX_BODY:
                raise Refused(413 if LENGTH.match(length) else 411, "a body of %d bytes at most" % MAX_BODY)
            form = parse_form(self.rfile.read(int(length)))
            if self.path == "/v1/lookup":
                node, text = lookup(self.server.jobs, address, form)
                self.log_message("lookup: node %s at %s took its job and token", node, address)
            elif self.path == "/v1/callback":
                node = callback(self.server.jobs, address, form)
                text = "ok\n"
                self.log_message("callback: node %s at %s reported %s", node, address, form.get("status"))
            else:
                raise Refused(404, "not found")
        except Refused as e:
            self.log_message("refused %s from %s: %s", self.path[:64], address, e.reason)
            return self.answer(e.status, e.reason + "\n")
        except Exception as e:  # pylint: disable=broad-exception-caught  # an answer, never a dropped request
            self.log_message("error on %s from %s: %s", self.path[:64], address, type(e).__name__)
            return self.answer(500, "the request could not be handled\n")
        return self.answer(200, text)

    def do_GET(self):  # noqa: N802
        self.answer(405, "POST only\n")

    def answer(self, status, text):
        body = text.encode("ascii")
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin  # http.server's signature
        (self.server.log or sys.stderr).write("%s\n" % (format % args).translate(LOGGED))


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, jobs, log=None):
        super().__init__(address, Handler)
        self.jobs = jobs
        self.log = log  # a stream for the log lines; None: standard error (the journal)
        self.slots = threading.BoundedSemaphore(MAX_CLIENTS)

    def process_request(self, request, client_address):
        # A thread a client, MAX_CLIENTS at most: one more is closed at once (a ramdisk asks again).
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", default="/etc/nimbus/pxe.json")
    args = parser.parse_args(argv)
    with open(args.settings, encoding="utf-8") as f:
        settings = json.load(f)
    jobs = Jobs(os.path.join(settings["state_dir"], "jobs"), os.path.join(settings["state_dir"], "reports"))
    server = Server((settings["server_address"], int(settings["callback_port"])), jobs)
    server.serve_forever()


if __name__ == "__main__":
    main()
