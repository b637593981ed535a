# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""IPMI to a node's BMC, through pyghmi's client.

Everything the bare-metal modules ask a BMC goes through :class:`Bmc`: one RMCP+ session per BMC for the
whole module run, opened on first use and closed at the end.

What pyghmi's client leaves to its caller, done here:

- **Algorithms.** The client proposes cipher suite 17 (SHA-256), then suite 3 (SHA-1) when the BMC says it
  has no matching suite, but it never looks at what the BMC chose. A BMC that chose something else (pyghmi's own
  BMC server and virtualbmc answer suite 3 to everything) broke the login with ``struct.error``, and one that
  chose no authentication or no integrity (cipher suite 0) would not be noticed. :class:`_CheckedSession` reads
  the BMC's choice: suite 3 in answer to 17 is proposed again properly; anything else is refused.
- **IPMI 1.5** (a BMC without RMCP+, or one that offers no cipher suite but 0) is refused unless the task
  allows insecure sessions; pyghmi's client cannot complete a 1.5 login on Python 3 anyway, which the error
  then says, with the fix on the BMC's side.
- **Time.** The client retries on its own for about 5 s, but waits forever for a BMC that never answers the
  second login step (as BMCs do for an unknown user name). Each login here runs under a wall-clock limit.
- **Retries.** A BMC that did not answer is asked again, no sooner than ``retry_interval`` after the last
  attempt; a refused password is never tried again (BMCs lock accounts out).
- **Secrets.** Errors name the BMC's address and port, never the password; any text from the library is
  scrubbed of it too.
"""

from __future__ import annotations

import ipaddress
import re
import struct
import threading
import time

from ansible_collections.nimbus.cloud.plugins.module_utils._errors import NimbusError, ValidationError

try:
    from pyghmi.ipmi import command as pyghmi_command
    from pyghmi.ipmi.private import session as pyghmi_session
except ImportError as e:  # reported by the module through NimbusModule.require
    PYGHMI_IMPORT_ERROR = e
    pyghmi_session = None
else:
    PYGHMI_IMPORT_ERROR = None

# IPMI 2.0 limits (Set User Name, Set User Password): 16 bytes of name, 20 of password.
MAX_USERNAME = 16
MAX_PASSWORD = 20
PRIVILEGES = {"user": 2, "operator": 3, "administrator": 4}
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
_PRINTABLE = re.compile(r"^[\x21-\x7e]+$")

# The algorithms (authentication, integrity, confidentiality) the client proposes in each of its attempts,
# keyed by pyghmi's ``attemptedhash``: suite 17 (RAKP-HMAC-SHA256, HMAC-SHA256-128, AES-CBC-128), then suite 3
# (RAKP-HMAC-SHA1, HMAC-SHA1-96, AES-CBC-128).
_PROPOSED = {256: (3, 4, 1), 1: (1, 1, 1)}

BMC_FIX = ("enable IPMI 2.0 (RMCP+) with cipher suite 3 or 17 on the BMC (ipmitool lan set 1 cipher_privs "
           "XXXaXXXXXXXXXXX allows suite 3 alone), or reach it with ipmitool by hand (see docs/baremetal.md)")


# The modules' boot device names and pyghmi's for each.
BOOT_DEVICES = {"network": "network", "disk": "hd", "cdrom": "optical", "bios": "setup", "default": "default"}
_BOOT_NAMES = {v: k for k, v in BOOT_DEVICES.items()}


def boot_view(answer):
    """A boot device as Bmc.boot_device reads it, in the modules' names (V(unknown) for another device)."""
    return {"device": _BOOT_NAMES.get(answer["device"], "unknown"), "persistent": answer["persistent"]}


class PowerPlan:
    """What a baremetal_power task sends: ``requests`` as reported, whether it sets the boot device,
    ``power_requests`` in pyghmi's words, and the power state and boot device it leads to."""

    def __init__(self, requests, sets_boot, power_requests, power, boot):
        self.requests = requests
        self.sets_boot = sets_boot
        self.power_requests = power_requests
        self.power = power
        self.boot = boot


def power_plan(power, state, boot, boot_device, persistent):
    """The requests that take a machine from ``power`` (on/off) and ``boot`` (Bmc.boot_device's answer) to
    the task's ``state`` and ``boot_device``; pure, so check mode reports exactly what a run sends."""
    requests, power_requests = [], []
    boot_now = boot_view(boot)
    boot_after = boot_now
    sets_boot = boot_device is not None and boot_now != {"device": boot_device, "persistent": persistent}
    if sets_boot:
        boot_after = {"device": boot_device, "persistent": persistent}
        requests.append("boot device %s%s" % (boot_device, " (persistent)" if persistent else ""))
    steps = {
        ("on", "off"): ["on"], ("off", "on"): ["off"], ("soft_off", "on"): ["shutdown"],
        ("reset", "on"): ["reset"], ("reset", "off"): ["on"],
        ("cycle", "on"): ["off", "on"], ("cycle", "off"): ["on"],
    }.get((state, power), [])
    for step in steps:
        power_requests.append(step)
        requests.append("power %s" % {"shutdown": "soft off"}.get(step, step))
    after = power if state is None else {"on": "on", "off": "off", "soft_off": "off"}.get(state, "on")
    return PowerPlan(requests, sets_boot, power_requests, after, boot_after)


class BmcError(NimbusError):
    """A BMC failed or refused a request; the message names the BMC, never its password."""


def bmc_options():
    """The ``bmc`` option's suboptions, shared by every bare-metal module."""
    return dict(
        address=dict(type="str", required=True),
        port=dict(type="int", default=623),
        username=dict(type="str", required=True),
        password=dict(type="str", required=True, no_log=True),
        privilege=dict(type="str", default="administrator", choices=sorted(PRIVILEGES)),
        allow_insecure=dict(type="bool", default=False),
        timeout=dict(type="int", default=20),
        retries=dict(type="int", default=2),
        retry_interval=dict(type="float", default=2.0),
    )


def check_bmc(options):
    """The ``bmc`` option checked before any packet is sent (ValidationError names what is wrong)."""
    address = options["address"]
    try:
        ipaddress.ip_address(address)
    except ValueError:
        if not _HOSTNAME.fullmatch(address or ""):
            raise ValidationError("bmc.address %r is neither an IP address nor a host name" % address)
    if not 1 <= options["port"] <= 65535:
        raise ValidationError("bmc.port must be 1-65535, not %d" % options["port"])
    username = options["username"]
    if not username or len(username.encode()) > MAX_USERNAME or not _PRINTABLE.fullmatch(username):
        raise ValidationError("bmc.username must be 1-%d printable ASCII characters" % MAX_USERNAME)
    password = options["password"]
    if not password or len(password.encode()) > MAX_PASSWORD or not _PRINTABLE.fullmatch(password):
        # The value is never shown: its length is all the task needs to see the mistake.
        raise ValidationError("bmc.password must be 1-%d printable ASCII characters (IPMI 2.0's limit)"
                              % MAX_PASSWORD)
    if options["timeout"] < 1:
        raise ValidationError("bmc.timeout must be at least 1 second")
    if options["retries"] < 0 or options["retry_interval"] < 0:
        raise ValidationError("bmc.retries and bmc.retry_interval cannot be negative")
    return options


def _session_class(allow_insecure):
    """pyghmi's Session, with the BMC's choice of algorithms checked (see the module's docstring)."""

    class _CheckedSession(pyghmi_session.Session):
        insecure_allowed = allow_insecure

        def _got_rmcp_response(self, data):
            if self.sessioncontext == "OPENSESSION" and len(data) >= 36 and data[0] == self.rmcptag \
                    and data[1] == 0:
                chosen = (data[16], data[24], data[32])
                if chosen != _PROPOSED[self.attemptedhash]:
                    if self.attemptedhash == 256 and chosen == _PROPOSED[1]:
                        # Suite 3 in answer to a proposal of 17: propose 3, as a conforming BMC would have
                        # asked for with "no matching cipher suite".
                        self.attemptedhash = 1
                        self.lastpayload = None
                        self._open_rmcpplus_request()
                        return None
                    self.onlogon({"error": _weak_algorithms(chosen, self.insecure_allowed)})
                    return -9
            return super()._got_rmcp_response(data)

        def _get_session_challenge(self):
            # Only an IPMI 1.5 login comes here (the BMC announced no IPMI 2.0).
            if not self.insecure_allowed:
                self.onlogon({"error": "the BMC offers IPMI 1.5 only (no RMCP+): refused; allow_insecure "
                                       "accepts it"})
                return None
            return super()._get_session_challenge()

    return _CheckedSession


def _weak_algorithms(chosen, insecure_allowed):
    what = "authentication %d, integrity %d, confidentiality %d" % chosen
    if 0 in chosen[:2] and not insecure_allowed:
        return ("the BMC chose a session without authentication or integrity (%s, cipher suite 0 or alike): "
                "refused; allow_insecure accepts it" % what)
    if 0 in chosen[:2]:
        return "pyghmi's client cannot hold a session without authentication or integrity (%s)" % what
    return "the BMC chose algorithms the client did not propose (%s)" % what


class Bmc:
    """One node's BMC for the length of a module run::

        with Bmc(options) as node_bmc:
            node_bmc.power()
    """

    def __init__(self, options, sleep=time.sleep, clock=time.monotonic):
        check_bmc(options)
        self.options = options
        self.where = "BMC %s port %d" % (options["address"], options["port"])
        self._command = None
        self._last_attempt = None
        self._sleep = sleep
        self._clock = clock

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # --- the session --------------------------------------------------------------

    def _login_once(self):
        """One login under the wall-clock limit; the Command, or an exception."""
        o = self.options
        user, password = o["username"].encode(), o["password"].encode()
        outcome = {}

        def login():
            try:
                # The checked session is made first: pyghmi's Command then finds and adopts it (sessions are
                # shared by address and credentials), where it would otherwise log in with its own.
                made = _session_class(o["allow_insecure"])(
                    bmc=o["address"], userid=user, password=password, port=o["port"],
                    privlevel=PRIVILEGES[o["privilege"]])
                command = pyghmi_command.Command(bmc=o["address"], userid=user, password=password, port=o["port"],
                                                 privlevel=PRIVILEGES[o["privilege"]])
                if command.ipmi_session is not made:
                    raise BmcError("%s: the session was not the checked one (pyghmi changed?)" % self.where)
                outcome["command"] = command
            except BaseException as e:  # handed to the caller's thread
                outcome["error"] = e

        worker = threading.Thread(target=login, name="ipmi-login", daemon=True)
        worker.start()
        worker.join(o["timeout"])
        if worker.is_alive():
            raise BmcError("%s: no session after %d s (the BMC stopped answering during the login, as BMCs do "
                           "for an unknown user name: check bmc.username)" % (self.where, o["timeout"]),
                           bmc=self.where)
        if "error" in outcome:
            raise outcome["error"]
        return outcome["command"]

    def _login(self):
        o = self.options
        attempts = o["retries"] + 1
        for attempt in range(1, attempts + 1):
            self._wait_retry_interval()
            try:
                return self._login_once()
            except BmcError:
                raise
            except Exception as e:  # pyghmi raises its own and bare library exceptions alike
                reason, retry = self._explain(e)
                if not retry or attempt == attempts:
                    raise BmcError("%s: %s" % (self.where, reason), bmc=self.where, attempts=attempt) from None
        raise AssertionError("unreachable")

    def _wait_retry_interval(self):
        now = self._clock()
        if self._last_attempt is not None:
            left = self.options["retry_interval"] - (now - self._last_attempt)
            if left > 0:
                self._sleep(left)
        self._last_attempt = self._clock()

    def _explain(self, error):
        """What went wrong, in words that hold no secret, and whether asking again may help."""
        text = self._scrub(str(error))
        if isinstance(error, struct.error):
            return ("the BMC answered the login with other algorithms than the client's (pyghmi could not follow "
                    "it): %s" % BMC_FIX), False
        if isinstance(error, TypeError) and self.options["allow_insecure"]:
            return ("pyghmi's client cannot complete an IPMI 1.5 login on this Python: %s" % BMC_FIX), False
        if isinstance(error, OSError):
            return "cannot reach it: %s" % text, True
        if "password" in text.lower() or "unauthorized name" in text.lower():
            return "refused the user name or password (not tried again: BMCs lock accounts out)", False
        if text in ("None", "", "timeout") or "no longer connected" in text or "timed out" in text.lower():
            return "no answer (is the address right, the BMC up and its LAN channel enabled?)", True
        if "refused" in text or "IPMI 1.5" in text or "client cannot" in text or "did not propose" in text:
            return text, False
        return text, True

    def _scrub(self, text):
        password = self.options["password"]
        return text.replace(password, "********") if password else text

    @property
    def command(self):
        if self._command is None:
            self._command = self._login()
        return self._command

    def negotiated(self):
        """What the session runs on: IPMI version and the integrity algorithm's suite."""
        s = self.command.ipmi_session
        return {"ipmi_version": str(s.ipmiversion), "cipher_suite": 17 if s.integrityalgo == 256 else 3}

    def close(self):
        if self._command is not None:
            try:
                self._command.ipmi_session.logout()
            except Exception:  # the BMC may be gone already; the session ends with the process anyway
                pass
            self._command = None

    # --- requests ---------------------------------------------------------------

    def _ask(self, what, func, *args, **kwargs):
        """A request on the session; pyghmi's errors become a BmcError naming the BMC and the request."""
        try:
            answer = func(*args, **kwargs)
        except BmcError:
            raise
        except Exception as e:
            code = getattr(e, "ipmicode", 0)
            detail = " (IPMI completion code 0x%02x)" % code if code else ""
            raise BmcError("%s: %s failed: %s%s" % (self.where, what, self._scrub(str(e)) or type(e).__name__,
                                                    detail), bmc=self.where, ipmi_code=code) from None
        if isinstance(answer, dict) and "error" in answer:
            raise BmcError("%s: %s failed: %s" % (self.where, what, self._scrub(str(answer["error"]))),
                           bmc=self.where)
        return answer

    def power(self):
        """'on' or 'off'."""
        return self._ask("reading the power state", self.command.get_power)["powerstate"]

    def set_power(self, state, wait=0):
        """Ask for on, off, reset or shutdown (soft off); with ``wait``, seconds to wait for the state."""
        return self._ask("power %s" % state, self.command.set_power, state, wait=wait or False)

    def boot_device(self):
        """{'device': pyghmi's name (network, hd, optical, setup, default...), 'persistent': bool}."""
        answer = self._ask("reading the boot device", self.command.get_bootdev)
        return {"device": answer.get("bootdev"), "persistent": bool(answer.get("persistent")),
                "uefi": bool(answer.get("uefimode"))}

    def set_boot_device(self, device, persistent):
        return self._ask("setting the boot device to %s" % device, self.command.set_bootdev, device,
                         persist=persistent)

    def device_id(self):
        answer = self._ask("reading the device id", self.command.raw_command, netfn=6, command=1)
        data = bytearray(answer.get("data", b""))
        if len(data) < 11:
            return {}
        return {"device_id": data[0], "device_revision": data[1] & 0x0F,
                "firmware": "%d.%02x" % (data[2] & 0x7F, data[3]),
                "ipmi_version": "%d.%d" % (data[4] & 0x0F, data[4] >> 4),
                "manufacturer_id": data[6] | data[7] << 8 | data[8] << 16, "product_id": data[9] | data[10] << 8}

    def sensors(self):
        """Each sensor's reading, as far as the BMC keeps sensor records."""
        readings = []
        for reading in self._ask("reading the sensors", lambda: list(self.command.get_sensor_data())):
            readings.append({"name": reading.name, "type": reading.type, "value": reading.value,
                             "units": reading.units, "health": _health(reading.health),
                             "states": list(reading.states), "unavailable": bool(reading.unavailable)})
        return readings

    def inventory(self):
        """The FRU records: {component: {field: value}}, values as text, numbers or lists of text. A BMC that
        fails part way (one with FRU 0 but no sensor records to find the other FRUs by) raises a BmcError
        whose ``partial`` detail holds what was read."""
        out = {}

        def read():
            for name, record in self.command.get_inventory():
                if record is not None:
                    out[name] = {str(k): _plain(v) for k, v in record.items()}

        try:
            self._ask("reading the FRU inventory", read)
        except BmcError as e:
            e.details["partial"] = out
            raise
        return out


def _plain(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    return str(value)


def _health(value):
    """pyghmi's health bits (ok 0, warning 1, critical 2, failed 4), as the worst one's name."""
    for bit, name in ((4, "failed"), (2, "critical"), (1, "warning")):
        if value & bit:
            return name
    return "ok"
