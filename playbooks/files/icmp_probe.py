# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Send ICMP echo requests to one IPv4 address until one is answered: the all-in-one's smoke test reaches a
server's floating IP with it (the container hosts have no ping). Exit 0 on a reply, 1 without one, 2 for a bad
address.

Usage: icmp_probe.py ADDRESS [TRIES]
"""

import ipaddress
import os
import select
import socket
import struct
import sys
import time


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def probe(address, tries):
    ident = os.getpid() & 0xFFFF
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
        for seq in range(1, tries + 1):
            header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
            payload = b"nimbus-smoke"
            packet = struct.pack("!BBHHH", 8, 0, checksum(header + payload), ident, seq) + payload
            sock.sendto(packet, (address, 0))
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                ready, _unused, _unused2 = select.select([sock], [], [], max(0, deadline - time.monotonic()))
                if not ready:
                    break
                data, peer = sock.recvfrom(2048)
                start = (data[0] & 0x0F) * 4  # past the IP header
                kind, _code, _sum, got_ident, got_seq = struct.unpack("!BBHHH", data[start:start + 8])
                if peer[0] == address and kind == 0 and got_ident == ident and got_seq == seq:
                    print("reply from %s (echo %d)" % (address, seq))
                    return True
    print("no reply from %s after %d echo requests" % (address, tries))
    return False


def main():
    try:
        address = str(ipaddress.IPv4Address(sys.argv[1]))
        tries = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    except (IndexError, ValueError):
        print(__doc__.strip().splitlines()[-1])
        return 2
    return 0 if probe(address, max(1, min(tries, 20))) else 1


if __name__ == "__main__":
    sys.exit(main())
