# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""tgtd's management protocol, spoken directly, so that no CHAP password is ever on a command line.

``tgtadm --op new --mode account --password P`` puts the password in its argv, which every user of the host
can read in /proc while it runs; tgt-admin runs tgtadm for every account of its configuration. This client
sends the same requests as tgtadm over tgtd's management socket instead: one request per connection, a
120-byte ``struct tgtadm_req`` followed by a NUL-terminated ``key=value,...`` string, answered by
``struct tgtadm_rsp`` (error, length) and, for ``show``, text. tgtd accepts only a peer with its own uid and
gid (root).

Only the standard library: the volumes role installs this file beside its restore script, which exports again
the attachments the volume records hold after tgtd restarts (tgtd keeps its targets in memory only).
"""

from __future__ import annotations

import json
import os
import re
import socket
import struct

SOCKET = "/var/run/tgtd/socket.0"
LLD = b"iscsi"
HEADER = struct.Struct("<ii64sIiQQIIIIII")
RESPONSE = struct.Struct("<II")
RESPONSE_SIZE = struct.calcsize("<II")
ALL_LUNS = 2 ** 64 - 1
MAX_PARAMS = 8 * 1024

OP_NEW, OP_DELETE, OP_SHOW, OP_BIND, OP_UNBIND, OP_UPDATE = range(6)
MODE_SYSTEM, MODE_TARGET, MODE_DEVICE, MODE_PORTAL, MODE_LLD, MODE_SESSION, MODE_CONNECTION, MODE_ACCOUNT = range(8)

# tgt 1.0.85's error codes (tgtadm_strerror's table).
ERRORS = {
    1: "unknown error", 2: "out of memory", 3: "no such driver", 4: "no such target", 5: "no such logical unit",
    6: "no such session", 7: "no such connection", 8: "no such binding", 9: "the target already exists",
    10: "the logical unit already exists", 11: "the binding already exists", 12: "the access control rule already "
    "exists", 13: "no such access control rule", 14: "the account already exists", 15: "no such account",
    16: "too many accounts", 17: "invalid request", 18: "the outgoing account already exists",
    19: "the target is in use (an initiator is logged in)", 20: "the logical unit is in use",
    21: "the driver is in use", 22: "unsupported operation", 23: "unknown parameter", 24: "removal prevented",
}
NO_TARGET, TARGET_EXIST, NO_USER, USER_EXIST, TARGET_ACTIVE = 4, 9, 15, 14, 19

# What may go into a parameter string: tgtd splits it on commas (a password is the rest of its string).
SAFE_VALUE = re.compile(r"^[A-Za-z0-9.:/_\[\]-]+$")


class TgtError(Exception):
    def __init__(self, code, what):
        self.code = code
        super().__init__("tgtd refused to %s: %s" % (what, ERRORS.get(code, "error %d" % code)))


class Tgt:
    """A connection factory to tgtd; every method is one request."""

    def __init__(self, path=None, timeout=30):
        path = path or (os.environ["TGT_IPC_SOCKET"] + ".0" if os.environ.get("TGT_IPC_SOCKET") else SOCKET)
        self.path = path
        self.timeout = timeout

    def request(self, what, mode, op, tid=-1, lun=ALL_LUNS, params=(), force=False, secret=None):
        """Send one request; returns the answer's text. ``params`` are (key, value) pairs; ``secret`` is a
        password sent last (tgtd takes the rest of the string as the password)."""
        text = ",".join("%s=%s" % (k, _safe(k, v)) for k, v in params)
        if secret is not None:
            text += ",password=" + secret
        body = (text.encode("utf-8") + b"\0") if text else b""
        if len(body) > MAX_PARAMS:
            raise ValueError("tgtd request too long")
        header = HEADER.pack(mode, op, LLD, HEADER.size + len(body), tid, 0, lun, 0, 0, 0, 0, 0, 1 if force else 0)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(self.timeout)
            try:
                sock.connect(self.path)
            except OSError as e:
                raise ConnectionError("cannot reach tgtd at %s (%s): is tgt.service running?" % (self.path, e))
            sock.sendall(header + body)
            answer = _read_all(sock)
        if len(answer) < RESPONSE_SIZE:
            raise ConnectionError("tgtd closed the connection without an answer to %s (not root?)" % what)
        err, length = RESPONSE.unpack_from(answer)
        if err:
            raise TgtError(err, what)
        return answer[RESPONSE_SIZE:length].rstrip(b"\0").decode("utf-8", "replace")

    # --- reading
    def targets(self):
        """{tid: {"name", "luns": {lun: path}, "accounts": [...], "acl": [...], "sessions": n}} from ``show``."""
        return parse_show(self.request("list the targets", MODE_TARGET, OP_SHOW))

    # --- changing
    def new_target(self, tid, iqn):
        self.request("create target %s" % iqn, MODE_TARGET, OP_NEW, tid=tid, params=[("targetname", iqn)])

    def new_lun(self, tid, lun, path):
        self.request("add %s as LUN %d of target %d" % (path, lun, tid), MODE_DEVICE, OP_NEW, tid=tid, lun=lun,
                     params=[("path", path)])

    def allow_address(self, tid, address):
        self.request("allow %s on target %d" % (address, tid), MODE_TARGET, OP_BIND, tid=tid,
                     params=[("initiator-address", address)])

    def new_account(self, user, password):
        if not password or "\0" in password:
            raise ValueError("a CHAP password must be a non-empty string without NUL")
        self.request("create account %s" % user, MODE_ACCOUNT, OP_NEW, params=[("user", user)], secret=password)

    def bind_account(self, tid, user):
        self.request("bind account %s to target %d" % (user, tid), MODE_ACCOUNT, OP_BIND, tid=tid,
                     params=[("user", user)])

    def delete_account(self, user):
        self.request("delete account %s" % user, MODE_ACCOUNT, OP_DELETE, params=[("user", user)])

    def delete_target(self, tid, force=False):
        self.request("delete target %d" % tid, MODE_TARGET, OP_DELETE, tid=tid, force=force)

    # --- a volume's export as one unit
    def export(self, tid, iqn, path, initiator, user, password):
        """Target, LUN 1, the initiator's address and a CHAP account; undone when a step fails."""
        self.new_target(tid, iqn)
        try:
            self.new_lun(tid, 1, path)
            self.allow_address(tid, initiator)
            try:
                self.new_account(user, password)
            except TgtError as e:
                if e.code != USER_EXIST:
                    raise
                # Left by an export that failed half way: its password is replaced.
                self.delete_account(user)
                self.new_account(user, password)
            self.bind_account(tid, user)
        except Exception:
            self.unexport(tid, user, force=True, missing_ok=True)
            raise

    def unexport(self, tid, user, force=False, missing_ok=False):
        try:
            self.delete_target(tid, force=force)
        except TgtError as e:
            if not (missing_ok and e.code == NO_TARGET):
                raise
        try:
            self.delete_account(user)
        except TgtError as e:
            if e.code != NO_USER:
                raise


def _safe(key, value):
    value = str(value)
    if not SAFE_VALUE.match(value):
        raise ValueError("tgtd parameter %s has characters it cannot take: %r" % (key, value))
    return value


def _read_all(sock):
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def parse_show(text):
    targets, current, section = {}, None, None
    for line in text.splitlines():
        match = re.match(r"^Target (\d+): (\S+)$", line)
        if match:
            current = {"name": match.group(2), "luns": {}, "accounts": [], "acl": [], "sessions": 0}
            targets[int(match.group(1))] = current
            section, lun = None, None
            continue
        if current is None:
            continue
        stripped = line.strip()
        if stripped.endswith("information:"):
            section = stripped[:-len(" information:")]
            continue
        if section == "I_T nexus" and stripped.startswith("I_T nexus:"):
            current["sessions"] += 1
        elif section == "LUN":
            if stripped.startswith("LUN: "):
                lun = int(stripped[5:])
            elif stripped.startswith("Backing store path: ") and lun is not None:
                current["luns"][lun] = stripped[len("Backing store path: "):]
        elif section == "Account" and stripped:
            current["accounts"].append(stripped)
        elif section == "ACL" and stripped:
            current["acl"].append(stripped)
    return targets


# --- after tgtd starts: the exports the volume records hold --------------------------------------

def exported(settings):
    """(tid, iqn, path, initiator, user, secret file) of every attachment the volume records hold."""
    for spec in settings["backends"].values():
        pool = spec["path"]
        try:
            names = sorted(os.listdir(pool))
        except FileNotFoundError:
            continue
        for name in names:
            if not name.endswith(".json"):
                continue
            with open(os.path.join(pool, name)) as f:
                record = json.load(f)
            for attachment in record.get("attachments") or []:
                yield (attachment["tid"], attachment["iqn"], os.path.join(pool, record["id"]),
                       attachment["initiator"], attachment["username"], attachment["secret_file"])


def restore(settings_path="/etc/nimbus/volumes.json", tgt=None):
    """Export again, after a restart of tgtd, every attachment the records hold; returns how many."""
    with open(settings_path) as f:
        settings = json.load(f)
    tgt = tgt or Tgt()
    present = tgt.targets()
    count = 0
    for tid, iqn, path, initiator, user, secret_file in exported(settings):
        if tid in present:
            continue
        with open(secret_file) as f:
            password = f.read().strip()
        tgt.export(tid, iqn, path, initiator, user, password)
        count += 1
    return count
