# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Passes of Swift's account, container and object replicators, with their own figures.

A replicator run with ``--once`` walks the host's devices, compares every
partition it holds with the other devices the ring puts it on, and pushes what
they lack. Swift writes the figures of a pass to its recon cache
(``<recon_cache_path>/<server>.recon``), but the replicator daemons running on
the host write the same file after each of their passes, so a pass run here
reads its figures from a recon directory of its own: the replicator is given a
configuration *directory* (Swift reads every ``*.conf`` of it, in name order)
holding a link to the server's configuration and a last file that moves the
replicator's ``recon_cache_path`` to a fresh directory.

One pass is not always enough: a push can race a daemon's pass or a write, or
fail against a busy peer (Swift counts such failures and moves on). What shows
that a device holds everything is a pass that found every partition in sync
with its other devices: nothing pushed, nothing failed.
"""

from __future__ import annotations

import configparser
import json
import os
import pwd
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field

from ansible_collections.nimbus.cloud.plugins.module_utils._errors import NimbusError, ValidationError

SERVERS = ("account", "container", "object")
# Swift device names are directory names under the devices root; the same rule the swift role checks.
DEVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_PASSES = 50

# The figures of a pass that count something sent to, merged into or removed from a device. The object
# replicator counts suffix directories rsynced and handoff partitions removed; the database replicators count
# databases rsynced whole, sent as row diffs, merged remotely, given new timestamps, or removed as handoffs.
_MOVED = {
    "object": ("suffix_sync", "remove"),
    "account": ("rsync", "diff", "remote_merge", "ts_repl", "remove"),
    "container": ("rsync", "diff", "remote_merge", "ts_repl", "remove"),
}
_STATS = {
    "object": ("attempted", "success", "failure", "hashmatch", "rsync", "remove", "suffix_count", "suffix_hash",
               "suffix_sync"),
    "account": ("attempted", "success", "failure", "no_change", "hashmatch", "rsync", "diff", "diff_capped",
                "remote_merge", "ts_repl", "remove", "empty"),
}
_STATS["container"] = _STATS["account"]


@dataclass
class Pass:
    """One replicator run: which server, the how-manyeth pass, Swift's figures."""

    server: str
    number: int
    stats: dict
    failure_nodes: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def moved(self):
        return sum(int(self.stats.get(key, 0)) for key in _MOVED[self.server])

    @property
    def failures(self):
        return int(self.stats.get("failure", 0))

    @property
    def in_sync(self):
        return self.moved == 0 and self.failures == 0

    def view(self):
        return {"server": self.server, "pass": self.number, "moved": self.moved, "failures": self.failures,
                "failure_nodes": self.failure_nodes, "in_sync": self.in_sync, "seconds": round(self.seconds, 2),
                "stats": self.stats}


def check_request(servers, devices, max_passes):
    """Refuse bad input before anything runs."""
    if not servers:
        raise ValidationError("servers must name at least one of %s" % ", ".join(SERVERS))
    bad = [d for d in devices or () if not DEVICE_NAME.match(d)]
    if bad:
        raise ValidationError("devices must be Swift device names (letters, digits, '.', '_', '-'): %s"
                              % ", ".join(repr(d) for d in bad))
    if not 1 <= max_passes <= MAX_PASSES:
        raise ValidationError("max_passes must be between 1 and %d (given: %d)" % (MAX_PASSES, max_passes))


def server_conf(conf_dir, server):
    path = os.path.join(conf_dir, "%s-server.conf" % server)
    if not os.path.isfile(path):
        raise NimbusError("%s not found: this host runs no %s server" % (path, server))
    return path


def conf_user(path):
    """The user the server's daemons drop to (Swift's ``user``, default swift)."""
    parser = configparser.RawConfigParser(strict=False)
    try:
        parser.read(path)
    except configparser.Error as e:
        raise NimbusError("cannot read %s: %s" % (path, e)) from None
    return parser.defaults().get("user", "swift")


def replicator_argv(server, conf_path, devices):
    argv = ["swift-%s-replicator" % server, conf_path, "--once"]
    if devices:
        argv += ["--devices", ",".join(devices)]
    return argv


def server_user(conf):
    """The account the server's daemons drop to; the replicator writes its figures as that user."""
    name = conf_user(conf)
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise NimbusError("%s names a user this host does not have: %s" % (conf, name)) from None


def run_pass(runner, conf, user, server, number, devices=None):
    """Run the server's replicator once in a recon directory of its own and return its figures.

    Returns None in check mode, where nothing runs.
    """
    argv = replicator_argv(server, conf, devices)
    done = runner.apply(" ".join(argv), _replicate_once, runner, conf, server, devices, user)
    if done is None:
        return None
    figures, seconds = done
    stats = {key: int(figures.get(key, 0)) for key in _STATS[server]}
    return Pass(server, number, stats, failure_nodes=figures.get("failure_nodes") or {}, seconds=seconds)


def _replicate_once(runner, conf, server, devices, user):
    work = tempfile.mkdtemp(prefix="nimbus-replicate-")
    # Apart from the root-only work directory: the replicator drops to the server's user before it writes.
    recon = tempfile.mkdtemp(prefix="nimbus-replicate-recon-")
    try:
        os.chown(recon, user.pw_uid, user.pw_gid)
        conf_d = os.path.join(work, "conf.d")
        os.mkdir(conf_d, 0o700)
        os.symlink(conf, os.path.join(conf_d, "00-server.conf"))
        with open(os.path.join(conf_d, "99-recon.conf"), "w", encoding="utf-8") as f:
            f.write("[%s-replicator]\nrecon_cache_path = %s\n" % (server, recon))
        started = time.monotonic()
        runner.change(replicator_argv(server, conf_d, devices))
        seconds = time.monotonic() - started
        return _read_recon(os.path.join(recon, "%s.recon" % server), server), seconds
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(recon, ignore_errors=True)


def _read_recon(path, server):
    try:
        with open(path, encoding="utf-8") as f:
            figures = json.load(f).get("replication_stats")
    except (OSError, ValueError):
        figures = None
    if not isinstance(figures, dict):
        raise NimbusError("the %s replicator ran but wrote no figures of its pass" % server)
    return figures


def replicate(runner, conf_dir, servers, devices=None, until_in_sync=False, max_passes=5):
    """Each server's replicator once, or again until a pass finds everything in sync (at most max_passes).

    Every server's configuration and user are checked before the first pass runs.
    """
    confs = {}
    for server in servers:
        conf = server_conf(conf_dir, server)
        confs[server] = (conf, server_user(conf))
    passes = []
    for server in servers:
        conf, user = confs[server]
        for number in range(1, max_passes + 1):
            done = run_pass(runner, conf, user, server, number, devices)
            if done is None:
                break
            passes.append(done)
            if not until_in_sync or done.in_sync:
                break
    return passes


def outcome(passes, until_in_sync):
    """The result keys, or the error for passes that left failures (or, when asked, anything out of sync)."""
    last = {}
    for done in passes:
        last[done.server] = done
    result = {
        "changed": any(done.moved for done in passes),
        "passes": [done.view() for done in passes],
        "in_sync": all(done.in_sync for done in last.values()),
    }
    failing = [done for done in last.values() if done.failures]
    if failing:
        raise NimbusError("; ".join("the %s replicator's last pass failed %d times (%s)"
                                    % (done.server, done.failures, ", ".join(sorted(done.failure_nodes)) or "?")
                                    for done in failing), **result)
    behind = [done for done in last.values() if not done.in_sync]
    if until_in_sync and behind:
        raise NimbusError("; ".join("the %s replicator still moved %d after %d passes"
                                    % (done.server, done.moved, done.number) for done in behind), **result)
    return result
