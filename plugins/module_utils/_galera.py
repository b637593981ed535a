# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Galera cluster state: reading it from a node, and deciding how to start.

The decision is a pure function over every member's state so the role (first
start) and the recovery playbook (start after a full crash) take the same,
unit-tested decision: bootstrap only from the node holding the most recent
committed state, and refuse when the evidence does not say which one that is.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass, field

from ansible_collections.nimbus.cloud.plugins.module_utils._errors import NimbusError

ZERO_UUID = "00000000-0000-0000-0000-000000000000"
_RECOVERED = re.compile(r"WSREP: Recovered position:\s*([0-9a-f-]{36}):(-?\d+)")


class AmbiguousClusterState(NimbusError):
    """The members' states do not show which node may safely bootstrap."""


@dataclass
class GaleraNode:
    """One member's Galera state, from grastate.dat and the running server."""

    installed: bool = True
    running: bool = False
    wsrep_on: bool = False
    uuid: str | None = None
    seqno: int = -1
    safe_to_bootstrap: bool = False
    position_source: str = "none"
    cluster_status: str | None = None
    cluster_size: int = 0
    local_state: str | None = None
    ready: bool = False

    @property
    def has_state(self):
        """True once the node has been part of a cluster (its data belongs to one)."""
        return self.uuid not in (None, ZERO_UUID)

    @property
    def in_primary(self):
        return self.running and self.cluster_status == "Primary"

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, data):
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in (data or {}).items() if k in known})


@dataclass
class StartPlan:
    """How to bring the cluster up.

    action: ``running`` (a primary component exists: ``join`` start and join it),
    ``new`` (no member holds cluster state: ``bootstrap`` starts a new cluster),
    ``recover`` (every member is down with state on disk: ``bootstrap`` holds
    the most recent committed state).
    """

    action: str
    bootstrap: str | None
    join: list = field(default_factory=list)
    reason: str = ""

    def to_dict(self):
        return asdict(self)


def parse_grastate(text):
    """Return (uuid, seqno, safe_to_bootstrap) from grastate.dat's text."""
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and not line.lstrip().startswith("#"):
            values[key.strip()] = value.strip()
    uuid = values.get("uuid") or None
    try:
        seqno = int(values.get("seqno", "-1"))
    except ValueError:
        seqno = -1
    return uuid, seqno, values.get("safe_to_bootstrap") == "1"


def parse_recovered_position(log_text):
    """Return (uuid, seqno) from the log of ``mariadbd --wsrep-recover``, or None."""
    matches = _RECOVERED.findall(log_text)
    if not matches:
        return None
    uuid, seqno = matches[-1]
    return uuid, int(seqno)


def parse_status(text):
    """Parse ``SHOW GLOBAL STATUS LIKE 'wsrep%'`` in batch mode into a dict."""
    status = {}
    for line in text.splitlines():
        name, sep, value = line.partition("\t")
        if sep:
            status[name.strip().lower()] = value.strip()
    return status


def apply_status(node, status):
    """Fill the running-server fields of ``node`` from parsed wsrep status."""
    node.wsrep_on = status.get("wsrep_on", "").upper() == "ON"
    if not node.wsrep_on:
        # A standalone server (before Galera was configured) replicates
        # nothing: its wsrep status says nothing about the cluster.
        return node
    node.cluster_status = status.get("wsrep_cluster_status")
    node.cluster_size = int(status.get("wsrep_cluster_size") or 0)
    node.local_state = status.get("wsrep_local_state_comment")
    node.ready = status.get("wsrep_ready", "").upper() == "ON"
    uuid = status.get("wsrep_cluster_state_uuid")
    if uuid:
        node.uuid = uuid
    seqno = status.get("wsrep_last_committed")
    if seqno not in (None, ""):
        node.seqno = int(seqno)
        node.position_source = "status"
    return node


def plan_start(states, hosts):
    """Decide how to start the cluster formed by ``hosts`` (inventory order).

    ``states`` maps each host to its GaleraNode (or its dict form). Raises
    AmbiguousClusterState, naming the evidence, when it cannot decide safely.
    """
    if not hosts:
        raise AmbiguousClusterState("the Galera cluster has no members")
    nodes = {h: s if isinstance(s, GaleraNode) else GaleraNode.from_dict(s) for h, s in states.items() if s is not None}
    missing = [h for h in hosts if h not in nodes]
    if missing:
        raise AmbiguousClusterState(
            "no Galera state from %s; refusing to guess which node holds the latest committed data"
            % ", ".join(missing),
            missing=missing,
        )
    uninstalled = [h for h in hosts if not nodes[h].installed]
    if uninstalled:
        raise AmbiguousClusterState("MariaDB is not installed on %s" % ", ".join(uninstalled))

    primary = [h for h in hosts if nodes[h].in_primary]
    if primary:
        return StartPlan(
            action="running",
            bootstrap=None,
            join=[h for h in hosts if not nodes[h].in_primary],
            reason="a primary component is running on %s" % ", ".join(primary),
        )
    stray = [h for h in hosts if nodes[h].running and nodes[h].wsrep_on]
    if stray:
        raise AmbiguousClusterState(
            "%s running outside a primary component (wsrep_cluster_status %s); stop it before "
            "starting the cluster" % (", ".join(stray), ", ".join(str(nodes[h].cluster_status) for h in stray)),
            stray=stray,
        )

    with_state = [h for h in hosts if nodes[h].has_state]
    if not with_state:
        return StartPlan(
            action="new",
            bootstrap=hosts[0],
            join=list(hosts[1:]),
            reason="no member holds cluster state; %s starts a new cluster" % hosts[0],
        )

    uuids = sorted({nodes[h].uuid for h in with_state})
    if len(uuids) > 1:
        raise AmbiguousClusterState(
            "members hold state of different clusters (%s); refusing to choose between them"
            % "; ".join("%s: %s" % (h, nodes[h].uuid) for h in with_state),
        )
    unknown = [h for h in with_state if nodes[h].seqno < 0]
    if unknown:
        raise AmbiguousClusterState(
            "the last committed position of %s is unknown (grastate.dat says seqno -1: the server "
            "crashed); run playbooks/mariadb_recover.yml, which reads it with mariadbd --wsrep-recover"
            % ", ".join(unknown),
            unknown=unknown,
        )
    best = max(nodes[h].seqno for h in with_state)
    candidates = [h for h in with_state if nodes[h].seqno == best]
    # Equal seqnos of one cluster UUID are the same committed history, so any
    # of them is safe; prefer the one Galera itself marked safe.
    marked = [h for h in candidates if nodes[h].safe_to_bootstrap]
    chosen = (marked or candidates)[0]
    positions = ", ".join("%s=%d" % (h, nodes[h].seqno) for h in with_state)
    return StartPlan(
        action="recover",
        bootstrap=chosen,
        join=[h for h in hosts if h != chosen],
        reason="%s holds the most recent committed state (seqno %s)" % (chosen, positions),
    )


def read_node(runner, datadir, socket, recover=False, user="mysql"):
    """Read a node's Galera state through ``runner`` (reads only; see recover_position)."""
    module = runner.module
    if not module.get_bin_path("mariadb-admin", opt_dirs=runner.extra_paths):
        return GaleraNode(installed=False)
    node = GaleraNode()
    grastate = os.path.join(datadir, "grastate.dat")
    if os.path.exists(grastate):
        with open(grastate) as f:
            node.uuid, node.seqno, node.safe_to_bootstrap = parse_grastate(f.read())
        node.position_source = "grastate" if node.seqno >= 0 else "none"

    node.running = runner.read(["mariadb-admin", "--socket=%s" % socket, "ping"], check_rc=False).ok
    if node.running:
        query = "SHOW GLOBAL STATUS LIKE 'wsrep%'; SHOW GLOBAL VARIABLES LIKE 'wsrep_on'"
        out = runner.read(["mariadb", "--socket=%s" % socket, "-N", "-B", "-e", query]).stdout
        return apply_status(node, parse_status(out))

    if recover and node.has_state and node.seqno < 0:
        # Recovery replays InnoDB's redo log into the data files: a change, so check mode skips it.
        position = runner.apply("mariadbd --wsrep-recover", recover_position, runner, user)
        if position is not None:
            node.uuid, node.seqno = position
            node.position_source = "recovered"
        elif runner.check_mode:
            node.position_source = "skipped"
        else:
            raise NimbusError("mariadbd --wsrep-recover did not report a recovered position")
    return node


def recover_position(runner, user):
    """Run ``mariadbd --wsrep-recover`` and return its (uuid, seqno), or None."""
    workdir = tempfile.mkdtemp(prefix="nimbus-wsrep-recover-")
    try:
        account = pwd.getpwnam(user)
        os.chown(workdir, account.pw_uid, account.pw_gid)
        log = os.path.join(workdir, "recover.log")
        # The server writes the position to its error log, not to stdout.
        runner.change(["mariadbd", "--user=%s" % user, "--wsrep-recover", "--log-error=%s" % log])
        if not os.path.exists(log):
            return None
        with open(log) as f:
            return parse_recovered_position(f.read())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
