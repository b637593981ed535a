"""A stand-in for tgtd's management socket: decodes requests as tgtd does (the 120-byte header, then the
NUL-terminated parameter string), keeps targets and accounts, and answers show as tgtd prints it."""

import os
import socket
import struct
import threading

HEADER = struct.Struct("<ii64sIiQQIIIIII")


class FakeTgtd:
    def __init__(self, path):
        self.path = path
        self.targets = {}  # tid -> {"name", "luns": {lun: path}, "accounts": [], "acl": [], "sessions": 0}
        self.accounts = {}  # user -> password
        self.requests = []  # (mode, op, tid, lun, force, params) with passwords masked
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(8)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def close(self):
        self.sock.close()
        if os.path.exists(self.path):
            os.unlink(self.path)

    def serve(self):
        while True:
            try:
                conn = self.sock.accept()[0]
            except OSError:
                return
            with conn:
                data = b""
                while len(data) < HEADER.size:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                mode, op, lld, length, tid, _sid, lun, _cid, _host, _dtype, _acdir, _pack, force = \
                    HEADER.unpack_from(data)
                while len(data) < length:
                    data += conn.recv(4096)
                assert lld.rstrip(b"\0") == b"iscsi"
                params = data[HEADER.size:length]
                assert not params or params.endswith(b"\0")
                err, text = self.handle(mode, op, tid, lun, force, params.rstrip(b"\0").decode())
                body = (text.encode() + b"\0") if text and not err else b""
                conn.sendall(struct.pack("<II", err, 8 + len(body)) + body)

    def handle(self, mode, op, tid, lun, force, params):
        masked = params.split(",password=")[0] + (",password=***" if ",password=" in params else "")
        self.requests.append((mode, op, tid, lun, force, masked))
        if mode == 1 and op == 2:  # target show
            return 0, self.show()
        if mode == 1 and op == 0:  # target new
            if tid in self.targets:
                return 9, ""
            self.targets[tid] = {"name": params.split("targetname=", 1)[1], "luns": {}, "accounts": [], "acl": [],
                                 "sessions": 0}
            return 0, ""
        if mode == 1 and op == 1:  # target delete
            if tid not in self.targets:
                return 4, ""
            if self.targets[tid]["sessions"] and not force:
                return 19, ""
            del self.targets[tid]
            return 0, ""
        if mode == 2 and op == 0:  # logical unit new
            self.targets[tid]["luns"][lun] = params.split("path=", 1)[1]
            return 0, ""
        if mode == 1 and op == 3:  # target bind
            self.targets[tid]["acl"].append(params.split("initiator-address=", 1)[1])
            return 0, ""
        if mode == 7 and op == 0:  # account new
            user, password = params[len("user="):].split(",password=", 1)
            if user in self.accounts:
                return 14, ""
            self.accounts[user] = password
            return 0, ""
        if mode == 7 and op == 3:  # account bind
            user = params[len("user="):]
            if user not in self.accounts:
                return 15, ""
            self.targets[tid]["accounts"].append(user)
            return 0, ""
        if mode == 7 and op == 1:  # account delete
            user = params[len("user="):]
            if user not in self.accounts:
                return 15, ""
            del self.accounts[user]
            return 0, ""
        return 22, ""

    def show(self):
        lines = []
        for tid, t in sorted(self.targets.items()):
            lines += ["Target %d: %s" % (tid, t["name"]), "    System information:", "        Driver: iscsi",
                      "        State: ready", "    I_T nexus information:"]
            lines += ["        I_T nexus: %d" % n for n in range(t["sessions"])]
            lines += ["    LUN information:", "        LUN: 0", "            Type: controller",
                      "            Backing store path: None"]
            for lun, path in sorted(t["luns"].items()):
                lines += ["        LUN: %d" % lun, "            Type: disk", "            Backing store path: %s" % path]
            lines += ["    Account information:"] + ["        %s" % a for a in t["accounts"]]
            lines += ["    ACL information:"] + ["        %s" % a for a in t["acl"]]
        return "\n".join(lines) + "\n"
