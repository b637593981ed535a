"""Fixtures of the module tests."""

import pytest

from ansible_collections.nimbus.cloud.tests.unit.plugins.modules import bmc_fixture


@pytest.fixture
def start_bmc(tmp_path):
    """Test BMCs on loopback, each in a process of its own, stopped after the test (see bmc_fixture)."""
    yield from bmc_fixture.bmc_starter(tmp_path)
