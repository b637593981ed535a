"""Wait, for a bounded time, until the database and the broker the service needs accept connections.

The units run `nimbus-api wait` before the API or a worker starts: at boot, or on a first converge, the
database and the broker may be on hosts (or in units) still starting. Waiting on the connection itself
replaces ordering after network-online.target, which says nothing about a peer being up and which, on a
host whose links systemd-networkd does not manage, only ends with a timeout.
"""

from __future__ import annotations

import time
from typing import Callable

from sqlalchemy import text
from sqlalchemy.engine import make_url

# Seconds between attempts, and between two log lines while the peer is still away.
RETRY = 1.0
REPORT_EVERY = 10.0


def database_probe(url: str) -> tuple[str, Callable[[], None]]:
    """The database as a log may name it (no password), and a probe that connects and runs SELECT 1."""
    from nimbus_api.db import make_engine

    def probe():
        engine = make_engine(url)
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        finally:
            engine.dispose()
    return "the database at " + make_url(url).render_as_string(hide_password=True), probe


def broker_probe(url: str, options: dict | None = None) -> tuple[str, Callable[[], None]]:
    """The broker as a log may name it (kombu hides the password), and a probe that opens a connection."""
    from kombu import Connection

    def probe():
        with Connection(url, transport_options=options or {}, connect_timeout=5) as conn:
            conn.connect()
    return "the broker at " + Connection(url).as_uri(), probe


def _reason(exc: BaseException, secrets: list[str]) -> str:
    """The first line of the error, without anything secret a driver might have echoed."""
    lines = str(exc).strip().splitlines()
    reason = "%s: %s" % (type(exc).__name__, lines[0] if lines else "")
    for secret in secrets:
        if secret:
            reason = reason.replace(secret, "***")
    return reason


def wait_for(peers, timeout: float, say: Callable[[str], None], secrets=(), clock=time.monotonic,
             sleep=time.sleep) -> bool:
    """Try each (name, probe) until every probe passes or `timeout` seconds have gone.

    Says once when a peer is not there yet and why, again every REPORT_EVERY seconds, and once when it
    answers; returns whether every peer answered in time.
    """
    deadline = clock() + timeout
    for name, probe in peers:
        reported = None
        while True:
            try:
                probe()
            except Exception as exc:  # noqa: BLE001 - any failure to connect is a reason to wait
                now = clock()
                if now >= deadline:
                    say("gave up waiting for %s after %d s: %s" % (name, timeout, _reason(exc, list(secrets))))
                    return False
                if reported is None or now - reported >= REPORT_EVERY:
                    say("waiting for %s (%s); giving up in %d s" % (name, _reason(exc, list(secrets)), deadline - now))
                    reported = now
                sleep(min(RETRY, max(deadline - now, 0)))
                continue
            if reported is not None:
                say("%s answers" % name)
            break
    return True
