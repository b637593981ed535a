"""A raw disk image a PC's BIOS boots, whose boot code prints a marker line on the first serial port and halts:
the image the bare-metal tests deploy, so that a machine booting from its disk after a deploy shows it did.

    python3 marker_disk.py OUT [--marker TEXT] [--size BYTES]

The boot sector is 16-bit code written out byte by byte below (no assembler needed): it writes the marker to
COM1 (I/O port 0x3f8), waiting for the transmitter before each byte, then halts. The rest of the disk is zeros.
"""

from __future__ import annotations

import argparse
import re
import sys

SECTOR = 512
LOAD_ADDRESS = 0x7C00
MARKER = "NIMBUS-BAREMETAL-DISK-BOOTED"


def boot_sector(marker: str) -> bytes:
    """The 512-byte boot sector that prints ``marker`` (on a line of its own) on COM1."""
    if not re.fullmatch(r"[A-Za-z0-9 ._:-]{1,200}", marker):
        raise ValueError("the marker must be 1-200 letters, digits, spaces and . _ : -")
    message_at = 44  # where the message starts: right after the code below
    prologue = bytes([
        0xFA,                          # 0   cli
        0x31, 0xC0,                    # 1   xor ax, ax
        0x8E, 0xD8,                    # 3   mov ds, ax
        0x8E, 0xD0,                    # 5   mov ss, ax
        0xBC, 0x00, 0x7C,              # 7   mov sp, 0x7c00
        0xFC,                          # 10  cld (lodsb counts up)
    ])
    # 11  mov si, message
    point_at_message = bytes([0xBE]) + (LOAD_ADDRESS + message_at).to_bytes(2, "little")
    print_and_halt = bytes([
        0xBA, 0xFD, 0x03,              # 14  mov dx, 0x3fd (line status register)
        0xAC,                          # 17  next: lodsb
        0x84, 0xC0,                    # 18  test al, al
        0x74, 0x12,                    # 20  jz done (40)
        0x88, 0xC3,                    # 22  mov bl, al
        0xEC,                          # 24  wait: in al, dx
        0xA8, 0x20,                    # 25  test al, 0x20 (transmitter empty)
        0x74, 0xFB,                    # 27  jz wait (24)
        0x88, 0xD8,                    # 29  mov al, bl
        0x83, 0xEA, 0x05,              # 31  sub dx, 5 (0x3f8, the transmitter)
        0xEE,                          # 34  out dx, al
        0x83, 0xC2, 0x05,              # 35  add dx, 5
        0xEB, 0xE9,                    # 38  jmp next (17)
        0xFA,                          # 40  done: cli
        0xF4,                          # 41  hlt
        0xEB, 0xFC,                    # 42  jmp done (40)
    ])
    code = prologue + point_at_message + print_and_halt
    assert len(code) == message_at
    message = b"\r\n" + marker.encode("ascii") + b"\r\n\x00"
    sector = code + message
    if len(sector) > SECTOR - 2:
        raise ValueError("the marker is too long for one boot sector")
    return sector.ljust(SECTOR - 2, b"\x00") + b"\x55\xAA"


def write_disk(path: str, marker: str = MARKER, size: int = 4 * 1024 * 1024) -> None:
    if size < 2 * 1024 * 1024 or size % SECTOR:
        raise ValueError("the disk must be 2 MiB or more, in whole sectors")
    sector = boot_sector(marker)  # refused before anything is written
    with open(path, "wb") as f:
        f.write(sector)
        f.truncate(size)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--marker", default=MARKER)
    parser.add_argument("--size", type=int, default=4 * 1024 * 1024)
    args = parser.parse_args(argv)
    write_disk(args.out, args.marker, args.size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
