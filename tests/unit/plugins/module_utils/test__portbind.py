from types import SimpleNamespace

import pytest

from ansible_collections.nimbus.cloud.plugins.module_utils import _compute as compute
from ansible_collections.nimbus.cloud.plugins.module_utils import _nftables as nft
from ansible_collections.nimbus.cloud.plugins.module_utils import _portbind as portbind
from ansible_collections.nimbus.cloud.plugins.module_utils._errors import ValidationError
from ansible_collections.nimbus.cloud.tests.unit.plugins import cases
from ansible_collections.nimbus.cloud.tests.unit.plugins.module_utils import nft_doc


def instance(nics):
    """An instance with these NICs (dicts as the case tables write them), or None."""
    if nics is None:
        return None
    out = []
    for nic in nics:
        port = nic.get("port")
        if port is not None:
            port = dict({"name": None, "network": "demo-net", "fixed_ips": [], "security_groups": [],
                         "port_security": True}, **port)
        out.append(compute.Nic(bridge=nic["bridge"], mac=nic.get("mac"), port=port))
    return SimpleNamespace(nics=out)


@pytest.mark.parametrize("case", cases.params(__file__, "portbind_plan.yaml"))
def test_plan_binding(case):
    tables = nft_doc.tables(case.get("tables"))
    actual, after = instance(case.get("actual")), instance(case.get("after"))
    if "error" in case:
        with pytest.raises(ValidationError, match=case["error"]):
            portbind.plan_binding(tables, actual, after)
        return
    binding = portbind.plan_binding(tables, actual, after)
    assert binding.changed == bool(case.get("script"))
    if case.get("script"):
        assert [s.describe() for s in binding.steps] == ["nft -f -", "save the nimbus nftables to %s" % nft.SAVE_FILE]
        assert binding.steps[0].data.splitlines() == case["script"]
        fake = nft_doc.FakeNft(case.get("tables") if isinstance(case.get("tables"), dict) else None)
        if isinstance(case.get("tables"), dict):
            # nft would take the script, and what it leaves needs nothing more.
            fake.apply(binding.steps[0].data)
            again = nft.Tables.from_json(fake.listing("inet"), fake.listing("bridge"))
            assert not portbind.plan_binding(again, after, after).changed
    else:
        assert binding.steps == []


class NoNft:
    def read(self, argv, check_rc=True):
        raise AssertionError("read %r" % (argv,))


def test_an_instance_without_ports_never_reads_nftables():
    bare = instance([{"bridge": "br0", "mac": "52:54:00:00:00:01"}])
    assert not portbind.plan(NoNft(), bare, bare).changed
    assert not portbind.plan(NoNft(), None, None).changed
