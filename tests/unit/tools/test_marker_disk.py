"""tests/support/marker_disk.py: the boot sector the bare-metal tests deploy."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "support"))
import marker_disk  # noqa: E402  pylint: disable=wrong-import-position


def test_the_disk_boots_and_carries_its_marker(tmp_path):
    path = tmp_path / "disk.raw"
    marker_disk.write_disk(str(path), "NIMBUS-TEST-MARKER", 2 * 1024 * 1024)
    data = path.read_bytes()
    assert len(data) == 2 * 1024 * 1024
    assert data[510:512] == b"\x55\xaa"
    # mov si points at the message, which is the marker on a line of its own.
    message_at = int.from_bytes(data[12:14], "little") - marker_disk.LOAD_ADDRESS
    assert data[message_at:message_at + 23] == b"\r\nNIMBUS-TEST-MARKER\r\n\x00"
    assert data[512:] == bytes(len(data) - 512)


@pytest.mark.parametrize("marker", ["", "two\nlines", "x" * 201, "caf\u00e9"])
def test_a_marker_it_cannot_print_is_refused(marker, tmp_path):
    with pytest.raises(ValueError):
        marker_disk.write_disk(str(tmp_path / "disk.raw"), marker)
    assert not (tmp_path / "disk.raw").exists()
