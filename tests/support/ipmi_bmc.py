"""A BMC that speaks IPMI 2.0 (RMCP+) on UDP, for tests and benchmarks: pyghmi's BMC server in front of a
machine held in memory (power state and boot device), or in front of a libvirt domain through virtualbmc.

pyghmi's server answers every Open Session Request with cipher suite 3 whatever the client proposed, which
the IPMI specification does not allow (a BMC answers "no matching cipher suite" to a suite it lacks, and the
client proposes another). ``suites`` chooses what this one does:

  "conforming"  suite 3 only, and a proposal of another suite is answered 0x11 (no matching cipher suite),
                as a real BMC that lacks SHA-256 does (the default);
  "stock"       pyghmi's own behaviour (suite 3 whatever was proposed);
  "none"        cipher suite 0: no authentication, integrity or confidentiality (a BMC that must be refused).

Run as a program, a BMC in its own process (the password is read from a file, never from argv):

  python ipmi_bmc.py --port 16230 --user admin --password-file F [--suites conforming] [--journal FILE]
  python ipmi_bmc.py ... --domain NAME [--libvirt-uri qemu:///system]     (a libvirt domain, via virtualbmc)
"""

from __future__ import annotations

import argparse
import os
import signal

from pyghmi.ipmi import bmc
from pyghmi.ipmi.private import serversession

NO_MATCHING_CIPHER_SUITE = 0x11
SUITE_3 = (1, 1, 1)  # RAKP-HMAC-SHA1, HMAC-SHA1-96, AES-CBC-128


def _algorithms(request):
    """The authentication, integrity and confidentiality algorithms an Open Session Request proposes."""
    return request[12], request[20], request[28]


class _ConformingSession(serversession.ServerSession):
    def create_open_session_response(self, request):
        if _algorithms(request) != SUITE_3:
            self.clientsessionid = request[4:8]
            return bytearray([request[0], NO_MATCHING_CIPHER_SUITE, 0, 0]) + request[4:8]
        return super().create_open_session_response(request)


class _SuiteZeroSession(serversession.ServerSession):
    def create_open_session_response(self, request):
        response = super().create_open_session_response(request)
        # The three algorithm bytes of the answer's payloads: none, none, none.
        response[16] = response[24] = response[32] = 0
        return response


_SESSIONS = {"conforming": _ConformingSession, "stock": None, "none": _SuiteZeroSession}


class _SuitesMixin:
    """Opens RMCP+ sessions with the server session class ``suites`` names."""

    suites = "conforming"

    def sessionless_data(self, data, sockaddr):
        request = bytearray(data)
        open_session = (len(request) >= 22 and request[0] == 6 and request[2:4] == b"\xff\x07"
                        and request[4] == 6 and request[5] == 0x10)
        server_session = _SESSIONS[self.suites]
        if open_session and server_session is not None:
            server_session(self.authdata, self.kg, sockaddr, self.serversocket, request[16:], self.uuid, bmc=self)
            return None
        return super().sessionless_data(data, sockaddr)


def product_fru(manufacturer, product, serial):
    """FRU 0 in the Platform Management FRU format: a common header and a product info area."""
    area = bytearray([1, 0, 0])  # format version, length (below), language: English
    for field in (manufacturer, product, "NB-1", "1.0", serial, "", ""):
        data = field.encode("ascii")
        area += bytearray([0xC0 | len(data)]) + data  # type/length: 8-bit ASCII
    area.append(0xC1)  # end of fields
    while (len(area) + 1) % 8:
        area.append(0)
    area[1] = (len(area) + 1) // 8
    area.append(-sum(area) & 0xFF)
    header = bytearray([1, 0, 0, 0, 1, 0, 0])  # the product area at 1 x 8 bytes
    header.append(-sum(header) & 0xFF)
    return bytes(header + area)


def temperature_record(number, name):
    """A Full Sensor Record (IPMI 2.0 section 43.1) of a threshold temperature sensor read in whole degrees C
    (linear, M=1, B=0), its critical upper threshold at 85."""
    body = bytearray([
        0x20, 0x00, number,              # owner: the BMC, LUN 0; sensor number
        0x07, 0x01,                      # entity: system board 1
        0x7F, 0x68,                      # initialisation, capabilities (thresholds readable)
        0x01, 0x01,                      # sensor type: temperature; event/reading type: threshold
        0x3F, 0, 0, 0, 0x3F, 0x3F,       # threshold events asserted (what pyghmi reads states by), readable ones
        0x00, 0x01, 0x00,                # units: unsigned; degrees C; no modifier
        0x00, 1, 0, 0, 0, 0, 0,          # linear; M=1, tolerance 0, B=0, accuracy 0, exponents 0
        0x00, 25, 70, 10, 127, 0,        # flags; nominal, normal max and min, sensor max and min
        0, 85, 80, 0, 0, 0,              # thresholds: upper non-recoverable, critical, non-critical; lower ones
        0, 0, 0, 0, 0,                   # hysteresis, reserved, OEM
    ])
    ident = name.encode("ascii")
    body += bytearray([0xC0 | len(ident)]) + ident
    return bytearray([0x51, 0x01, len(body)]) + body  # SDR version, record type, length (the id goes before)


class MachineBmc(_SuitesMixin, bmc.Bmc):
    """A machine in memory: its power state, boot device, FRU 0, one temperature sensor and every chassis
    request it took, in order. ``bare``: without FRU or sensors, as pyghmi's own BMC and virtualbmc."""

    fru = product_fru("nimbus.cloud", "Test Machine", "TM-0001")
    sensor_records = {1: temperature_record(1, "Inlet Temp")}

    def __init__(self, users, port, address="127.0.0.1", suites="conforming", journal=None, power="off",
                 acpi=True, temperature=31, bare=False):
        self.suites = suites
        self.bare = bare
        self.temperature = temperature
        self.acpi = acpi
        self.power = power
        self.boot_device = "default"
        self.requests = []
        self.journal = journal
        # SIGUSR1: the machine's own system powers it off (a deploy ramdisk's poweroff -f), not a BMC request.
        signal.signal(signal.SIGUSR1, self._powered_off_from_inside)
        super().__init__(users, port=port, address=address)

    def _powered_off_from_inside(self, signum, frame):
        del signum, frame
        self._set("self-off", "off")

    def _note(self, request):
        self.requests.append(request)
        if self.journal:
            with open(self.journal, "a", encoding="utf-8") as f:
                f.write(request + "\n")

    def get_power_state(self):
        return self.power

    def handle_raw_request(self, request, session):
        if self.bare:  # pyghmi's own BMC: no FRU, no sensor records
            return super().handle_raw_request(request, session)
        if request["netfn"] == 0x0A and request["command"] in (0x10, 0x11):
            return self._fru_request(request, session)
        if request["netfn"] == 0x0A and request["command"] in (0x20, 0x22, 0x23):
            return self._sdr_request(request, session)
        if request["netfn"] == 0x04 and request["command"] == 0x2D:  # Get Sensor Reading
            if request["data"][0] not in self.sensor_records:
                return session.send_ipmi_response(code=0xCB)
            # The reading, scanning enabled, and the thresholds crossed: upper non-critical (80), critical (85).
            crossed = (0x08 if self.temperature >= 80 else 0) | (0x10 if self.temperature >= 85 else 0)
            return session.send_ipmi_response(data=[self.temperature, 0xC0, crossed])
        return super().handle_raw_request(request, session)

    def _sdr_request(self, request, session):
        ids = sorted(self.sensor_records)
        if request["command"] == 0x20:  # Get SDR Repository Info: version 51h, the count, no free space
            return session.send_ipmi_response(data=[0x51, len(ids), 0, 0, 0] + [0] * 8 + [0])
        if request["command"] == 0x22:  # Reserve SDR Repository
            return session.send_ipmi_response(data=[1, 0])
        data = request["data"]
        wanted, offset, size = data[2] | data[3] << 8, data[4], data[5]
        record_id = ids[0] if wanted == 0 else wanted
        if record_id not in self.sensor_records:
            return session.send_ipmi_response(code=0xCB)
        following = [i for i in ids if i > record_id]
        after = following[0] if following else 0xFFFF
        record = bytearray([record_id & 0xFF, record_id >> 8]) + self.sensor_records[record_id]
        chunk = record[offset:] if size == 0xFF else record[offset:offset + size]
        return session.send_ipmi_response(data=[after & 0xFF, after >> 8] + list(chunk))

    def _fru_request(self, request, session):
        data = request["data"]
        if data[0] != 0:
            return session.send_ipmi_response(code=0xCB)  # no such FRU device
        if request["command"] == 0x10:  # Get FRU Inventory Area Info: its size, read by bytes
            return session.send_ipmi_response(data=[len(self.fru) & 0xFF, len(self.fru) >> 8, 0])
        offset, count = data[1] | data[2] << 8, data[3]
        chunk = self.fru[offset:offset + count]
        return session.send_ipmi_response(data=[len(chunk)] + list(chunk))

    def _set(self, request, power):
        self._note(request)
        self.power = power

    def power_on(self):
        self._set("on", "on")

    def power_off(self):
        self._set("off", "off")

    def power_shutdown(self):
        # A machine whose operating system ignores the ACPI power button stays on.
        self._set("shutdown", "off" if self.acpi else self.power)

    def power_reset(self):
        self._note("reset")
        # Reset does nothing to a machine that is off (as most BMCs answer it: no error, no power).

    def get_boot_device(self):
        return self.boot_device

    def set_boot_device(self, device):
        self._note("bootdev " + device)
        self.boot_device = device


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password-file", required=True, help="a file holding the password (one line)")
    parser.add_argument("--suites", choices=sorted(_SESSIONS), default="conforming")
    parser.add_argument("--power", choices=["on", "off"], default="off", help="the machine's power at start")
    parser.add_argument("--journal", help="append each chassis request the machine takes to this file")
    parser.add_argument("--no-acpi", action="store_true", help="the machine ignores soft off (ACPI shutdown)")
    parser.add_argument("--temperature", type=int, default=31, help="what the inlet temperature sensor reads")
    parser.add_argument("--bare", action="store_true", help="no FRU data and no sensor records")
    parser.add_argument("--domain", help="a libvirt domain to drive through virtualbmc, instead of a machine in "
                        "memory")
    parser.add_argument("--libvirt-uri", default="qemu:///system")
    args = parser.parse_args()
    with open(args.password_file, encoding="utf-8") as f:
        password = f.readline().rstrip("\n")
    if args.domain:
        from virtualbmc.vbmc import VirtualBMC

        class DomainBmc(_SuitesMixin, VirtualBMC):
            suites = args.suites

        DomainBmc(username=args.user, password=password, port=args.port, address=args.address,
                  domain_name=args.domain, libvirt_uri=args.libvirt_uri).listen(timeout=1)
    else:
        MachineBmc({args.user: password}, port=args.port, address=args.address, suites=args.suites,
                   journal=args.journal, power=args.power, acpi=not args.no_acpi,
                   temperature=args.temperature, bare=args.bare).listen(1)


if __name__ == "__main__":
    os.umask(0o077)
    main()
